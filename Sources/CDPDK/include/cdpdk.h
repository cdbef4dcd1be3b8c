/*
 * cdpdk.h: the C boundary between upfd's Swift code and DPDK 22.11.
 *
 * This target is the only code in the package that includes rte_*.h. Everything Swift needs from
 * DPDK is reached through the `cdpdk_` names declared here:
 *
 *  - Setup and control (EAL, mempools, ports, lcores) are ordinary functions defined in cdpdk.c.
 *    They run a handful of times per process, so a call across the boundary costs nothing that
 *    matters, and keeping them out of line keeps the header small for Swift's clang importer.
 *  - Per-packet helpers are `static inline` here, so that Swift's clang importer emits their bodies
 *    into the calling Swift module and the optimiser inlines them (measured on this project: a Swift
 *    burst loop is then as fast as the same loop in C; see the fast-path rules in ARCHITECTURE).
 *
 * `struct rte_mbuf` and `struct rte_mempool` are cache-line aligned and full of unions and bit
 * fields; Swift does not import them and sees pointers to them as `OpaquePointer`. Every field is
 * therefore read or written through a helper below, never from Swift directly.
 *
 * The header must compile both with the C target's flags and through Swift's importer, which gets
 * `-include rte_config.h` but not `-march=corei7`; see the note at cdpdk_mbuf_free().
 */
#ifndef CDPDK_H
#define CDPDK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>

#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Constants. Exposed as an enum because Swift imports enum constants reliably, whereas DPDK's     */
/* macros are sometimes expressions the importer skips.                                            */

enum {
    /** Returned by cdpdk_next_worker_lcore() when there are no more workers; also the bound. */
    CDPDK_MAX_LCORE = RTE_MAX_LCORE,
    /** Pass as `prev` to cdpdk_next_worker_lcore() to get the first worker. */
    CDPDK_LCORE_ITER_START = -1,
    /** Returned by cdpdk_port_next() when there are no more ports; also the bound on port ids. */
    CDPDK_MAX_ETHPORTS = RTE_MAX_ETHPORTS,
    /** Buffer size for cdpdk_port_name() / cdpdk_port_driver_name(), including the NUL. */
    CDPDK_PORT_NAME_MAX = RTE_ETH_NAME_MAX_LEN,
    /** Default mbuf data room: 2048 bytes of packet plus RTE_PKTMBUF_HEADROOM for encapsulation. */
    CDPDK_MBUF_DEFAULT_DATAROOM = RTE_MBUF_DEFAULT_BUF_SIZE,
    /** Headroom reserved in front of received data; room for GTP-U encapsulation by prepend. */
    CDPDK_MBUF_HEADROOM = RTE_PKTMBUF_HEADROOM,
    /** "Any NUMA socket", as taken by mempool creation and returned for ports of unknown socket. */
    CDPDK_SOCKET_ID_ANY = SOCKET_ID_ANY,
};

/* ---------------------------------------------------------------------------------------------- */
/* EAL                                                                                             */

/**
 * rte_eal_init() on an argv-style array (argv[0] is the program name). Returns the number of
 * arguments consumed, or -1 with the reason in cdpdk_errno(). EAL may permute `argv`, so the caller
 * passes a copy it owns. Can succeed only once per process.
 */
int cdpdk_eal_init(int argc, char **argv);

/** rte_eal_cleanup(): releases EAL memory. Stop and close every port and free mempools first. */
int cdpdk_eal_cleanup(void);

/**
 * Sends DPDK's log to stderr. Call before cdpdk_eal_init(): on Linux, EAL's default log stream
 * writes to stdout (and syslog), which would mix with reports a tool prints there (e.g. JSON).
 */
int cdpdk_log_to_stderr(void);

/** The calling thread's rte_errno (a thread-local, which Swift cannot read directly). */
int cdpdk_errno(void);

/** DPDK's text for an errno value, including DPDK's own codes above __ELASTERRNO. */
const char *cdpdk_strerror(int errnum);

