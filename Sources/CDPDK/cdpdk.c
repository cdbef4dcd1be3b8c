/*
 * cdpdk.c: out-of-line DPDK setup and control for upfd (EAL, mempools, ports, lcores).
 *
 * These run a few times per process; keeping them here rather than in the header keeps the
 * Swift-visible header small and free of DPDK constructs that need the full C target flags.
 * Errors come back as negative errno values (DPDK's ethdev convention) so Swift can turn them
 * into typed errors with cdpdk_strerror().
 */
#include "cdpdk.h"
#include <rte_eth_ring.h>
#include <rte_ring.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_log.h>
#include <rte_lcore.h>
#include <rte_mempool.h>

/* ---------------------------------------------------------------------------------------------- */
/* EAL                                                                                             */

int cdpdk_eal_init(int argc, char **argv)
{
    /* On a bad argument EAL prints its whole usage text with printf(), i.e. to stdout, where a
     * tool's report (or JSON) goes. Point stdout at stderr for the call so it stays diagnostic. */
    int saved_stdout;
    int ret;

    fflush(stdout);
    saved_stdout = dup(STDOUT_FILENO);
    if (saved_stdout >= 0)
        dup2(STDERR_FILENO, STDOUT_FILENO);
    ret = rte_eal_init(argc, argv);
    if (saved_stdout >= 0) {
        int saved_errno = rte_errno;
        fflush(stdout);
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
        rte_errno = saved_errno;
    }
    return ret;
}

int cdpdk_eal_cleanup(void) { return rte_eal_cleanup(); }

int cdpdk_log_to_stderr(void) { return rte_openlog_stream(stderr); }

int cdpdk_errno(void) { return rte_errno; }

const char *cdpdk_strerror(int errnum) { return rte_strerror(errnum); }

/* ---------------------------------------------------------------------------------------------- */
/* Mempools                                                                                        */

struct rte_mempool *cdpdk_pktmbuf_pool_create(const char *name, unsigned n, unsigned cache_size,
                                              uint16_t data_room, int socket_id)
{
    /* No private area: upfd keeps per-packet state in its own burst arrays, not in the mbuf. */
    return rte_pktmbuf_pool_create(name, n, cache_size, 0, data_room, socket_id);
}

unsigned cdpdk_mempool_in_use_count(const struct rte_mempool *mp)
{
    return rte_mempool_in_use_count(mp);
}

unsigned cdpdk_mempool_avail_count(const struct rte_mempool *mp)
{
    return rte_mempool_avail_count(mp);
}

unsigned cdpdk_mempool_size(const struct rte_mempool *mp) { return mp->size; }

void cdpdk_mempool_free(struct rte_mempool *mp) { rte_mempool_free(mp); }

/* ---------------------------------------------------------------------------------------------- */
/* Ports                                                                                           */

uint16_t cdpdk_port_count(void) { return rte_eth_dev_count_avail(); }

uint16_t cdpdk_port_next(uint16_t from) { return (uint16_t)rte_eth_find_next(from); }

int cdpdk_port_by_name(const char *name, uint16_t *port_id)
{
    return rte_eth_dev_get_port_by_name(name, port_id);
}

int cdpdk_port_name(uint16_t port_id, char *buf, size_t len)
{
    char name[RTE_ETH_NAME_MAX_LEN];
    int ret;

    if (buf == NULL || len == 0)
        return -EINVAL;
    /* rte_eth_dev_get_name_by_port() assumes a buffer of RTE_ETH_NAME_MAX_LEN: copy it bounded. */
    ret = rte_eth_dev_get_name_by_port(port_id, name);
    if (ret != 0)
        return ret;
    if (strlen(name) >= len)
        return -ENOSPC;
    strcpy(buf, name);
    return 0;
}

int cdpdk_port_socket_id(uint16_t port_id)
{
    /* -1 means "unknown", which is what virtual devices report; callers then use any socket. */
    int socket = rte_eth_dev_socket_id(port_id);
    return socket < 0 ? SOCKET_ID_ANY : socket;
}

