// The C reference parser: see CReferenceParser.h. It mirrors Sources/UPFPackets (Parser.swift,
// GTPUParser.swift, IPHeaders.swift) decision by decision, so the benchmark compares the cost of
// the same work; parse-bench checks that both produce identical results on the whole mix.
#include "CReferenceParser.h"

#include <string.h>

// ---- loads (callers have checked bounds; unaligned, big-endian) --------------------------------

static inline uint8_t ld8(const uint8_t *b, long o) { return b[o]; }

static inline uint16_t ld16(const uint8_t *b, long o) {
    uint16_t v;
    memcpy(&v, b + o, sizeof v);
    return __builtin_bswap16(v);
}

static inline uint32_t ld32(const uint8_t *b, long o) {
    uint32_t v;
    memcpy(&v, b + o, sizeof v);
    return __builtin_bswap32(v);
}

static inline uint64_t ld64(const uint8_t *b, long o) {
    uint64_t v;
    memcpy(&v, b + o, sizeof v);
    return __builtin_bswap64(v);
}

static inline cref_addr addr4(const uint8_t *b, long o) {
    cref_addr a = {0, 0x0000FFFF00000000ull | (uint64_t)ld32(b, o)};
    return a;
}

static inline cref_addr addr6(const uint8_t *b, long o) {
    cref_addr a = {ld64(b, o), ld64(b, o + 8)};
    return a;
}

// ---- IP headers -------------------------------------------------------------------------------

enum ip_fault {
    FAULT_NONE = 0,
    FAULT_TRUNCATED,
    FAULT_VERSION_MISMATCH,
    FAULT_BAD_HEADER_LENGTH,
    FAULT_BAD_TOTAL_LENGTH,
    FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD,
    FAULT_BAD_CHECKSUM,
    FAULT_PAYLOAD_LENGTH_ZERO,
    FAULT_JUMBOGRAM,
    FAULT_EXTENSION_TRUNCATED,
    FAULT_EXTENSION_CHAIN_TOO_LONG,
};

static inline int outer_reason(int fault) {
    switch (fault) {
    case FAULT_TRUNCATED: return CREF_OUTER_IPV4_TRUNCATED;
    case FAULT_VERSION_MISMATCH: return CREF_OUTER_IP_VERSION_MISMATCH;
    case FAULT_BAD_HEADER_LENGTH: return CREF_OUTER_IPV4_BAD_HEADER_LENGTH;
    case FAULT_BAD_TOTAL_LENGTH:
    case FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD: return CREF_OUTER_IPV4_BAD_TOTAL_LENGTH;
    case FAULT_BAD_CHECKSUM: return CREF_OUTER_IPV4_BAD_CHECKSUM;
    case FAULT_PAYLOAD_LENGTH_ZERO:
    case FAULT_JUMBOGRAM: return CREF_OUTER_IPV6_BAD_PAYLOAD_LENGTH;
    case FAULT_EXTENSION_TRUNCATED: return CREF_OUTER_IPV6_EXTENSION_TRUNCATED;
    default: return CREF_OUTER_IPV6_EXTENSION_CHAIN_TOO_LONG;
    }
}

static inline int outer_ipv6_reason(int fault) {
    switch (fault) {
    case FAULT_TRUNCATED: return CREF_OUTER_IPV6_TRUNCATED;
    case FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD:
    case FAULT_BAD_TOTAL_LENGTH: return CREF_OUTER_IPV6_BAD_PAYLOAD_LENGTH;
    default: return outer_reason(fault);
    }
}

