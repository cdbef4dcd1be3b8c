#!/usr/bin/env python3
"""Writes every frame of pcap/pcapng captures as one file each (stdlib only).

usage: pcap_frames.py OUT_DIR CAPTURE...

Files are named <capture>-<frame number>.bin. Frames of Linux SLL (113) and SLL2 (276)
captures keep their cooked header and raw-IP (101, 228, 229) frames start at the IP header:
the fuzz target reads every input as Ethernet, raw IP, SLL and SLL2 alike.
A capture that cannot be read is reported and skipped; the exit status stays 0.
"""
import os
import struct
import sys


def pcap_frames(data: bytes):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a pcap file")
    pos = 24
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from(endian + "IIII", data, pos)
        pos += 16
        if pos + incl > len(data):
            break
        yield data[pos:pos + incl]
        pos += incl


def pcapng_frames(data: bytes):
    pos = 0
    endian = "<"
    while pos + 12 <= len(data):
        block_type = struct.unpack_from(endian + "I", data, pos)[0]
        if block_type == 0x0A0D0D0A:  # section header: byte-order magic decides the endianness
            bom = data[pos + 8:pos + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        block_len = struct.unpack_from(endian + "I", data, pos + 4)[0]
        if block_len < 12 or pos + block_len > len(data):
            break
        body = data[pos + 8:pos + block_len - 4]
        if block_type == 6 and len(body) >= 20:  # enhanced packet block
            cap_len = struct.unpack_from(endian + "I", body, 12)[0]
            yield body[20:20 + cap_len]
        elif block_type == 3 and len(body) >= 4:  # simple packet block
            yield body[4:]
        pos += block_len


def frames(path: str):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return list(pcapng_frames(data))
    return list(pcap_frames(data))


def main(argv) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    total = 0
    for path in argv[1:]:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            got = frames(path)
        except (OSError, ValueError, struct.error) as error:
            print(f"pcap_frames: skipping {path}: {error}", file=sys.stderr)
            continue
        for index, frame in enumerate(got, 1):
            with open(os.path.join(out, f"{stem}-{index:04d}.bin"), "wb") as f:
                f.write(frame)
        total += len(got)
    print(f"pcap_frames: {total} frames from {len(argv) - 1} captures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