/* ---------------------------------------------------------------------------------------------- */
/* Mempools                                                                                        */

/**
 * rte_pktmbuf_pool_create(): `n` mbufs (2^k - 1 is optimal for the backing ring) with a per-lcore
 * cache of `cache_size` and `data_room` bytes of buffer each (headroom included), on NUMA socket
 * `socket_id` (CDPDK_SOCKET_ID_ANY for any). Returns NULL with cdpdk_errno() set on failure.
 */
struct rte_mempool *cdpdk_pktmbuf_pool_create(const char *name, unsigned n, unsigned cache_size,
                                              uint16_t data_room, int socket_id);

/** Mbufs currently taken from the pool, per-lcore caches counted as free: 0 at exit = no leak. */
unsigned cdpdk_mempool_in_use_count(const struct rte_mempool *mp);

/** Mbufs available in the pool, including those sitting in per-lcore caches. */
unsigned cdpdk_mempool_avail_count(const struct rte_mempool *mp);

/** Total mbufs the pool was created with. */
unsigned cdpdk_mempool_size(const struct rte_mempool *mp);

/** rte_mempool_free(). Every port using the pool must be closed first. */
void cdpdk_mempool_free(struct rte_mempool *mp);

/* ---------------------------------------------------------------------------------------------- */
/* Ports                                                                                           */

/** Plain-C copy of the counters of struct rte_eth_stats that upfd reports. */
typedef struct cdpdk_port_stats {
    uint64_t ipackets;   /**< packets received */
    uint64_t opackets;   /**< packets transmitted */
    uint64_t ibytes;     /**< bytes received (some virtual PMDs, e.g. net_ring, leave it 0) */
    uint64_t obytes;     /**< bytes transmitted */
    uint64_t imissed;    /**< packets dropped by the device because the RX ring was full */
    uint64_t ierrors;    /**< erroneous received packets */
    uint64_t oerrors;    /**< failed transmissions */
    uint64_t rx_nombuf;  /**< RX mbuf allocation failures: the mempool is too small */
} cdpdk_port_stats;

/** Link state, from rte_eth_link_get_nowait() (never blocks, unlike rte_eth_link_get()). */
typedef struct cdpdk_link {
    uint32_t speed_mbps; /**< 0 when unknown */
    uint8_t up;
    uint8_t full_duplex;
    uint8_t autoneg;
} cdpdk_link;

/** What a port can do, from rte_eth_dev_info_get(). */
typedef struct cdpdk_port_info {
    uint16_t max_rx_queues;
    uint16_t max_tx_queues;
    uint16_t rx_desc_max;
    uint16_t tx_desc_max;
    char driver_name[RTE_ETH_NAME_MAX_LEN];
} cdpdk_port_info;

/** Number of ports probed and usable. */
uint16_t cdpdk_port_count(void);

/** First valid port id >= `from`, or CDPDK_MAX_ETHPORTS when there is none: iterate from 0. */
uint16_t cdpdk_port_next(uint16_t from);

/** Port id of the device named `name` (e.g. "net_ring0", "0000:3b:00.0"). 0 or negative errno. */
int cdpdk_port_by_name(const char *name, uint16_t *port_id);

/** Device name of a port into `buf` (CDPDK_PORT_NAME_MAX bytes is enough). 0 or negative errno. */
int cdpdk_port_name(uint16_t port_id, char *buf, size_t len);

/** NUMA socket of the port, or CDPDK_SOCKET_ID_ANY when unknown (virtual devices). */
int cdpdk_port_socket_id(uint16_t port_id);

/** Capabilities of the port. 0 or negative errno. */
int cdpdk_port_info_get(uint16_t port_id, cdpdk_port_info *info);

/**
 * Configures the port with `nb_rxq` RX and `nb_txq` TX queues of `nb_rxd` / `nb_txd` descriptors
 * (adjusted to the device's limits), every RX queue filling from `mp`. Queues are allocated on the
 * port's own NUMA socket so descriptors and mbufs stay local to the device. The port must be
 * stopped. Returns 0 or a negative errno.
 */