static inline int inner_reason(int fault) {
    switch (fault) {
    case FAULT_TRUNCATED: return CREF_INNER_IPV4_TRUNCATED;
    case FAULT_VERSION_MISMATCH: return CREF_INNER_IP_VERSION_UNKNOWN;
    case FAULT_BAD_HEADER_LENGTH: return CREF_INNER_IPV4_BAD_HEADER_LENGTH;
    case FAULT_BAD_TOTAL_LENGTH: return CREF_INNER_IPV4_BAD_TOTAL_LENGTH;
    case FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD: return CREF_INNER_IPV4_TOTAL_LENGTH_EXCEEDS_PAYLOAD;
    case FAULT_BAD_CHECKSUM: return CREF_INNER_IPV4_BAD_CHECKSUM;
    case FAULT_PAYLOAD_LENGTH_ZERO: return CREF_INNER_IPV6_PAYLOAD_LENGTH_ZERO;
    case FAULT_JUMBOGRAM: return CREF_INNER_IPV6_JUMBOGRAM;
    case FAULT_EXTENSION_TRUNCATED: return CREF_INNER_IPV6_EXTENSION_TRUNCATED;
    default: return CREF_INNER_IPV6_EXTENSION_CHAIN_TOO_LONG;
    }
}

static inline int inner_ipv6_reason(int fault) {
    switch (fault) {
    case FAULT_TRUNCATED: return CREF_INNER_IPV6_TRUNCATED;
    case FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD:
    case FAULT_BAD_TOTAL_LENGTH: return CREF_INNER_IPV6_PAYLOAD_LENGTH_EXCEEDS_PAYLOAD;
    default: return inner_reason(fault);
    }
}

typedef struct {
    uint8_t proto;
    uint8_t tos;
    uint16_t identification;
    uint16_t fragment_offset; // bytes
    bool more_fragments;
    long payload_offset;
    long end;
} ipv4_header;

// ---- Internet checksum: mirrors Sources/UPFPackets/Checksum.swift ------------------------------
// `InternetChecksum.isValidIPv4Header` = `add(header)` (one `nativeSum` piece, byte-swapped to
// network order) then `fold(sum) == 0xFFFF`. `nativeSum` sums native-order 64-bit words in four
// lanes with deferred end-around carries, then a 4/2/1-octet tail, and folds once.

static inline uint16_t fold64(uint64_t value) {
    uint64_t v = (value >> 32) + (value & 0xFFFFFFFFull);
    v = (v >> 16) + (v & 0xFFFF);
    v = (v >> 16) + (v & 0xFFFF);
    v = (v >> 16) + (v & 0xFFFF);
    return (uint16_t)v;
}

static inline void accumulate(uint64_t *acc, uint64_t word, uint64_t *carries) {
    uint64_t s;
    *carries += __builtin_add_overflow(*acc, word, &s);
    *acc = s;
}

static inline uint64_t ldn64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t ldn32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t ldn16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

// Not forced inline: the Swift `nativeSum` is an out-of-line call from the parser too.
static uint16_t native_sum(const uint8_t *base, long count) {
    uint64_t a = 0, b = 0, c = 0, d = 0, carries = 0;
    long i = 0;
    while (count - i >= 32) {
        accumulate(&a, ldn64(base + i), &carries);
        accumulate(&b, ldn64(base + i + 8), &carries);
        accumulate(&c, ldn64(base + i + 16), &carries);
        accumulate(&d, ldn64(base + i + 24), &carries);
        i += 32;
    }
    while (count - i >= 8) {
        accumulate(&a, ldn64(base + i), &carries);
        i += 8;
    }
    accumulate(&a, b, &carries);
    accumulate(&a, c, &carries);
    accumulate(&a, d, &carries);
    uint64_t tail = 0;
    if (count - i >= 4) { tail += ldn32(base + i); i += 4; }
    if (count - i >= 2) { tail += ldn16(base + i); i += 2; }
    if (count - i == 1) tail += __builtin_bswap16((uint16_t)((uint16_t)base[i] << 8));
    accumulate(&a, tail, &carries);
    uint64_t s;
    bool o = __builtin_add_overflow(a, carries, &s);
    return fold64(o ? s + 1 : s);
}

