// A C reference for UPFPackets' PacketParser: the same work on the same bytes (Ethernet/VLAN,
// outer IPv4/IPv6 with extension chain, UDP 2152, GTP-U header, optional fields, extension chain
// with PSC / UDP port / PDCP numbers and comprehension bits, IE walk of echo / error indication /
// end marker, inner IPv4 with header checksum, inner IPv6 extension chain, inner TCP/UDP/SCTP
// ports), with the same bounds checks, filling a result equivalent to `ParsedPacket`.
//
// Drop reasons and kinds use the raw values of Swift's `DropReason` and `PacketKind`; parse-bench
// checks the names at start-up so a renumbering on either side is caught.
#ifndef CREFERENCE_PARSER_H
#define CREFERENCE_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t high;
    uint64_t low;
} cref_addr;

typedef struct {
    bool present;
    uint8_t pdu_type;
    uint8_t qfi;
    bool rqi;
    bool ppp;
    uint8_t ppi;
} cref_psc;

typedef struct {
    uint8_t version;
    cref_addr source;
    cref_addr destination;
    uint8_t proto;
    uint16_t source_port;
    uint16_t destination_port;
    uint8_t traffic_class;
    bool has_ports;
    bool is_fragment;
} cref_inner;

typedef struct {
    uint8_t kind;
    uint16_t ether_type;
    uint8_t vlan_count;
    uint16_t outer_vlan;
    uint32_t l3_offset;
    uint8_t outer_version;
    uint8_t outer_protocol;
    cref_addr outer_source;
    cref_addr outer_destination;
    uint8_t outer_traffic_class;
    uint32_t l3_end;
    uint32_t l4_offset;
    uint16_t udp_source_port;
    uint16_t udp_destination_port;
    uint16_t fragment_id;
    uint16_t fragment_offset;
    bool more_fragments;
    uint32_t gtp_offset;
    uint8_t gtp_flags;
    uint8_t message_type;
    uint32_t teid;
    uint16_t sequence_number;
    uint8_t n_pdu_number;
    uint8_t extension_count;
    uint8_t skipped_extension_count;
    cref_psc psc;
    bool has_udp_port_extension;
    uint16_t udp_port_extension;
    bool has_pdcp_number;
    uint32_t pdcp_number;
    uint32_t payload_offset;
    uint32_t payload_end;
    bool has_recovery;
    uint8_t recovery_counter;
    bool has_teid_data_i;
    uint32_t teid_data_i;
    bool has_gsn_address;
    cref_addr gsn_address;
    cref_inner inner;
    uint32_t inner_l4_offset;
} cref_packet;

enum cref_kind {
    CREF_KIND_GPDU = 0,
    CREF_KIND_ECHO_REQUEST,
    CREF_KIND_ECHO_RESPONSE,
    CREF_KIND_ERROR_INDICATION,
    CREF_KIND_END_MARKER,
    CREF_KIND_EXT_HDR_NOTIFICATION,
    CREF_KIND_NON_GTP,
    CREF_KIND_ARP,
    CREF_KIND_OUTER_FRAGMENT,
    CREF_KIND_COUNT
};