int cdpdk_port_configure(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
                         uint16_t nb_txd, struct rte_mempool *mp);

/**
 * As cdpdk_port_configure(), and with more than one RX queue spreads packets over the queues by
 * RSS on what the device can hash of: the GTP-U TEID (RTE_ETH_RSS_GTPU), else IP addresses and
 * UDP/TCP ports. `*rss_applied` (may be NULL) receives the RSS hash functions enabled: 0 when the
 * device offers none (virtual devices), and then only queue 0 receives anything.
 */
int cdpdk_port_configure_rss(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
                             uint16_t nb_txd, struct rte_mempool *mp, uint64_t *rss_applied);

/** RTE_ETH_RSS_GTPU, for reporting which RSS the device accepted. */
uint64_t cdpdk_rss_gtpu(void);

/** rte_eth_dev_start(). 0 or negative errno. */
int cdpdk_port_start(uint16_t port_id);

/** rte_eth_dev_stop(). 0 or negative errno. */
int cdpdk_port_stop(uint16_t port_id);

/** rte_eth_dev_close(): releases queues (net_pcap flushes and closes its tx_pcap file here). */
int cdpdk_port_close(uint16_t port_id);

/** rte_eth_promiscuous_enable(). 0, or negative errno (-ENOTSUP on PMDs without the notion). */
int cdpdk_port_promiscuous_enable(uint16_t port_id);

/** Link state without waiting. 0 or negative errno. */
int cdpdk_port_link(uint16_t port_id, cdpdk_link *link);

/** The port's MAC address into `mac[0..5]`. 0 or negative errno. */
int cdpdk_port_mac(uint16_t port_id, uint8_t mac[6]);

/** Basic counters. 0 or negative errno. */
int cdpdk_port_stats_get(uint16_t port_id, cdpdk_port_stats *stats);

/** Zeroes the basic counters. 0 or negative errno. */
int cdpdk_port_stats_reset(uint16_t port_id);

/* ---------------------------------------------------------------------------------------------- */
/* Lcores and time                                                                                 */

/** Function run on a worker lcore; its return value is what cdpdk_wait_lcore() returns. */
typedef int (*cdpdk_lcore_fn)(void *arg);

/** Number of lcores EAL runs on (main included). */
unsigned cdpdk_lcore_count(void);

/** Id of the main lcore (the thread that called cdpdk_eal_init()). */
unsigned cdpdk_main_lcore(void);

/** Lcore id of the calling thread; CDPDK_MAX_LCORE on a thread EAL does not know. */
unsigned cdpdk_lcore_id(void);

/**
 * Next enabled worker (non-main) lcore after `prev`, or CDPDK_MAX_LCORE when there is none.
 * Start with CDPDK_LCORE_ITER_START (this mirrors RTE_LCORE_FOREACH_WORKER, a macro Swift lacks).
 */
unsigned cdpdk_next_worker_lcore(unsigned prev);

/** NUMA socket of an lcore. */
unsigned cdpdk_lcore_socket_id(unsigned lcore_id);

/** rte_eal_remote_launch(): runs fn(arg) on a waiting worker lcore. 0, or negative errno (-EBUSY). */
int cdpdk_remote_launch(cdpdk_lcore_fn fn, void *arg, unsigned worker_id);

/** Waits for a worker to finish; returns fn's return value (0 if the lcore was not running). */
int cdpdk_wait_lcore(unsigned worker_id);

/** Waits for every worker to finish. */
void cdpdk_wait_all_lcores(void);

/** NUMA socket of the calling thread (CDPDK_SOCKET_ID_ANY for a thread EAL does not know). */
int cdpdk_socket_id(void);

/** TSC frequency in Hz, measured by EAL at init. */
uint64_t cdpdk_tsc_hz(void);

/** The TSC: cheap enough to check a deadline once per burst. Inline so a burst loop pays ~20 cycles. */
static inline uint64_t cdpdk_rdtsc(void) { return rte_rdtsc(); }