static inline bool header_checksum_ok(const uint8_t *b, long offset, long length) {
    if (length == 20) {
        // Mirrors the 20-octet path of `isValidIPv4Header`: 8 + 8 + 4 octets, end-around carries.
        const uint8_t *p = b + offset;
        uint64_t s1, s2;
        bool o1 = __builtin_add_overflow(ldn64(p), ldn64(p + 8), &s1);
        bool o2 = __builtin_add_overflow(s1 + (o1 ? 1 : 0), (uint64_t)ldn32(p + 16), &s2);
        return fold64(s2 + (o2 ? 1 : 0)) == 0xFFFF;
    }
    uint64_t sum = __builtin_bswap16(native_sum(b + offset, length));
    return fold64(sum) == 0xFFFF;
}

static inline int ipv4_read(const uint8_t *b, long offset, long end, bool verify, ipv4_header *h) {
    if (end - offset < 20) return FAULT_TRUNCATED;
    uint8_t version_ihl = ld8(b, offset);
    if (version_ihl >> 4 != 4) return FAULT_VERSION_MISMATCH;
    long header_length = (long)(version_ihl & 0x0F) * 4;
    if (header_length < 20) return FAULT_BAD_HEADER_LENGTH;
    if (header_length > end - offset) return FAULT_TRUNCATED;
    long total_length = ld16(b, offset + 2);
    if (total_length < header_length) return FAULT_BAD_TOTAL_LENGTH;
    if (total_length > end - offset) return FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD;
    if (verify && !header_checksum_ok(b, offset, header_length)) return FAULT_BAD_CHECKSUM;
    uint16_t flags_fragment = ld16(b, offset + 6);
    h->proto = ld8(b, offset + 9);
    h->tos = ld8(b, offset + 1);
    h->identification = ld16(b, offset + 4);
    h->fragment_offset = (uint16_t)((flags_fragment & 0x1FFF) * 8);
    h->more_fragments = (flags_fragment & 0x2000) != 0;
    h->payload_offset = offset + header_length;
    h->end = offset + total_length;
    return FAULT_NONE;
}

typedef struct {
    uint8_t proto;
    uint8_t traffic_class;
    long payload_offset;
    long end;
    bool is_fragment;
    bool is_later_fragment;
} ipv6_header;

#define MAX_VLAN_TAGS 2
#define MAX_GTP_EXTENSIONS 8
#define MAX_IPV6_EXTENSIONS 8

static inline int ipv6_read(const uint8_t *b, long offset, long end, ipv6_header *h) {
    if (end - offset < 40) return FAULT_TRUNCATED;
    uint32_t first = ld32(b, offset);
    if (first >> 28 != 6) return FAULT_VERSION_MISMATCH;
    long payload_length = ld16(b, offset + 4);
    uint8_t next = ld8(b, offset + 6);
    if (payload_length == 0 && next != 59) return next == 0 ? FAULT_JUMBOGRAM : FAULT_PAYLOAD_LENGTH_ZERO;
    if (payload_length > end - offset - 40) return FAULT_TOTAL_LENGTH_EXCEEDS_PAYLOAD;
    long datagram_end = offset + 40 + payload_length;
    long cursor = offset + 40;
    int extensions = 0;
    bool is_fragment = false, is_later_fragment = false;
    for (;;) {
        if (!(next == 0 || next == 43 || next == 60 || next == 51 || next == 44 || next == 135)) break;
        extensions++;
        if (extensions > MAX_IPV6_EXTENSIONS) return FAULT_EXTENSION_CHAIN_TOO_LONG;
        if (datagram_end - cursor < 8) return FAULT_EXTENSION_TRUNCATED;
        long length;
        if (next == 44) {
            length = 8;
            is_fragment = true;
            if (ld16(b, cursor + 2) & 0xFFF8) is_later_fragment = true;
        } else if (next == 51) {
            length = ((long)ld8(b, cursor + 1) + 2) * 4;
        } else {
            length = ((long)ld8(b, cursor + 1) + 1) * 8;
        }
        if (length > datagram_end - cursor) return FAULT_EXTENSION_TRUNCATED;
        next = ld8(b, cursor);
        cursor += length;
        if (is_later_fragment) break;
    }
    h->proto = next;
    h->traffic_class = (uint8_t)(first >> 20);
    h->payload_offset = cursor;
    h->end = datagram_end;
    h->is_fragment = is_fragment;
    h->is_later_fragment = is_later_fragment;
    return FAULT_NONE;
}

