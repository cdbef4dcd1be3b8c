#ifndef UPFD_CPCAP_SHIM_H
#define UPFD_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