/* ---------------------------------------------------------------------------------------------- */
/* Rings and ring-backed ports (the replay harness feeds and drains the data path through them).   */

/** A single-producer single-consumer ring of `count` (a power of two) pointers; NULL + rte_errno. */
struct rte_ring *cdpdk_ring_create(const char *name, unsigned count, int socket_id);

/** Frees a ring (NULL is ignored). No port may still use it. */
void cdpdk_ring_free(struct rte_ring *r);

/**
 * An ethdev whose RX queue i reads rx_rings[i] and TX queue i writes tx_rings[i]
 * (rte_eth_from_rings). Returns the port id, or a negative errno.
 */
int cdpdk_port_from_rings(const char *name, struct rte_ring *const rx_rings[], unsigned nb_rx,
                          struct rte_ring *const tx_rings[], unsigned nb_tx, int socket_id);

/** Entries waiting in a ring. */
static inline unsigned cdpdk_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

/** Enqueues up to `n` mbufs; returns how many fit. */
static inline unsigned cdpdk_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf *const *mbufs, unsigned n)
{
    return rte_ring_enqueue_burst(r, (void *const *)mbufs, n, NULL);
}

/** Dequeues up to `n` mbufs; returns how many. */
static inline unsigned cdpdk_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **mbufs, unsigned n)
{
    return rte_ring_dequeue_burst(r, (void **)mbufs, n, NULL);
}

/* ---------------------------------------------------------------------------------------------- */
/* Per-packet helpers (static inline: Swift inlines them).                                         */

/** Receives up to `n` packets from an RX queue into `pkts`; returns how many. Never blocks. */
static inline uint16_t cdpdk_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts,
                                      uint16_t n)
{
    return rte_eth_rx_burst(port_id, queue_id, pkts, n);
}

/**
 * Queues up to `n` packets for transmission; returns how many the PMD took. The PMD owns (and
 * frees) those; the caller still owns pkts[ret..<n] and must retry or free them.
 */
static inline uint16_t cdpdk_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **pkts,
                                      uint16_t n)
{
    return rte_eth_tx_burst(port_id, queue_id, pkts, n);
}

/** Start of the packet data in the first segment (rte_pktmbuf_mtod). */
static inline void *cdpdk_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

/** Bytes of packet in the first segment. */
static inline uint16_t cdpdk_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }

/** Bytes of packet over all segments. */
static inline uint32_t cdpdk_mbuf_pkt_len(const struct rte_mbuf *m) { return m->pkt_len; }

/** Number of segments: 1 for every packet the fast path builds. */
static inline uint16_t cdpdk_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

/** Port the packet was received on. */
static inline uint16_t cdpdk_mbuf_port(const struct rte_mbuf *m) { return m->port; }

/** Offload flags (RTE_MBUF_F_*), e.g. checksum status reported by the NIC. */
static inline uint64_t cdpdk_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }

/** Packet type (RTE_PTYPE_*) as classified by the NIC, 0 when the PMD does not classify. */
static inline uint32_t cdpdk_mbuf_packet_type(const struct rte_mbuf *m) { return m->packet_type; }

/** Free bytes in front of the data: how much cdpdk_mbuf_prepend() can give. */
static inline uint16_t cdpdk_mbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

/** Free bytes after the data in the last segment: how much cdpdk_mbuf_append() can give. */
static inline uint16_t cdpdk_mbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

/** Removes `len` bytes from the front (decapsulation); new data start, or NULL if too short. */
static inline void *cdpdk_mbuf_adj(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_adj(m, len);
}

/** Adds `len` bytes in front (encapsulation); new data start, or NULL without enough headroom. */
static inline void *cdpdk_mbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_prepend(m, len);
}

/** Adds `len` bytes at the end; start of the added bytes, or NULL without enough tailroom. */
static inline void *cdpdk_mbuf_append(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_append(m, len);
}

/**
 * Sets the length of a single-segment mbuf (data_len and pkt_len together, so they never
 * disagree). The caller guarantees len <= data room - headroom.
 */