// ---- GTP-U --------------------------------------------------------------------------------------

static inline int parse_psc(const uint8_t *b, long offset, long content_length, const cref_options *o,
                            cref_packet *p) {
    if (content_length < 2) return CREF_PSC_BAD_LENGTH;
    uint8_t first = ld8(b, offset), second = ld8(b, offset + 1);
    uint8_t pdu_type = first >> 4;
    long required = 2;
    cref_psc psc = {0};
    psc.present = true;
    psc.pdu_type = pdu_type;
    psc.qfi = second & 0x3F;
    if (pdu_type == 0) {
        if (o->direction == CREF_DIRECTION_UPLINK) return CREF_PSC_WRONG_DIRECTION;
        bool qmp = first & 0x08, snp = first & 0x04, msnp = first & 0x02;
        psc.ppp = (second & 0x80) != 0;
        psc.rqi = (second & 0x40) != 0;
        if (psc.ppp) required += 1;
        if (qmp) required += 8;
        if (snp) required += 3;
        if (msnp) required += 4;
        if (content_length < required) return CREF_PSC_BAD_LENGTH;
        if (psc.ppp) psc.ppi = ld8(b, offset + 2) >> 5;
    } else if (pdu_type == 1) {
        if (o->direction == CREF_DIRECTION_DOWNLINK) return CREF_PSC_WRONG_DIRECTION;
        if (first & 0x08) required += 24; // QMP
        if (first & 0x04) required += 4;  // DL delay
        if (first & 0x02) required += 4;  // UL delay
        if (first & 0x01) required += 3;  // SNP
        if (second & 0x80) required += 4; // N3/N9 delay
        if (second & 0x40) required += 1; // new IE
        if (content_length < required) return CREF_PSC_BAD_LENGTH;
    } else {
        return CREF_PSC_BAD_PDU_TYPE;
    }
    if (psc.qfi == 0) return CREF_PSC_QFI_ZERO;
    p->psc = psc;
    return CREF_OK;
}

static inline int parse_extensions(const uint8_t *b, uint8_t first, long *cursor_io, long end,
                                   const cref_options *o, cref_packet *p) {
    uint8_t type = first;
    int count = 0;
    long cursor = *cursor_io;
    while (type != 0) {
        count++;
        if (count > MAX_GTP_EXTENSIONS) return CREF_GTP_EXTENSION_CHAIN_TOO_LONG;
        if (end - cursor < 1) return CREF_GTP_EXTENSION_TRUNCATED;
        long length = (long)ld8(b, cursor) * 4;
        if (length <= 0) return CREF_GTP_EXTENSION_ZERO_LENGTH;
        if (length > end - cursor) return CREF_GTP_EXTENSION_TRUNCATED;
        switch (type) {
        case 0x85: {
            int r = parse_psc(b, cursor + 1, length - 2, o, p);
            if (r) return r;
            break;
        }
        case 0x40:
            if (length != 4) return CREF_GTP_EXTENSION_BAD_LENGTH;
            p->has_udp_port_extension = true;
            p->udp_port_extension = ld16(b, cursor + 1);
            break;
        case 0xC0:
            if (length != 4) return CREF_GTP_EXTENSION_BAD_LENGTH;
            p->has_pdcp_number = true;
            p->pdcp_number = ld16(b, cursor + 1);
            break;
        case 0x82:
            if (length != 8) return CREF_GTP_EXTENSION_BAD_LENGTH;
            p->has_pdcp_number = true;
            p->pdcp_number = ld32(b, cursor) & 0x0003FFFF;
            break;
        case 0x20: case 0x81: case 0x83: case 0x84:
            break;
        default:
            if (type & 0x80) return CREF_GTP_EXTENSION_COMPREHENSION_REQUIRED;
            p->skipped_extension_count++;
        }
        type = ld8(b, cursor + length - 1);
        cursor += length;
    }
    *cursor_io = cursor;
    p->extension_count = (uint8_t)count;
    return CREF_OK;
}