int cdpdk_port_info_get(uint16_t port_id, cdpdk_port_info *info)
{
    struct rte_eth_dev_info dev_info;
    int ret;

    if (info == NULL)
        return -EINVAL;
    ret = rte_eth_dev_info_get(port_id, &dev_info);
    if (ret != 0)
        return ret;
    memset(info, 0, sizeof(*info));
    info->max_rx_queues = dev_info.max_rx_queues;
    info->max_tx_queues = dev_info.max_tx_queues;
    info->rx_desc_max = dev_info.rx_desc_lim.nb_max;
    info->tx_desc_max = dev_info.tx_desc_lim.nb_max;
    if (dev_info.driver_name != NULL) {
        strncpy(info->driver_name, dev_info.driver_name, sizeof(info->driver_name) - 1);
    }
    return 0;
}

int cdpdk_port_configure(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
                         uint16_t nb_txd, struct rte_mempool *mp)
{
    return cdpdk_port_configure_rss(port_id, nb_rxq, nb_txq, nb_rxd, nb_txd, mp, NULL);
}

uint64_t cdpdk_rss_gtpu(void) { return RTE_ETH_RSS_GTPU; }

int cdpdk_port_configure_rss(uint16_t port_id, uint16_t nb_rxq, uint16_t nb_txq, uint16_t nb_rxd,
                             uint16_t nb_txd, struct rte_mempool *mp, uint64_t *rss_applied)
{
    /* No offloads, MTU 1500: the fast path does its own parsing and checksums, so it depends on
     * nothing a particular NIC might or might not offer. RSS only with several RX queues. */
    struct rte_eth_conf conf;
    struct rte_eth_dev_info info;
    int socket = cdpdk_port_socket_id(port_id);
    uint64_t rss = 0;
    uint16_t q;
    int ret;

    if (nb_rxq > 0 && mp == NULL)
        return -EINVAL;
    memset(&conf, 0, sizeof(conf));
    if (nb_rxq > 1) {
        ret = rte_eth_dev_info_get(port_id, &info);
        if (ret != 0)
            return ret;
        /* The TEID spreads the sessions of one gNB; addresses and ports where it is not offered. */
        rss = info.flow_type_rss_offloads & RTE_ETH_RSS_GTPU;
        if (rss == 0)
            rss = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP);
        if (rss != 0) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
    }
    if (rss_applied != NULL)
        *rss_applied = rss;
    ret = rte_eth_dev_configure(port_id, nb_rxq, nb_txq, &conf);
    if (ret != 0)
        return ret;
    /* Clamp the ring sizes to what the device supports (and its alignment) instead of failing. */
    ret = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
    if (ret != 0)
        return ret;
    for (q = 0; q < nb_rxq; q++) {
        ret = rte_eth_rx_queue_setup(port_id, q, nb_rxd, socket, NULL, mp);
        if (ret != 0)
            return ret;
    }
    for (q = 0; q < nb_txq; q++) {
        ret = rte_eth_tx_queue_setup(port_id, q, nb_txd, socket, NULL);
        if (ret != 0)
            return ret;
    }
    return 0;
}