static inline void cdpdk_mbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
    m->data_len = len;
    m->pkt_len = len;
}

/**
 * Pointer to `len` bytes at offset `off` of the packet: into the mbuf when contiguous, else
 * copied into `buf` (which must hold `len` bytes). NULL when the packet is shorter than off+len.
 */
static inline const void *cdpdk_mbuf_read(const struct rte_mbuf *m, uint32_t off, uint32_t len,
                                          void *buf)
{
    return rte_pktmbuf_read(m, off, len, buf);
}

/** Prefetches the first cache line of the packet data, to hide the miss on the next packet. */
static inline void cdpdk_mbuf_prefetch_data(const struct rte_mbuf *m)
{
    rte_prefetch0(rte_pktmbuf_mtod(m, const void *));
}

/** One mbuf from the pool (reset, data at the default headroom), or NULL when it is empty. */
static inline struct rte_mbuf *cdpdk_mbuf_alloc(struct rte_mempool *mp)
{
    return rte_pktmbuf_alloc(mp);
}

/** `count` mbufs at once, or none: 0 on success, -ENOENT when the pool cannot supply them all. */
static inline int cdpdk_mbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                        unsigned count)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

/**
 * Frees `count` packets (all segments; NULL entries are skipped). rte_pktmbuf_free_bulk is an
 * exported function of librte_mbuf, so this is a direct call, not a second copy of the code.
 */
static inline void cdpdk_mbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count)
{
    rte_pktmbuf_free_bulk(mbufs, count);
}

/**
 * Frees one packet (all segments; NULL is ignored).
 *
 * Defined out of line in cdpdk.c, not here: rte_pktmbuf_free() inlines down to rte_memcpy(), whose
 * x86 version uses SSSE3 intrinsics (_mm_alignr_epi8). Swift's importer compiles inline bodies for
 * the Swift target's baseline CPU (no -march=corei7), where clang refuses those intrinsics. The bulk
 * free above is the fast-path way to free anyway.
 */
void cdpdk_mbuf_free(struct rte_mbuf *m);

/* ---------------------------------------------------------------------------------------------- */
/* Thread timer slack: how late the kernel may wake a sleeping thread (default 50 us). A worker    */
/* that naps sets it to 1 us, so that a 100 us nap is not a 150 us one.                             */

/** Sets the calling thread's timer slack; returns the slack now in force (nanoseconds), or -1. */
static inline long cdpdk_set_timer_slack_ns(unsigned long ns) {
    if (prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) != 0) return -1;
    return (long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
}

/** The calling thread's timer slack (nanoseconds). */
static inline long cdpdk_get_timer_slack_ns(void) { return (long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); }

/* ---------------------------------------------------------------------------------------------- */
/* Preloaded replay (upf-replay run --preload): mbufs that circulate instead of being freed.       */
/* ---------------------------------------------------------------------------------------------- */

/** Registers (once per process) the replay's 16-byte mbuf dynamic field; its offset, or -1. */
int cdpdk_replay_field_offset(void);

/** The replay's two 64-bit words in mbuf `m` (field at `offset`): [0] tag (index), [1] RX stamp. */
static inline uint64_t *cdpdk_mbuf_field64(struct rte_mbuf *m, int offset)
{
    return RTE_MBUF_DYNFIELD(m, offset, uint64_t *);
}

static inline uint16_t cdpdk_mbuf_refcnt(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
static inline void cdpdk_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v) { rte_mbuf_refcnt_set(m, v); }

/** Puts a single-segment mbuf's window back at `headroom` with `len` bytes. */
static inline void cdpdk_mbuf_reset_window(struct rte_mbuf *m, uint16_t headroom, uint16_t len)
{
    m->data_off = headroom;
    m->data_len = len;
    m->pkt_len = len;
}

static inline uint16_t cdpdk_mbuf_buf_len(const struct rte_mbuf *m) { return m->buf_len; }

#ifdef __cplusplus
}
#endif

#endif /* CDPDK_H */