static inline int parse_information_elements(const uint8_t *b, long start, long end, cref_packet *p) {
    long cursor = start;
    while (cursor < end) {
        uint8_t type = ld8(b, cursor);
        long value_offset, value_length;
        if (type == 14) {
            value_offset = cursor + 1; value_length = 1;
        } else if (type == 16) {
            value_offset = cursor + 1; value_length = 4;
        } else if (type == 141) {
            if (end - cursor < 2) return CREF_GTP_MALFORMED_INFORMATION_ELEMENT;
            value_offset = cursor + 2; value_length = ld8(b, cursor + 1);
        } else if (type >= 128) {
            if (end - cursor < 3) return CREF_GTP_MALFORMED_INFORMATION_ELEMENT;
            value_offset = cursor + 3; value_length = ld16(b, cursor + 1);
        } else {
            return CREF_GTP_MALFORMED_INFORMATION_ELEMENT;
        }
        if (value_length > end - value_offset) return CREF_GTP_MALFORMED_INFORMATION_ELEMENT;
        switch (type) {
        case 14:
            p->has_recovery = true;
            p->recovery_counter = ld8(b, value_offset);
            break;
        case 16:
            p->has_teid_data_i = true;
            p->teid_data_i = ld32(b, value_offset);
            break;
        case 133:
            if (value_length == 4) p->gsn_address = addr4(b, value_offset);
            else if (value_length == 16) p->gsn_address = addr6(b, value_offset);
            else return CREF_GTP_MALFORMED_INFORMATION_ELEMENT;
            p->has_gsn_address = true;
            break;
        default:
            break;
        }
        cursor = value_offset + value_length;
    }
    return CREF_OK;
}

static inline int parse_inner(const uint8_t *b, long offset, long end, const cref_options *o, cref_packet *p) {
    cref_inner flow = {0};
    long l4_offset, l4_end;
    switch (ld8(b, offset) >> 4) {
    case 4: {
        ipv4_header h;
        int fault = ipv4_read(b, offset, end, o->verify_inner_ipv4_checksum, &h);
        if (fault) return inner_reason(fault);
        flow.version = 4;
        flow.source = addr4(b, offset + 12);
        flow.destination = addr4(b, offset + 16);
        flow.proto = h.proto;
        flow.traffic_class = h.tos;
        flow.is_fragment = h.fragment_offset != 0;
        l4_offset = h.payload_offset;
        l4_end = h.end;
        break;
    }
    case 6: {
        ipv6_header h;
        int fault = ipv6_read(b, offset, end, &h);
        if (fault) return inner_ipv6_reason(fault);
        flow.version = 6;
        flow.source = addr6(b, offset + 8);
        flow.destination = addr6(b, offset + 24);
        flow.proto = h.proto;
        flow.traffic_class = h.traffic_class;
        flow.is_fragment = h.is_later_fragment;
        l4_offset = h.payload_offset;
        l4_end = h.end;
        break;
    }
    default:
        return CREF_INNER_IP_VERSION_UNKNOWN;
    }
    p->inner_l4_offset = (uint32_t)l4_offset;
    if (!flow.is_fragment) {
        switch (flow.proto) {
        case 6: {
            if (l4_end - l4_offset < 20) return CREF_INNER_L4_TRUNCATED;
            long data_offset = (long)(ld8(b, l4_offset + 12) >> 4) * 4;
            if (data_offset < 20 || data_offset > l4_end - l4_offset) return CREF_INNER_L4_TRUNCATED;
            flow.source_port = ld16(b, l4_offset);
            flow.destination_port = ld16(b, l4_offset + 2);
            flow.has_ports = true;
            break;
        }
        case 17:
            if (l4_end - l4_offset < 8) return CREF_INNER_L4_TRUNCATED;
            flow.source_port = ld16(b, l4_offset);
            flow.destination_port = ld16(b, l4_offset + 2);
            flow.has_ports = true;
            break;
        case 132:
            if (l4_end - l4_offset < 12) return CREF_INNER_L4_TRUNCATED;
            flow.source_port = ld16(b, l4_offset);
            flow.destination_port = ld16(b, l4_offset + 2);
            flow.has_ports = true;
            break;
        default:
            break;
        }
    }
    p->inner = flow;
    return CREF_OK;
}

