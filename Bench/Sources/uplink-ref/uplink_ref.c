// uplink-ref: the C reference loop for tools/bench (4b). Not part of the product.
//
// The same uplink work as upfd's worker on uplink-steer, in plain C on the same DPDK ring ports,
// fed the same way as `upf-replay run --preload` (circulating mbufs with a reference count of 2,
// the capture's next frame copied into each returned mbuf's first 256 bytes, RX timestamp in a
// dynamic field): rx_burst on n3 -> cref_parse (Bench/CReferenceParser: the full parser, the same
// decisions as UPFPackets, outer and inner checksums) -> outer destination is the n3 address ->
// TEID lookup (open addressing, records with their rules inline) -> first matching uplink rule
// (destination prefix, protocol, destination port ranges; precedence order) -> steer: engine
// instance by a hash of the 5-tuple, decapsulate (adj), write Ethernet -> per-port TX buffer of
// 32 -> tx_burst; drops freed in bulk. Counters per action. Sessions are those tools/gen-traffic
// writes (session i: TEID (i+1)*2654435761 mod 2^32, the rules of its policy), built in memory.
//
//   uplink-ref --pcap N3.pcap --sessions N [--duration S --warmup S | --loops N] [--mbufs K] [--idle-sleep]
// prints one JSON object (fed, mpps, latency_us p50/p99/p99_9/max, steered, dropped).
//
//   uplink-ref --device N3_VDEV --sessions N [--duration S --warmup S] [--mbufs K]
// the same worker on a device that does a NIC's per-packet work itself (tools/bench part h:
// N3_VDEV is e.g. `net_pcap0,rx_pcap=n3.pcap,infinite_rx=1`, which allocates and fills an mbuf for
// every packet it receives); core and engines are `net_null` ports that free what they are sent.
// No feeder: the main lcore only reads the worker's count. Prints mpps, steered, dropped.

#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>

#include <pcap/pcap.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "CReferenceParser.h"

#define BURST 32
#define MAX_RULES 4
enum { ACT_STEER = 1, ACT_N9 = 2, ACT_DROP = 3 };
enum { P_N3 = 0, P_CORE = 1, P_ENGINES = 2, NPORTS = 3 };

typedef struct {
    uint32_t prefix, mask;
    uint8_t proto;            /* 0: any */
    uint8_t nports;           /* destination port ranges, 0: any */
    uint8_t action;
    uint16_t lo[2], hi[2];
} rule_t;

typedef struct {
    uint32_t teid;
    uint32_t ue;
    uint32_t n9_teid;
    uint8_t nrules;
    rule_t rules[MAX_RULES];
} __attribute__((aligned(64))) session_t;

static session_t *sessions;
static uint32_t *index_slots; /* session number + 1, 0 = empty */
static uint32_t index_mask;

static inline uint32_t hash32(uint32_t x) { x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16; return x; }

static inline session_t *lookup(uint32_t teid)
{
    uint32_t h = hash32(teid) & index_mask;
    for (;;) {
        uint32_t s = index_slots[h];
        if (s == 0) return NULL;
        if (sessions[s - 1].teid == teid) return &sessions[s - 1];
        h = (h + 1) & index_mask;
    }
}

static void build(uint32_t n)
{
    uint32_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    index_mask = cap - 1;
    index_slots = calloc(cap, sizeof(uint32_t));
    if (posix_memalign((void **)&sessions, 64, sizeof(session_t) * n)) abort();
    memset(sessions, 0, sizeof(session_t) * n);
    for (uint32_t i = 0; i < n; i++) {
        session_t *s = &sessions[i];
        uint32_t teid = (uint32_t)(((uint64_t)(i + 1) * 2654435761ull) & 0xffffffffu);
        s->teid = teid ? teid : 1;
        s->ue = (10u << 24) + i + 1;
        s->n9_teid = i + 1;
        s->nrules = 3;
        s->rules[0] = (rule_t){.prefix = 0xC6336400u, .mask = 0xFFFFFF00u, .proto = 6, .nports = 2, .action = ACT_STEER,
                               .lo = {443, 8000}, .hi = {443, 8080}};
        s->rules[1] = (rule_t){.prefix = 0xCB007180u, .mask = 0xFFFFFF80u, .proto = 17, .action = ACT_DROP};
        s->rules[2] = (rule_t){.prefix = 0, .mask = 0, .action = ACT_N9};
        uint32_t h = hash32(s->teid) & index_mask;
        while (index_slots[h]) h = (h + 1) & index_mask;
        index_slots[h] = i + 1;
    }
}

