/* Structs shared by the datapath and the agent. This file is the single source of truth for
 * every map key and value; src/datapath/layouts.ts mirrors it and test/unit/layouts.test.ts
 * checks the mirror against the BTF of the compiled object, so the two cannot drift.
 * Addresses are in network byte order; every struct is padded explicitly so that the agent
 * can zero all bytes of a key. */
#ifndef MEMBRANE_LAYOUTS_H
#define MEMBRANE_LAYOUTS_H

#define MB_FAMILY_IPV4 4
#define MB_FAMILY_IPV6 6

/* LPM-trie key: prefixlen counts the bits after it, so an IPv4 /24 has prefixlen 32 + 24
 * (family and padding are always matched exactly). Room for IPv6 from the start. */
struct ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

/* tunnel_endpoint and encrypt_key are reserved for the overlay and encryption issues. */
struct ipcache_value {
	__u32 identity;
	__u32 tunnel_endpoint;
	__u8 encrypt_key;
	__u8 flags;
	__u16 pad;
};

/* One entry per local endpoint, keyed by the ifindex of its host-side interface, so one
 * compiled program serves every endpoint. */
struct endpoint_info {
	__u32 ep_id;
	__u32 identity;
	__u32 ipv4;
	__u32 flags;
	__u8 mac[6];      /* workload-side interface */
	__u8 node_mac[6]; /* host-side interface */
};

/* Traffic counters per endpoint, direction, peer identity and outcome. */
struct metrics_key {
	__u32 ep_id;
	__u32 remote_identity;
	__u8 direction; /* MB_DIR_* (Hubble TrafficDirection values) */
	__u8 reason;    /* 0 forwarded, else a drop reason (Cilium's numbers) */
	__u16 pad;
};

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

#define MB_DIR_INGRESS 1
#define MB_DIR_EGRESS 2

#define MB_REASON_FORWARDED 0
#define MB_DROP_INVALID_SOURCE_IP 132

#define MB_IDENTITY_HOST 1
#define MB_IDENTITY_WORLD 2

#endif