enum cref_drop {
    CREF_OK = 0,
    CREF_FRAME_TOO_SHORT,
    CREF_VLAN_TOO_DEEP,
    CREF_UNSUPPORTED_LINK_TYPE,
    CREF_OUTER_IP_VERSION_MISMATCH,
    CREF_OUTER_IPV4_TRUNCATED,
    CREF_OUTER_IPV4_BAD_HEADER_LENGTH,
    CREF_OUTER_IPV4_BAD_TOTAL_LENGTH,
    CREF_OUTER_IPV4_BAD_CHECKSUM,
    CREF_OUTER_IPV6_TRUNCATED,
    CREF_OUTER_IPV6_BAD_PAYLOAD_LENGTH,
    CREF_OUTER_IPV6_EXTENSION_TRUNCATED,
    CREF_OUTER_IPV6_EXTENSION_CHAIN_TOO_LONG,
    CREF_OUTER_IPV6_FRAGMENT,
    CREF_OUTER_FRAGMENT_OVERLAP,
    CREF_OUTER_FRAGMENT_TOO_LARGE,
    CREF_OUTER_FRAGMENT_EVICTED,
    CREF_OUTER_FRAGMENT_MISALIGNED,
    CREF_UDP_TRUNCATED,
    CREF_UDP_BAD_LENGTH,
    CREF_UDP_ZERO_CHECKSUM_OVER_IPV6,
    CREF_GTP_TRUNCATED,
    CREF_GTP_VERSION_NOT_1,
    CREF_GTP_PRIME,
    CREF_GTP_LENGTH_EXCEEDS_PAYLOAD,
    CREF_GTP_LENGTH_SHORTER_THAN_HEADERS,
    CREF_GTP_UNKNOWN_MESSAGE_TYPE,
    CREF_GTP_EXTENSION_ZERO_LENGTH,
    CREF_GTP_EXTENSION_TRUNCATED,
    CREF_GTP_EXTENSION_CHAIN_TOO_LONG,
    CREF_GTP_EXTENSION_BAD_LENGTH,
    CREF_GTP_EXTENSION_COMPREHENSION_REQUIRED,
    CREF_PSC_BAD_LENGTH,
    CREF_PSC_BAD_PDU_TYPE,
    CREF_PSC_QFI_ZERO,
    CREF_PSC_WRONG_DIRECTION,
    CREF_ECHO_WITHOUT_SEQUENCE_NUMBER,
    CREF_GTP_MALFORMED_INFORMATION_ELEMENT,
    CREF_GTP_MISSING_MANDATORY_INFORMATION_ELEMENT,
    CREF_GPDU_TEID_ZERO,
    CREF_GPDU_EMPTY,
    CREF_INNER_IP_VERSION_UNKNOWN,
    CREF_INNER_IPV4_TRUNCATED,
    CREF_INNER_IPV4_BAD_HEADER_LENGTH,
    CREF_INNER_IPV4_BAD_TOTAL_LENGTH,
    CREF_INNER_IPV4_TOTAL_LENGTH_EXCEEDS_PAYLOAD,
    CREF_INNER_IPV4_BAD_CHECKSUM,
    CREF_INNER_IPV6_TRUNCATED,
    CREF_INNER_IPV6_PAYLOAD_LENGTH_ZERO,
    CREF_INNER_IPV6_PAYLOAD_LENGTH_EXCEEDS_PAYLOAD,
    CREF_INNER_IPV6_EXTENSION_TRUNCATED,
    CREF_INNER_IPV6_EXTENSION_CHAIN_TOO_LONG,
    CREF_INNER_IPV6_JUMBOGRAM,
    CREF_INNER_L4_TRUNCATED,
    CREF_DROP_COUNT
};

enum cref_link { CREF_LINK_ETHERNET = 0, CREF_LINK_SLL, CREF_LINK_SLL2, CREF_LINK_RAW_IP };
enum cref_direction { CREF_DIRECTION_ANY = 0, CREF_DIRECTION_UPLINK, CREF_DIRECTION_DOWNLINK };

typedef struct {
    uint16_t gtp_port;
    uint8_t direction;
    bool verify_outer_ipv4_checksum;
    bool verify_inner_ipv4_checksum;
} cref_options;

/// The defaults of Swift's `ParserOptions()`.
static inline cref_options cref_default_options(void) {
    cref_options o = {2152, CREF_DIRECTION_ANY, true, true};
    return o;
}

/// Parses one packet into `packet`. Returns 0 or the drop reason (Swift `DropReason` raw value).
int cref_parse(const uint8_t *bytes, size_t count, int link, const cref_options *options,
               cref_packet *packet);

/// Snake-case names, as Swift's `DropReason.name` / `PacketKind.name`; NULL when out of range.
const char *cref_drop_name(int reason);
const char *cref_kind_name(int kind);

#endif