static inline const rule_t *match(const session_t *s, const cref_inner *f)
{
    uint32_t dst = (uint32_t)f->destination.low;
    for (int r = 0; r < s->nrules; r++) {
        const rule_t *u = &s->rules[r];
        if (f->version == 4) {
            if ((dst & u->mask) != u->prefix) continue;
        } else if (u->mask != 0) continue;
        if (u->proto && u->proto != f->proto) continue;
        if (u->nports) {
            if (!f->has_ports) continue;
            int ok = 0;
            for (int k = 0; k < u->nports; k++)
                ok |= f->destination_port >= u->lo[k] && f->destination_port <= u->hi[k];
            if (!ok) continue;
        }
        return u;
    }
    return NULL;
}

static uint16_t port_id[NPORTS];
static struct rte_ring *rx_ring[NPORTS], *tx_ring[NPORTS];
static const uint8_t engine_mac[2][6] = {{2, 0, 0, 0, 0x50, 0x10}, {2, 0, 0, 0, 0x50, 0x11}};
static const uint8_t engines_port_mac[6] = {2, 0, 0, 0, 0x50, 0xfe};
static atomic_bool stop_flag;
static atomic_uint_fast64_t processed;
static uint64_t steered, n9, dropped_count;
static int idle_sleep;

static int uref_worker(void *arg)
{
    (void)arg;
    struct rte_mbuf *rx[BURST], *drops[BURST], *tx[NPORTS][BURST];
    int txn[NPORTS] = {0};
    cref_options opts = cref_default_options();
    cref_packet pkt;
    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        uint16_t n = rte_eth_rx_burst(port_id[P_N3], 0, rx, BURST);
        if (n == 0) {
            for (int p = 0; p < NPORTS; p++)
                if (txn[p]) {
                    uint16_t sent = rte_eth_tx_burst(port_id[p], 0, tx[p], txn[p]);
                    if (sent < txn[p]) rte_pktmbuf_free_bulk(tx[p] + sent, txn[p] - sent);
                    txn[p] = 0;
                }
            if (idle_sleep) usleep(20);
            continue;
        }
        int nd = 0;
        for (int i = 0; i < n; i++) {
            if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
            struct rte_mbuf *m = rx[i];
            uint8_t *b = rte_pktmbuf_mtod(m, uint8_t *);
            if (cref_parse(b, m->data_len, CREF_LINK_ETHERNET, &opts, &pkt) != 0 || pkt.kind != CREF_KIND_GPDU ||
                pkt.outer_version != 4 || (uint32_t)pkt.outer_destination.low != 0xC0000201u) {
                drops[nd++] = m;
                continue;
            }
            session_t *s = lookup(pkt.teid);
            const rule_t *r = s ? match(s, &pkt.inner) : NULL;
            if (!r || r->action != ACT_STEER) {
                if (r && r->action == ACT_N9) n9++;
                drops[nd++] = m;
                continue;
            }
            const cref_inner *f = &pkt.inner;
            uint32_t h = hash32((uint32_t)f->source.low ^ (uint32_t)f->destination.low ^
                                ((uint32_t)f->source_port << 16 | f->destination_port) ^ f->proto);
            uint32_t start = pkt.payload_offset - 14;
            uint8_t *e = b + start;
            memcpy(e, engine_mac[h & 1], 6);
            memcpy(e + 6, engines_port_mac, 6);
            e[12] = f->version == 4 ? 0x08 : 0x86;
            e[13] = f->version == 4 ? 0x00 : 0xdd;
            rte_pktmbuf_adj(m, (uint16_t)start);
            steered++;
            tx[P_ENGINES][txn[P_ENGINES]++] = m;
            if (txn[P_ENGINES] == BURST) {
                uint16_t sent = rte_eth_tx_burst(port_id[P_ENGINES], 0, tx[P_ENGINES], BURST);
                if (sent < BURST) rte_pktmbuf_free_bulk(tx[P_ENGINES] + sent, BURST - sent);
                txn[P_ENGINES] = 0;
            }
        }
        if (nd) { dropped_count += nd; rte_pktmbuf_free_bulk(drops, nd); }
        atomic_store_explicit(&processed, atomic_load_explicit(&processed, memory_order_relaxed) + n, memory_order_relaxed);
    }
    for (int p = 0; p < NPORTS; p++)
        if (txn[p]) {
            uint16_t sent = rte_eth_tx_burst(port_id[p], 0, tx[p], txn[p]);
            if (sent < txn[p]) rte_pktmbuf_free_bulk(tx[p] + sent, txn[p] - sent);
        }
    return 0;
}