static inline int parse_gtpu(const uint8_t *b, long offset, long end, const cref_options *o, cref_packet *p) {
    p->gtp_offset = (uint32_t)offset;
    if (end - offset < 8) return CREF_GTP_TRUNCATED;
    uint8_t flags = ld8(b, offset);
    if (flags >> 5 != 1) return CREF_GTP_VERSION_NOT_1;
    if (!(flags & 0x10)) return CREF_GTP_PRIME;
    uint8_t message_type = ld8(b, offset + 1);
    long gtp_length = ld16(b, offset + 2);
    p->gtp_flags = flags;
    p->message_type = message_type;
    p->teid = ld32(b, offset + 4);
    if (gtp_length > end - offset - 8) return CREF_GTP_LENGTH_EXCEEDS_PAYLOAD;
    long gtp_end = offset + 8 + gtp_length;
    long cursor = offset + 8;
    if (flags & 0x07) {
        if (gtp_end - cursor < 4) return CREF_GTP_LENGTH_SHORTER_THAN_HEADERS;
        p->sequence_number = ld16(b, cursor);
        p->n_pdu_number = ld8(b, cursor + 2);
        uint8_t next_type = (flags & 0x04) ? ld8(b, cursor + 3) : 0;
        cursor += 4;
        if (next_type != 0) {
            int r = parse_extensions(b, next_type, &cursor, gtp_end, o, p);
            if (r) return r;
        }
    }
    p->payload_offset = (uint32_t)cursor;
    p->payload_end = (uint32_t)gtp_end;
    int r;
    switch (message_type) {
    case 255:
        p->kind = CREF_KIND_GPDU;
        if (p->teid == 0) return CREF_GPDU_TEID_ZERO;
        if (gtp_end <= cursor) return CREF_GPDU_EMPTY;
        return parse_inner(b, cursor, gtp_end, o, p);
    case 1:
        p->kind = CREF_KIND_ECHO_REQUEST;
        if (!(flags & 0x02)) return CREF_ECHO_WITHOUT_SEQUENCE_NUMBER;
        return parse_information_elements(b, cursor, gtp_end, p);
    case 2:
        p->kind = CREF_KIND_ECHO_RESPONSE;
        if (!(flags & 0x02)) return CREF_ECHO_WITHOUT_SEQUENCE_NUMBER;
        if ((r = parse_information_elements(b, cursor, gtp_end, p))) return r;
        return p->has_recovery ? CREF_OK : CREF_GTP_MISSING_MANDATORY_INFORMATION_ELEMENT;
    case 26:
        p->kind = CREF_KIND_ERROR_INDICATION;
        if ((r = parse_information_elements(b, cursor, gtp_end, p))) return r;
        return p->has_teid_data_i && p->has_gsn_address ? CREF_OK : CREF_GTP_MISSING_MANDATORY_INFORMATION_ELEMENT;
    case 254:
        p->kind = CREF_KIND_END_MARKER;
        return parse_information_elements(b, cursor, gtp_end, p);
    case 31:
        p->kind = CREF_KIND_EXT_HDR_NOTIFICATION;
        return parse_information_elements(b, cursor, gtp_end, p);
    default:
        return CREF_GTP_UNKNOWN_MESSAGE_TYPE;
    }
}