struct rte_ring *cdpdk_ring_create(const char *name, unsigned count, int socket_id)
{
    return rte_ring_create(name, count, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

void cdpdk_ring_free(struct rte_ring *r) { rte_ring_free(r); }

int cdpdk_port_from_rings(const char *name, struct rte_ring *const rx_rings[], unsigned nb_rx,
                          struct rte_ring *const tx_rings[], unsigned nb_tx, int socket_id)
{
    int port = rte_eth_from_rings(name, rx_rings, nb_rx, tx_rings, nb_tx,
                                  socket_id < 0 ? (unsigned)SOCKET_ID_ANY : (unsigned)socket_id);
    return port < 0 ? -rte_errno : port;
}

int cdpdk_port_start(uint16_t port_id) { return rte_eth_dev_start(port_id); }

int cdpdk_port_stop(uint16_t port_id) { return rte_eth_dev_stop(port_id); }

int cdpdk_port_close(uint16_t port_id) { return rte_eth_dev_close(port_id); }

int cdpdk_port_promiscuous_enable(uint16_t port_id) { return rte_eth_promiscuous_enable(port_id); }

int cdpdk_port_link(uint16_t port_id, cdpdk_link *link)
{
    struct rte_eth_link l;
    int ret;

    if (link == NULL)
        return -EINVAL;
    memset(&l, 0, sizeof(l));
    ret = rte_eth_link_get_nowait(port_id, &l);
    if (ret != 0)
        return ret;
    link->speed_mbps = l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : l.link_speed;
    link->up = l.link_status == RTE_ETH_LINK_UP;
    link->full_duplex = l.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    link->autoneg = l.link_autoneg == RTE_ETH_LINK_AUTONEG;
    return 0;
}

int cdpdk_port_mac(uint16_t port_id, uint8_t mac[6])
{
    struct rte_ether_addr addr;
    int ret;

    if (mac == NULL)
        return -EINVAL;
    ret = rte_eth_macaddr_get(port_id, &addr);
    if (ret != 0)
        return ret;
    memcpy(mac, addr.addr_bytes, RTE_ETHER_ADDR_LEN);
    return 0;
}

int cdpdk_port_stats_get(uint16_t port_id, cdpdk_port_stats *stats)
{
    struct rte_eth_stats s;
    int ret;

    if (stats == NULL)
        return -EINVAL;
    ret = rte_eth_stats_get(port_id, &s);
    if (ret != 0)
        return ret;
    stats->ipackets = s.ipackets;
    stats->opackets = s.opackets;
    stats->ibytes = s.ibytes;
    stats->obytes = s.obytes;
    stats->imissed = s.imissed;
    stats->ierrors = s.ierrors;
    stats->oerrors = s.oerrors;
    stats->rx_nombuf = s.rx_nombuf;
    return 0;
}

int cdpdk_port_stats_reset(uint16_t port_id) { return rte_eth_stats_reset(port_id); }

/* ---------------------------------------------------------------------------------------------- */
/* Lcores and time                                                                                 */

unsigned cdpdk_lcore_count(void) { return rte_lcore_count(); }

unsigned cdpdk_main_lcore(void) { return rte_get_main_lcore(); }

unsigned cdpdk_lcore_id(void) { return rte_lcore_id(); }

unsigned cdpdk_next_worker_lcore(unsigned prev)
{
    /* skip_main = 1, wrap = 0: the same walk as RTE_LCORE_FOREACH_WORKER. */
    return rte_get_next_lcore(prev, 1, 0);
}

unsigned cdpdk_lcore_socket_id(unsigned lcore_id) { return rte_lcore_to_socket_id(lcore_id); }

int cdpdk_remote_launch(cdpdk_lcore_fn fn, void *arg, unsigned worker_id)
{
    if (fn == NULL || worker_id >= RTE_MAX_LCORE || worker_id == rte_get_main_lcore())
        return -EINVAL;
    return rte_eal_remote_launch(fn, arg, worker_id);
}

int cdpdk_wait_lcore(unsigned worker_id)
{
    if (worker_id >= RTE_MAX_LCORE)
        return -EINVAL;
    return rte_eal_wait_lcore(worker_id);
}

void cdpdk_wait_all_lcores(void) { rte_eal_mp_wait_lcore(); }

int cdpdk_socket_id(void)
{
    unsigned socket = rte_socket_id();
    return socket == (unsigned)SOCKET_ID_ANY ? SOCKET_ID_ANY : (int)socket;
}

uint64_t cdpdk_tsc_hz(void) { return rte_get_tsc_hz(); }

/* ---------------------------------------------------------------------------------------------- */
/* Per-packet helper kept out of line (see the header for why).                                    */

void cdpdk_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

int cdpdk_replay_field_offset(void)
{
    static const struct rte_mbuf_dynfield desc = {
        .name = "upf_replay_tag_stamp",
        .size = 3 * sizeof(uint64_t),   /* tag, RX stamp (harness), TX stamp (worker) */
        .align = __alignof__(uint64_t),
    };
    return rte_mbuf_dynfield_register(&desc);
}