/* Latency histogram: 16 ns buckets up to 16 ms, and the maximum. */
#define LBUCKETS (1u << 20)
static uint64_t *lat;
static uint64_t lat_n, lat_max;
static double pct(double p)
{
    uint64_t want = (uint64_t)(p / 100.0 * lat_n), acc = 0;
    for (uint32_t i = 0; i < LBUCKETS; i++) { acc += lat[i]; if (acc > want) return i * 16 / 1000.0; }
    return lat_max / 1000.0;
}

/* Sets up port `id` with one RX and one TX queue of 1024 descriptors; 0 on success. */
static int start_port(uint16_t id, struct rte_mempool *pool)
{
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    if (rte_eth_dev_configure(id, 1, 1, &conf) < 0 || rte_eth_rx_queue_setup(id, 0, 1024, 0, NULL, pool) < 0 ||
        rte_eth_tx_queue_setup(id, 0, 1024, 0, NULL) < 0 || rte_eth_dev_start(id) < 0)
        return -1;
    return 0;
}

/* --device mode: the worker on `device` (n3) and two net_null ports; Mpps over `duration` after `warmup`. */
static int run_device(const char *device, uint32_t nsessions, uint32_t nmbufs, double duration, double warmup)
{
    char n3arg[1024];
    snprintf(n3arg, sizeof n3arg, "--vdev=%s", device);
    char *eal[] = {"uplink-ref", "-l", "0,1", "--no-pci", "--no-huge", "-m", "512", "--no-shconf", "--log-level", "warning",
                   n3arg, "--vdev=net_null_uref1,no-rx=1", "--vdev=net_null_uref2,no-rx=1"};
    if (rte_eal_init(13, eal) < 0) { fprintf(stderr, "uplink-ref: EAL\n"); return 1; }
    if (rte_eth_dev_count_avail() != NPORTS) { fprintf(stderr, "uplink-ref: expected 3 ports, have %u\n", rte_eth_dev_count_avail()); return 1; }
    build(nsessions);
    struct rte_mempool *pool = rte_pktmbuf_pool_create("uref", nmbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (!pool) { fprintf(stderr, "uplink-ref: pool\n"); return 1; }
    /* Ports in --vdev order: n3, core, engines. */
    uint16_t id, k = 0;
    RTE_ETH_FOREACH_DEV(id) port_id[k++] = id;
    for (int p = 0; p < NPORTS; p++)
        if (start_port(port_id[p], pool) < 0) { fprintf(stderr, "uplink-ref: port %d\n", p); return 1; }
    rte_eal_remote_launch(uref_worker, NULL, 1);
    uint64_t hz = rte_get_tsc_hz();
    usleep((useconds_t)(warmup * 1e6));
    uint64_t t0 = rte_rdtsc(), p0 = atomic_load(&processed);
    usleep((useconds_t)(duration * 1e6));
    uint64_t t1 = rte_rdtsc(), p1 = atomic_load(&processed);
    atomic_store(&stop_flag, 1);
    rte_eal_wait_lcore(1);
    double secs = (double)(t1 - t0) / hz;
    printf("{\"mode\":\"device\",\"processed\":%lu,\"steered\":%lu,\"n9_default\":%lu,\"dropped\":%lu,"
           "\"measured_seconds\":%.3f,\"mpps\":%.4f}\n",
           (unsigned long)p1, steered, n9, dropped_count, secs, secs > 0 ? (p1 - p0) / secs / 1e6 : 0);
    for (int p = 0; p < NPORTS; p++) { rte_eth_dev_stop(port_id[p]); rte_eth_dev_close(port_id[p]); }
    rte_eal_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    const char *pcap_path = NULL, *device = NULL;
    uint32_t nsessions = 1000, nmbufs = 4096;
    int nmbufs_given = 0;
    double duration = 5, warmup = 0;
    long loops = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pcap") && i + 1 < argc) pcap_path = argv[++i];
        else if (!strcmp(argv[i], "--sessions") && i + 1 < argc) nsessions = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--duration") && i + 1 < argc) duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--loops") && i + 1 < argc) loops = atol(argv[++i]);
        else if (!strcmp(argv[i], "--mbufs") && i + 1 < argc) { nmbufs = atoi(argv[++i]); nmbufs_given = 1; }
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--idle-sleep")) idle_sleep = 1;
        else { fprintf(stderr, "uplink-ref: unknown argument %s\n", argv[i]); return 1; }
    }
    if (device) return run_device(device, nsessions, nmbufs_given ? nmbufs : 16384, duration, warmup);
    if (!pcap_path) { fprintf(stderr, "uplink-ref: --pcap or --device needed\n"); return 1; }

    /* The capture. */
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(pcap_path, err);
    if (!pc) { fprintf(stderr, "uplink-ref: %s\n", err); return 1; }
    size_t cap = 1 << 16, nframes = 0, total = 0, bytes_cap = 1 << 24;
    uint32_t *foff = malloc(cap * 4), *flen = malloc(cap * 4);
    uint8_t *fbytes = malloc(bytes_cap);
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(pc, &h, &d) == 1) {
        if (nframes == cap) { cap *= 2; foff = realloc(foff, cap * 4); flen = realloc(flen, cap * 4); }
        while (total + h->caplen > bytes_cap) { bytes_cap *= 2; fbytes = realloc(fbytes, bytes_cap); }
        memcpy(fbytes + total, d, h->caplen);
        foff[nframes] = total; flen[nframes] = h->caplen; total += h->caplen; nframes++;
    }
    pcap_close(pc);
    if (!nframes) { fprintf(stderr, "uplink-ref: empty capture\n"); return 1; }
    if (nmbufs > nframes) nmbufs = nframes;

    char *eal[] = {argv[0], "-l", "0,1", "--no-pci", "--no-huge", "-m", "512", "--no-shconf", "--log-level", "warning"};
    if (rte_eal_init(10, eal) < 0) { fprintf(stderr, "uplink-ref: EAL\n"); return 1; }
    build(nsessions);
    struct rte_mempool *pool = rte_pktmbuf_pool_create("uref", nmbufs + 8192, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    if (!pool) { fprintf(stderr, "uplink-ref: pool\n"); return 1; }
    static const struct rte_mbuf_dynfield desc = {.name = "uref_tag_stamp", .size = 16, .align = 8};
    int off = rte_mbuf_dynfield_register(&desc);
    const char *names[NPORTS] = {"uref_n3", "uref_core", "uref_eng"};
    for (int p = 0; p < NPORTS; p++) {
        char rn[32];
        snprintf(rn, sizeof rn, "%s_rx", names[p]);
        rx_ring[p] = rte_ring_create(rn, 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        snprintf(rn, sizeof rn, "%s_tx", names[p]);
        tx_ring[p] = rte_ring_create(rn, 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        int id = rte_eth_from_rings(names[p], &rx_ring[p], 1, &tx_ring[p], 1, 0);
        if (id < 0) { fprintf(stderr, "uplink-ref: port\n"); return 1; }
        port_id[p] = id;
        if (start_port(id, pool) < 0) { fprintf(stderr, "uplink-ref: port %d\n", p); return 1; }
    }

    /* Preload. */
    struct rte_mbuf **mb = malloc(sizeof(void *) * nmbufs);
    uint16_t *headroom = malloc(2 * nmbufs);
    uint32_t *slot_frame = malloc(4 * nmbufs), *queue = malloc(4 * nmbufs);
    uint8_t *inflight = calloc(nmbufs, 1);
    for (uint32_t i = 0; i < nmbufs; i++) {
        struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
        memcpy(rte_pktmbuf_append(m, flen[i]), fbytes + foff[i], flen[i]);
        rte_mbuf_refcnt_set(m, 2);
        uint64_t *fld = RTE_MBUF_DYNFIELD(m, off, uint64_t *);
        fld[0] = i; fld[1] = 0;
        mb[i] = m; headroom[i] = rte_pktmbuf_headroom(m); slot_frame[i] = i; queue[i] = i;
    }
    lat = calloc(LBUCKETS, 8);
    uint32_t head = 0, avail = nmbufs, next_frame = nmbufs % nframes;
    long inflight_n = 0, limit = nmbufs < 2048 ? nmbufs : 2048;
    rte_eal_remote_launch(uref_worker, NULL, 1);

    uint64_t hz = rte_get_tsc_hz(), start = rte_rdtsc();
    uint64_t mstart = start + (uint64_t)(warmup * hz);
    uint64_t fend = loops ? UINT64_MAX : mstart + (uint64_t)(duration * hz);
    long target = loops ? loops * (long)nframes : -1;
    long fed = 0, transmitted = 0, reclaimed = 0;
    uint64_t p_start = 0, p_end = 0, t_end = 0, last_reclaim = start, last_change = start;
    int measuring = warmup == 0, feeding = 1;
    struct rte_mbuf *scratch[BURST];
#define RESTORE(i) do { \
        struct rte_mbuf *m_ = mb[i]; uint32_t f_ = slot_frame[i]; \
        if (nmbufs != nframes) { f_ = next_frame++; if (next_frame == nframes) next_frame = 0; slot_frame[i] = f_; } \
        m_->data_off = headroom[i]; m_->data_len = flen[f_]; m_->pkt_len = flen[f_]; \
        memcpy(rte_pktmbuf_mtod(m_, void *), fbytes + foff[f_], flen[f_] < 256 ? flen[f_] : 256); \
        inflight[i] = 0; queue[(head + avail) % nmbufs] = i; avail++; } while (0)
    for (;;) {
        uint64_t now = rte_rdtsc();
        if (!measuring && now >= mstart) { measuring = 1; p_start = atomic_load(&processed); }
        if (feeding && (now >= fend || (target >= 0 && fed >= target))) { feeding = 0; t_end = now; p_end = atomic_load(&processed); }
        unsigned k = 0;
        if (feeding) {
            long allowed = avail;
            if (limit - inflight_n < allowed) allowed = limit - inflight_n;
            if (allowed > BURST) allowed = BURST;
            if (target >= 0 && target - fed < allowed) allowed = target - fed;
            for (; k < allowed; k++) {
                uint32_t i = queue[(head + k) % nmbufs];
                RTE_MBUF_DYNFIELD(mb[i], off, uint64_t *)[1] = now;
                scratch[k] = mb[i];
            }
            unsigned acc = k ? rte_ring_enqueue_burst(rx_ring[P_N3], (void **)scratch, k, NULL) : 0;
            for (unsigned j = 0; j < acc; j++) inflight[queue[(head + j) % nmbufs]] = 1;
            head = (head + acc) % nmbufs; avail -= acc; inflight_n += acc; fed += acc; k = acc;
        }
        unsigned drained = 0;
        now = rte_rdtsc();
        for (int p = 0; p < NPORTS; p++) {
            unsigned n;
            while ((n = rte_ring_dequeue_burst(tx_ring[p], (void **)scratch, BURST, NULL)) > 0) {
                drained += n;
                for (unsigned j = 0; j < n; j++) {
                    uint64_t *fld = RTE_MBUF_DYNFIELD(scratch[j], off, uint64_t *);
                    uint32_t i = (uint32_t)fld[0];
                    if (measuring && fld[1] >= mstart && (feeding || fld[1] < t_end)) {
                        uint64_t ns = (now - fld[1]) * 1000000000ull / hz;
                        lat[ns / 16 < LBUCKETS ? ns / 16 : LBUCKETS - 1]++;
                        lat_n++;
                        if (ns > lat_max) lat_max = ns;
                    }
                    RESTORE(i);
                    inflight_n--; transmitted++;
                }
            }
        }
        if (drained || k) last_change = now;
        if (now - last_reclaim >= hz / 1000 || (avail == 0 && !drained)) {
            last_reclaim = now;
            for (uint32_t i = 0; i < nmbufs; i++)
                if (inflight[i] && rte_mbuf_refcnt_read(mb[i]) == 1) {
                    rte_mbuf_refcnt_set(mb[i], 2);
                    RESTORE(i);
                    inflight_n--; reclaimed++; last_change = now;
                }
        }
        if (!feeding && (inflight_n == 0 || (now - last_change) > 2 * hz)) break;
        if (!k && !drained && (!feeding || idle_sleep)) usleep(idle_sleep ? 20 : 0);   /* under callgrind: no spinning feeder */
    }
    if (!t_end) { t_end = rte_rdtsc(); p_end = atomic_load(&processed); }
    atomic_store(&stop_flag, 1);
    rte_eal_wait_lcore(1);
    double secs = (double)(t_end - (warmup > 0 ? mstart : start)) / hz;
    printf("{\"fed\":%ld,\"transmitted\":%ld,\"dropped\":%ld,\"stranded\":%ld,\"steered\":%lu,\"n9_default\":%lu,"
           "\"measured_seconds\":%.3f,\"mpps\":%.4f,\"latency_us\":{\"samples\":%lu,\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f}}\n",
           fed, transmitted, reclaimed, inflight_n, steered, n9, secs, secs > 0 ? (p_end - p_start) / secs / 1e6 : 0,
           lat_n, pct(50), pct(99), pct(99.9), lat_max / 1000.0);
    for (int p = 0; p < NPORTS; p++) { rte_eth_dev_stop(port_id[p]); rte_eth_dev_close(port_id[p]); }
    rte_eal_cleanup();
    return 0;
}