// ---- outer layers -----------------------------------------------------------------------------

static inline int parse_outer_transport(const uint8_t *b, uint8_t proto, long offset, long end,
                                        const cref_options *o, cref_packet *p) {
    p->l4_offset = (uint32_t)offset;
    p->kind = CREF_KIND_NON_GTP;
    if (proto != 17) return CREF_OK;
    if (end - offset < 8) return CREF_UDP_TRUNCATED;
    p->udp_source_port = ld16(b, offset);
    p->udp_destination_port = ld16(b, offset + 2);
    if (p->udp_destination_port != o->gtp_port) return CREF_OK;
    long udp_length = ld16(b, offset + 4);
    if (udp_length < 8 || udp_length > end - offset) return CREF_UDP_BAD_LENGTH;
    if (p->outer_version == 6 && ld16(b, offset + 6) == 0) return CREF_UDP_ZERO_CHECKSUM_OVER_IPV6;
    return parse_gtpu(b, offset + 8, offset + udp_length, o, p);
}

static inline int parse_outer_ipv4(const uint8_t *b, long count, long offset, const cref_options *o,
                                   cref_packet *p) {
    ipv4_header h;
    int fault = ipv4_read(b, offset, count, o->verify_outer_ipv4_checksum, &h);
    if (fault) return outer_reason(fault);
    p->outer_version = 4;
    p->outer_protocol = h.proto;
    p->outer_source = addr4(b, offset + 12);
    p->outer_destination = addr4(b, offset + 16);
    p->outer_traffic_class = h.tos;
    p->l3_end = (uint32_t)h.end;
    if (h.more_fragments || h.fragment_offset != 0) {
        p->kind = CREF_KIND_OUTER_FRAGMENT;
        p->fragment_id = h.identification;
        p->fragment_offset = h.fragment_offset;
        p->more_fragments = h.more_fragments;
        p->l4_offset = (uint32_t)h.payload_offset;
        return CREF_OK;
    }
    return parse_outer_transport(b, h.proto, h.payload_offset, h.end, o, p);
}

static inline int parse_outer_ipv6(const uint8_t *b, long count, long offset, const cref_options *o,
                                   cref_packet *p) {
    ipv6_header h;
    int fault = ipv6_read(b, offset, count, &h);
    if (fault) return outer_ipv6_reason(fault);
    if (h.is_fragment) return CREF_OUTER_IPV6_FRAGMENT;
    p->outer_version = 6;
    p->outer_protocol = h.proto;
    p->outer_source = addr6(b, offset + 8);
    p->outer_destination = addr6(b, offset + 24);
    p->outer_traffic_class = h.traffic_class;
    p->l3_end = (uint32_t)h.end;
    return parse_outer_transport(b, h.proto, h.payload_offset, h.end, o, p);
}

static inline int parse_network(const uint8_t *b, long count, uint16_t ether_type, long offset,
                                const cref_options *o, cref_packet *p) {
    p->ether_type = ether_type;
    p->l3_offset = (uint32_t)offset;
    switch (ether_type) {
    case 0x0800: return parse_outer_ipv4(b, count, offset, o, p);
    case 0x86DD: return parse_outer_ipv6(b, count, offset, o, p);
    case 0x0806: p->kind = CREF_KIND_ARP; return CREF_OK;
    default: p->kind = CREF_KIND_NON_GTP; return CREF_OK;
    }
}

