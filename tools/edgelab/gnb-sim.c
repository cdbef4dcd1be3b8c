/*
 * gnb-sim: the gNB (and the UE's radio) of the edge lab (tools/edge-lab, docs/edge-lab.md).
 *
 * Started in the UE's network namespace, it attaches to the UE's TUN device there (created and
 * addressed by the lab script), then moves into the gNB's namespace and opens its N3 socket
 * (UDP LOCAL:2152). From then on:
 *   uplink   TUN -> IP packet -> GTP-U G-PDU (TEID = --ul-teid, PDU Session Container UL,
 *            type 1, with --qfi) -> UDP to UPF:2152
 *   downlink UDP from port 2152 -> GTP-U checked (G-PDU, TEID = --dl-teid, DL PSC type 0 with
 *            the expected QFI) -> the inner IP packet written into the TUN
 * Downlink G-PDUs that do not carry what the session says are counted and still delivered (the
 * counters make the mismatch visible; a test asserts on them). Other GTP-U messages are counted.
 *
 * Counters go to --stats FILE as one JSON object, rewritten (atomically) at most every 50 ms
 * while they change, and at exit (SIGTERM/SIGINT).
 *
 *   gnb-sim --tun ue0 --gnb-netns /run/netns/el-gnb --local 192.0.2.100 --upf 192.0.2.1 \
 *           --ul-teid 256 --dl-teid 4096 --qfi 9 --stats FILE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GTPU_PORT 2152
#define MAX_FRAME 65536

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

struct counters {
    unsigned long long ul_packets, ul_bytes, ul_send_errors, ul_not_ip;
    unsigned long long dl_packets, dl_bytes, dl_ok, dl_wrong_teid, dl_no_psc, dl_wrong_pdu_type,
        dl_wrong_qfi, dl_not_gpdu, dl_malformed, dl_tun_errors;
    unsigned last_dl_qfi, last_dl_teid;
};

static void die(const char *what) {
    fprintf(stderr, "gnb-sim: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: gnb-sim --tun NAME --gnb-netns PATH --local ADDR --upf ADDR "
                    "--ul-teid N --dl-teid N --qfi N --stats FILE\n");
    exit(2);
}

static void write_stats(const char *path, const struct counters *c) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f,
            "{\"ul_packets\":%llu,\"ul_bytes\":%llu,\"ul_send_errors\":%llu,\"ul_not_ip\":%llu,"
            "\"dl_packets\":%llu,\"dl_bytes\":%llu,\"dl_ok\":%llu,\"dl_wrong_teid\":%llu,\"dl_no_psc\":%llu,"
            "\"dl_wrong_pdu_type\":%llu,\"dl_wrong_qfi\":%llu,\"dl_not_gpdu\":%llu,\"dl_malformed\":%llu,"
            "\"dl_tun_errors\":%llu,\"last_dl_teid\":%u,\"last_dl_qfi\":%u}\n",
            c->ul_packets, c->ul_bytes, c->ul_send_errors, c->ul_not_ip, c->dl_packets, c->dl_bytes, c->dl_ok,
            c->dl_wrong_teid, c->dl_no_psc, c->dl_wrong_pdu_type, c->dl_wrong_qfi, c->dl_not_gpdu, c->dl_malformed,
            c->dl_tun_errors, c->last_dl_teid, c->last_dl_qfi);
    fclose(f);
    rename(tmp, path);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    const char *tun_name = NULL, *netns = NULL, *local = NULL, *upf = NULL, *stats = NULL;
    long ul_teid = -1, dl_teid = -1, qfi = -1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--tun")) tun_name = v;
        else if (!strcmp(k, "--gnb-netns")) netns = v;
        else if (!strcmp(k, "--local")) local = v;
        else if (!strcmp(k, "--upf")) upf = v;
        else if (!strcmp(k, "--stats")) stats = v;
        else if (!strcmp(k, "--ul-teid")) ul_teid = strtol(v, NULL, 0);
        else if (!strcmp(k, "--dl-teid")) dl_teid = strtol(v, NULL, 0);
        else if (!strcmp(k, "--qfi")) qfi = strtol(v, NULL, 0);
        else usage();
    }
    if (!tun_name || !netns || !local || !upf || !stats || ul_teid <= 0 || dl_teid <= 0 || qfi < 1 || qfi > 63)
        usage();

    /* The TUN device lives in the namespace we were started in (the UE's). */
    int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) die("open /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tun_name);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) die("TUNSETIFF (is the TUN device there, in this namespace?)");

    /* The N3 socket lives in the gNB's namespace. */
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) die("open gNB namespace");
    if (setns(nsfd, CLONE_NEWNET) < 0) die("setns gNB namespace");
    close(nsfd);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp < 0) die("socket");
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(GTPU_PORT)};
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(GTPU_PORT)};
    if (inet_pton(AF_INET, local, &me.sin_addr) != 1 || inet_pton(AF_INET, upf, &peer.sin_addr) != 1) {
        fprintf(stderr, "gnb-sim: --local and --upf must be IPv4 addresses\n");
        return 2;
    }
    if (bind(udp, (struct sockaddr *)&me, sizeof me) < 0) die("bind N3 socket");
    int buf = 4 << 20;
    setsockopt(udp, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);

    /* A blocked signal mask survives exec (a test runner may block SIGTERM): start clean. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static uint8_t frame[MAX_FRAME + 64];
    struct counters c;
    memset(&c, 0, sizeof c);
    write_stats(stats, &c);
    fprintf(stderr, "gnb-sim: TUN %s <-> GTP-U %s -> %s:2152, UL TEID %ld QFI %ld, DL TEID %ld\n", tun_name, local,
            upf, ul_teid, qfi, dl_teid);

    int dirty = 0;
    uint64_t last_write = now_ms();
    struct pollfd fds[2] = {{.fd = tun, .events = POLLIN}, {.fd = udp, .events = POLLIN}};
    while (!stop_requested) {
        int n = poll(fds, 2, dirty ? 50 : 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents & POLLIN) {
            /* Uplink: leave 16 bytes in front for the GTP-U header (8), its optional fields (4)
             * and the PDU Session Container (4). */
            uint8_t *ip = frame + 16;
            ssize_t len = read(tun, ip, MAX_FRAME);
            if (len > 0) {
                int version = ip[0] >> 4;
                if (version != 4 && version != 6) {
                    c.ul_not_ip++;
                } else {
                    uint8_t *g = frame;
                    g[0] = 0x34;                       /* version 1, PT 1, E */
                    g[1] = 0xff;                       /* G-PDU */
                    uint16_t glen = (uint16_t)(len + 8); /* optional fields + PSC + payload */
                    g[2] = glen >> 8; g[3] = glen & 0xff;
                    uint32_t teid = htonl((uint32_t)ul_teid);
                    memcpy(g + 4, &teid, 4);
                    g[8] = 0; g[9] = 0;                /* sequence number (not used) */
                    g[10] = 0;                         /* N-PDU number */
                    g[11] = 0x85;                      /* next extension: PDU Session Container */
                    g[12] = 1;                         /* its length, in 4-byte units */
                    g[13] = 0x10;                      /* PDU type 1: UL PDU SESSION INFORMATION */
                    g[14] = (uint8_t)(qfi & 0x3f);     /* QFI */
                    g[15] = 0;                         /* no further extension */
                    if (sendto(udp, frame, (size_t)len + 16, 0, (struct sockaddr *)&peer, sizeof peer) < 0)
                        c.ul_send_errors++;
                    else {
                        c.ul_packets++;
                        c.ul_bytes += (unsigned long long)len;
                    }
                }
                dirty = 1;
            }
        }
        if (fds[1].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t fromlen = sizeof from;
            ssize_t len = recvfrom(udp, frame, MAX_FRAME, 0, (struct sockaddr *)&from, &fromlen);
            if (len > 0) {
                dirty = 1;
                c.dl_packets++;
                const uint8_t *g = frame;
                if (len < 8 || (g[0] >> 5) != 1 || !(g[0] & 0x10)) { c.dl_malformed++; goto next; }
                if (g[1] != 0xff) { c.dl_not_gpdu++; goto next; }
                size_t total = 8 + (((size_t)g[2] << 8) | g[3]);
                if (total > (size_t)len) { c.dl_malformed++; goto next; }
                uint32_t teid;
                memcpy(&teid, g + 4, 4);
                teid = ntohl(teid);
                c.last_dl_teid = teid;
                size_t off = 8;
                int psc_type = -1, psc_qfi = -1;
                if (g[0] & 0x07) {
                    if (total < 12) { c.dl_malformed++; goto next; }
                    uint8_t next_type = g[11];
                    off = 12;
                    if (g[0] & 0x04) {
                        while (next_type != 0) {
                            if (off + 4 > total || g[off] == 0) { c.dl_malformed++; goto next; }
                            size_t ext = (size_t)g[off] * 4;
                            if (off + ext > total) { c.dl_malformed++; goto next; }
                            if (next_type == 0x85) {
                                psc_type = g[off + 1] >> 4;
                                psc_qfi = g[off + 2] & 0x3f;
                            }
                            next_type = g[off + ext - 1];
                            off += ext;
                        }
                    }
                }
                if (off >= total) { c.dl_malformed++; goto next; }
                int good = 1;
                if (teid != (uint32_t)dl_teid) { c.dl_wrong_teid++; good = 0; }
                if (psc_type < 0) { c.dl_no_psc++; good = 0; }
                else {
                    c.last_dl_qfi = (unsigned)psc_qfi;
                    if (psc_type != 0) { c.dl_wrong_pdu_type++; good = 0; }
                    if (psc_qfi != qfi) { c.dl_wrong_qfi++; good = 0; }
                }
                if (good) c.dl_ok++;
                c.dl_bytes += total - off;
                if (write(tun, g + off, total - off) < 0) c.dl_tun_errors++;
            }
        }
    next:
        if (dirty && now_ms() - last_write >= 50) {
            write_stats(stats, &c);
            last_write = now_ms();
            dirty = 0;
        }
    }
    write_stats(stats, &c);
    return 0;
}