int cref_parse(const uint8_t *b, size_t count_, int link, const cref_options *o, cref_packet *p) {
    long count = (long)count_;
    memset(p, 0, sizeof *p);
    p->kind = CREF_KIND_NON_GTP;
    switch (link) {
    case CREF_LINK_ETHERNET: {
        if (count < 14) return CREF_FRAME_TOO_SHORT;
        long offset = 12;
        uint16_t ether_type = ld16(b, offset);
        int tags = 0;
        while (ether_type == 0x8100 || ether_type == 0x88A8) {
            tags++;
            if (tags > MAX_VLAN_TAGS) return CREF_VLAN_TOO_DEEP;
            if (count < offset + 6) return CREF_FRAME_TOO_SHORT;
            if (tags == 1) p->outer_vlan = ld16(b, offset + 2) & 0x0FFF;
            offset += 4;
            ether_type = ld16(b, offset);
        }
        p->vlan_count = (uint8_t)tags;
        return parse_network(b, count, ether_type, offset + 2, o, p);
    }
    case CREF_LINK_SLL:
        if (count < 16) return CREF_FRAME_TOO_SHORT;
        return parse_network(b, count, ld16(b, 14), 16, o, p);
    case CREF_LINK_SLL2:
        if (count < 20) return CREF_FRAME_TOO_SHORT;
        return parse_network(b, count, ld16(b, 0), 20, o, p);
    case CREF_LINK_RAW_IP:
        if (count < 1) return CREF_FRAME_TOO_SHORT;
        return parse_network(b, count, (ld8(b, 0) >> 4) == 6 ? 0x86DD : 0x0800, 0, o, p);
    default:
        return CREF_UNSUPPORTED_LINK_TYPE;
    }
}

static const char *const drop_names[CREF_DROP_COUNT] = {
    NULL,
    "frame_too_short", "vlan_too_deep", "unsupported_link_type",
    "outer_ip_version_mismatch", "outer_ipv4_truncated", "outer_ipv4_bad_header_length",
    "outer_ipv4_bad_total_length", "outer_ipv4_bad_checksum", "outer_ipv6_truncated",
    "outer_ipv6_bad_payload_length", "outer_ipv6_extension_truncated",
    "outer_ipv6_extension_chain_too_long", "outer_ipv6_fragment", "outer_fragment_overlap",
    "outer_fragment_too_large", "outer_fragment_evicted", "outer_fragment_misaligned",
    "udp_truncated", "udp_bad_length", "udp_zero_checksum_over_ipv6",
    "gtp_truncated", "gtp_version_not_1", "gtp_prime", "gtp_length_exceeds_payload",
    "gtp_length_shorter_than_headers", "gtp_unknown_message_type", "gtp_extension_zero_length",
    "gtp_extension_truncated", "gtp_extension_chain_too_long", "gtp_extension_bad_length",
    "gtp_extension_comprehension_required", "psc_bad_length", "psc_bad_pdu_type", "psc_qfi_zero",
    "psc_wrong_direction", "echo_without_sequence_number", "gtp_malformed_information_element",
    "gtp_missing_mandatory_information_element", "gpdu_teid_zero", "gpdu_empty",
    "inner_ip_version_unknown", "inner_ipv4_truncated", "inner_ipv4_bad_header_length",
    "inner_ipv4_bad_total_length", "inner_ipv4_total_length_exceeds_payload",
    "inner_ipv4_bad_checksum", "inner_ipv6_truncated", "inner_ipv6_payload_length_zero",
    "inner_ipv6_payload_length_exceeds_payload", "inner_ipv6_extension_truncated",
    "inner_ipv6_extension_chain_too_long", "inner_ipv6_jumbogram", "inner_l4_truncated",
};

static const char *const kind_names[CREF_KIND_COUNT] = {
    "gpdu", "echo_request", "echo_response", "error_indication", "end_marker",
    "ext_hdr_notification", "non_gtp", "arp", "fragment",
};

const char *cref_drop_name(int reason) {
    return reason > 0 && reason < CREF_DROP_COUNT ? drop_names[reason] : NULL;
}

const char *cref_kind_name(int kind) {
    return kind >= 0 && kind < CREF_KIND_COUNT ? kind_names[kind] : NULL;
}
