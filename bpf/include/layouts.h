/* Structs and constants shared by the datapath and the agent: the single source of truth for
 * every map key and value, and for every number both sides read. The agent's TypeScript side
 * (src/datapath/bpf.generated.ts) is generated from the BTF of the compiled objects by
 * scripts/gen-bpf-types.ts, so nothing here is mirrored by hand. For that, constants are enums
 * (BTF carries their names and values; bpf/layouts.c anchors every one), and field types say
 * what the bytes are:
 *   __be16    a port (or other 16-bit value) in network byte order;
 *   __be32    an IPv4 address in network byte order (the agent shows it dotted);
 *   mb_mac_t  a MAC address;
 *   __u8 x[N] raw bytes (padding, an address of either family).
 * Every struct is padded explicitly so that the agent can zero all bytes of a key.
 * Enum member names share a prefix (MB_<WHAT>_), which the generator strips: enum mb_ct_flags
 * { MB_CT_F_SERVICE } becomes CT_FLAGS.SERVICE. */
#ifndef MEMBRANE_LAYOUTS_H
#define MEMBRANE_LAYOUTS_H

#include "drop_reasons.h"

typedef __u8 mb_mac_t[6];

enum mb_family {
	MB_FAMILY_IPV4 = 4,
	MB_FAMILY_IPV6 = 6,
};

/* LPM-trie key: prefixlen counts the bits after it, so an IPv4 /24 has prefixlen 32 + 24
 * (family and padding are always matched exactly). Room for IPv6 from the start. */
struct ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

/* tunnel_endpoint: the underlay address of the node hosting the address (0: none, or this node),
 * where tunnel mode encapsulates traffic to it. encrypt_key is reserved for encryption. */
struct ipcache_value {
	__u32 identity;
	__be32 tunnel_endpoint;
	__u8 encrypt_key;
	__u8 flags; /* enum mb_ipcache_flags */
	__u16 pad;
};

enum mb_ipcache_flags {
	/* An address of the cluster beyond this node (another node's endpoint, pod CIDR or
	 * underlay address): traffic to it keeps its pod source, never masqueraded. */
	MB_IPCACHE_F_CLUSTER = 1 << 0,
};

/* One entry per local endpoint, keyed by the ifindex of its host-side interface (mb_endpoints:
 * one compiled program serves every endpoint) and by its address (mb_lxc: the fast path finds
 * the destination). policy_revision changes whenever the endpoint's policy entries change, which
 * makes established connections be judged again. `identity` is what this node's policy sees it
 * by, a node-local address identity where an ipBlock splits its identity; `cluster_identity` is
 * its identity as every node knows it, what its packets carry to other nodes (the VNI). */
struct endpoint_info {
	__u32 ep_id;
	__u32 identity;
	__be32 ipv4;
	__u32 flags;        /* enum mb_ep_flags */
	mb_mac_t mac;       /* workload-side interface */
	mb_mac_t node_mac;  /* host-side interface */
	__u32 policy_revision;
	__u32 ifindex;    /* host-side interface */
	__u32 cluster_identity;
};

/* The keys of mb_endpoints and mb_lxc. */
struct endpoint_key {
	__u32 ifindex; /* host-side interface */
};

struct lxc_key {
	__be32 ipv4;
};

enum mb_ep_flags {
	MB_EP_F_INGRESS_ENFORCED = 1 << 0,
	MB_EP_F_EGRESS_ENFORCED = 1 << 1,
	MB_EP_F_ALLOW_HOST_INGRESS = 1 << 2,
	MB_EP_F_POLICY_AUDIT = 1 << 3, /* policy drops are reported (verdict AUDIT) but let through */
};

/* Policy of every endpoint in one LPM trie. The prefix always covers ep_id, identity and
 * direction (72 bits), then the protocol (8 bits; left out = any protocol) and the destination
 * port's high bits (port ranges are power-of-two aligned prefixes). identity 0 = any peer. */
struct policy_key {
	__u32 prefixlen;
	__u32 ep_id;
	__u32 identity;
	__u8 direction;
	__u8 protocol;
	__be16 dport; /* network order, so its high bits come first in the prefix */
};

enum mb_policy_prefix {
	MB_POLICY_PREFIX_FIXED = 72, /* ep_id, identity and direction: always matched */
	MB_POLICY_PREFIX_FULL = 96,  /* every bit: an exact key */
};

struct policy_value {
	__u8 flags;        /* enum mb_policy_flags */
	__u8 l4_prefixlen; /* protocol+port bits matched: the specificity of the entry */
	__u16 proxy_port;  /* reserved for L7 redirection */
	__u32 rule_id;     /* which rule produced the entry (flow attribution) */
};

enum mb_policy_flags {
	MB_POLICY_F_DENY = 1 << 0,
};

/* Ports of the agent's own TCP listeners (the Observer API, metrics) on the node: a new
 * connection from an endpoint to the node on one of them is dropped, so a workload cannot read
 * every flow or the node's metrics through a listener bound beyond loopback. No policy of the
 * user's allows them yet (host policies will); the drop names this built-in rule. */
struct agent_port_key {
	__be16 port;
	__u8 protocol;
	__u8 pad;
};

struct agent_port_value {
	__u32 rule_id; /* what a drop names: MB_RULE_AGENT_PORTS */
};

/* Rule ids (policy_value.rule_id, flow_event.rule_id) that are not a user's rule. */
enum mb_rule {
	MB_RULE_NONE = 0,
	MB_RULE_AGENT_PORTS = 0xffffffff, /* the built-in guard of the agent's ports */
};

/* Connection tracking: one entry per connection on this node, whichever endpoints see it, so
 * every packet costs one lookup in either direction. The key is the tuple in a canonical order
 * (a = the lower address, then the lower port), so a packet and its reply find the same entry;
 * MB_CT_F_ORIG_B says the connection's first packet came from side b. For ICMP echo the
 * identifier is the source port of requests and the destination port of replies, so both
 * directions share a key too. */
struct ct_key {
	__be32 addr_a;
	__be32 addr_b;
	__be16 port_a;
	__be16 port_b;
	__u8 protocol;
	__u8 pad[3];
};

/* What one local endpoint decided about the connection: the originating endpoint's egress or
 * the accepting endpoint's ingress. ep_id 0: no local endpoint judged this side. */
struct ct_side {
	__u32 ep_id;
	__u32 policy_revision;  /* the endpoint's revision when it judged the connection */
	__u32 ipcache_revision; /* datapath_config.ipcache_revision when the peer's identity was read */
};

struct ct_value {
	__u64 last_seen_ns; /* the datapath clock (datapath_config.ns_per_jiffy) */
	__u64 packets; /* both directions, each packet once */
	__u64 bytes;
	__u32 src_identity; /* the originator */
	__u32 dst_identity; /* the acceptor */
	struct ct_side egress;  /* the originator, when it is a local endpoint */
	struct ct_side ingress; /* the acceptor, when it is a local endpoint */
	__u8 tcp_flags_seen;    /* both directions: drives the lifetime */
	__u8 tx_flags_seen;     /* original direction: monitor aggregation */
	__u8 rx_flags_seen;     /* reply direction */
	__u8 flags;             /* enum mb_ct_flags */
	__u32 last_tx_report;   /* seconds of the monotonic clock */
	__u32 last_rx_report;
	__be32 nat_addr;        /* tc-level service translation (see enum mb_ct_flags) */
	__be16 nat_port;
	__u16 pad;
	/* With MB_CT_F_TUNNEL: the node the remote peer is reached through (0: not the overlay), as
	 * the ipcache said at the egress side's revision. Placed in what was the tail padding, so
	 * the entry keeps its size and a restart adopts the map; older entries lack the flag. */
	__be32 tunnel_endpoint;
};

enum mb_ct_flags {
	/* The entry is keyed by a client's tuple towards a service frontend; nat_* is the backend
	 * its packets are translated to (a connection keeps its backend while the service changes). */
	MB_CT_F_SERVICE = 1 << 0,
	/* The entry belongs to a translated connection; nat_* is the frontend its replies come from. */
	MB_CT_F_REVNAT = 1 << 1,
	/* The connection's first packet came from the key's side b. */
	MB_CT_F_ORIG_B = 1 << 2,
	/* tunnel_endpoint is known: egress needs no ipcache lookup to encapsulate. */
	MB_CT_F_TUNNEL = 1 << 3,
};

/* Connection lifetimes in seconds (include/conntrack.h, and the agent's sweep). */
enum mb_ct_lifetime {
	MB_CT_LIFETIME_TCP = 21600,        /* established */
	MB_CT_LIFETIME_TCP_SYN = 60,       /* half-open */
	MB_CT_LIFETIME_TCP_CLOSING = 10,   /* after FIN or RST */
	MB_CT_LIFETIME_OTHER = 60,
};

/* struct config_key: the one entry of mb_config. */
struct config_key {
	__u32 index;
};

/* Datapath settings written by the agent (one entry). */
struct datapath_config {
	__u32 aggregation;     /* enum mb_aggregation */
	__u32 report_interval; /* seconds between traces of an active connection at medium */
	__u32 fast_path;       /* deliver to local endpoints with bpf_redirect_peer */
	/* Moves whenever an address changes identity or leaves the ipcache: tracked connections
	 * then read their peer's identity again and are judged again. */
	__u32 ipcache_revision;
	/* Connection tracking's clock: bpf_jiffies64() times this (0: the coarse monotonic clock). */
	__u32 ns_per_jiffy;
	__u32 routing_mode;   /* enum mb_routing_mode: how traffic to other nodes' endpoints leaves */
	__u32 tunnel_ifindex; /* the VXLAN device (tunnel mode) */
	/* BPF masquerading: the node's underlay address that endpoints' traffic leaving the cluster
	 * is translated to (0: off). */
	__be32 snat_ipv4;
	/* Native routing: the underlay device that packets to other nodes' endpoints are forwarded
	 * out of by hand (0: the stack routes them). */
	__u32 underlay_ifindex;
};

/* BPF masquerading's NAT table (mb_snat): two entries per translated connection. OUT is keyed by
 * the endpoint's own tuple as it leaves (to_*: the node's address and port it goes out with);
 * IN by the reply's tuple as it arrives at the node (to_*: the endpoint's address and port). For
 * ICMP echo the ports are the echo identifier, on the side parse_packet puts it (sport out,
 * dport in). A mapping lives as long as the endpoint's connection-tracking entry. */
struct snat_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 direction; /* enum mb_snat_direction */
	__u8 pad[2];
};

struct snat_value {
	__be32 to_addr;
	__be16 to_port;
	__u16 pad;
	__u64 created_ns; /* the datapath clock */
};

enum mb_snat_direction {
	MB_SNAT_OUT = 0,
	MB_SNAT_IN = 1,
};

/* Between nodes (DESIGN.md §3.13). Native: packets to the other nodes' endpoints go to the
 * hosting node's underlay address without encapsulation (sent by hand with the fast path, else
 * by the node's routes) and receivers classify by the ipcache. Tunnel: packets to an address whose ipcache
 * entry names a tunnel endpoint are encapsulated in VXLAN to that node, the sender's security
 * identity in the VNI. */
enum mb_routing_mode {
	MB_ROUTING_NATIVE = 0,
	MB_ROUTING_TUNNEL = 1,
};

/* Monitor aggregation levels (Cilium's numbers). */
enum mb_aggregation {
	MB_AGG_NONE = 0,
	MB_AGG_LOW = 2,
	MB_AGG_MEDIUM = 3,
	MB_AGG_MAXIMUM = 4,
};

/* One datapath notification in the events ring buffer; the agent turns it into a flow. */
struct flow_event {
	__u64 timestamp_ns; /* monotonic clock */
	__u8 type;          /* enum mb_event_type (Cilium's monitor message types) */
	__u8 subtype;       /* enum mb_drop_reason, or enum mb_trace_point for traces */
	__u8 direction;     /* enum mb_direction of the connection relative to the endpoint */
	__u8 verdict;       /* enum mb_verdict (Hubble's numbers) */
	__u8 ct_state;      /* enum mb_ct_state */
	__u8 tcp_flags;
	__u8 protocol;
	__u8 match_type;    /* enum mb_match_type (Hubble's policy_match_type) */
	__u32 ep_id;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 icmp_type;
	__u8 icmp_code;
	__be16 ethertype; /* IPv4, or what was dropped as unsupported */
	__u32 orig_len;
	mb_mac_t src_mac;
	mb_mac_t dst_mac;
	__u32 pad2;
};

/* Services: socket-level load balancing (bpf/sock.c) and tc-level translation of what the
 * socket hooks do not see (bpf/endpoint.c) share these maps. A frontend is (VIP, port,
 * protocol); its backends occupy slots 1..count of the service. */
struct lb_service_key {
	__be32 vip;
	__be16 port;
	__u8 protocol; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

struct lb_service_value {
	__u32 service_id;
	__u16 count;     /* active backend slots; 0 = refuse connections */
	__u8 algorithm;  /* enum mb_lb_algorithm */
	__u8 flags;
	__u32 maglev_size; /* entries of the service's Maglev table (prime) */
	__u32 affinity_timeout; /* seconds a client keeps its backend; 0 = no session affinity */
};

enum mb_lb_algorithm {
	MB_LB_RANDOM = 1,
	MB_LB_MAGLEV = 2,
};

/* One entry of a service's Maglev lookup table: which backend slot owns a hash bucket. */
struct lb_maglev_key {
	__u32 service_id;
	__u32 index;
};

struct lb_maglev_value {
	__u32 slot; /* the backend slot that owns the bucket */
};

/* Session affinity: the backend a client was last given by a service. Socket-level translation
 * knows the client by its network namespace (one per endpoint), tc-level by its address. */
struct lb_affinity_key {
	__u64 client;  /* netns cookie, or IPv4 address (network order) */
	__u32 service_id;
	__u8 kind;     /* enum mb_lb_client */
	__u8 pad[3];
};

enum mb_lb_client {
	MB_LB_CLIENT_NETNS = 1,
	MB_LB_CLIENT_IP = 2,
};

struct lb_affinity_value {
	__u64 last_used_ns; /* monotonic clock */
	__be32 ip;          /* the backend */
	__be16 port;
	__u16 pad;
};

/* Every active backend of a service (value: its weight), so a remembered backend that left the
 * service is never used again. */
struct lb_member_key {
	__u32 service_id;
	__be32 ip;
	__be16 port;
	__u16 pad;
};

struct lb_member_value {
	__u32 weight;
};

struct lb_backend_key {
	__u32 service_id;
	__u32 slot; /* 1..count */
};

struct lb_backend_value {
	__be32 ip;
	__be16 port;
	__u16 pad;
};

/* Unconnected UDP: what a socket sent to a backend on behalf of a VIP, so replies can show the
 * VIP (recvmsg) and getpeername shows it for connected sockets. */
struct lb_revnat_key {
	__u64 cookie; /* socket cookie */
	__be32 ip;    /* backend */
	__be16 port;
	__u16 pad;
};

struct lb_revnat_value {
	__be32 vip;
	__be16 port;
	__u16 pad;
};

enum mb_event_type {
	MB_EVENT_DROP = 1,
	MB_EVENT_TRACE = 4,
	MB_EVENT_POLICY_VERDICT = 5,
};

/* Trace observation points as Cilium's monitor numbers them (event_type.sub_type). */
enum mb_trace_point {
	MB_TRACE_TO_ENDPOINT = 0,
	MB_TRACE_TO_STACK = 3,     /* an endpoint's packet handed to the node's stack (out of the cluster, or routed) */
	MB_TRACE_TO_OVERLAY = 4,   /* encapsulated towards another node */
	MB_TRACE_FROM_ENDPOINT = 5,
	MB_TRACE_TO_NETWORK = 11,  /* native routing: forwarded by hand out of the node's underlay device */
};

/* Hubble's Verdict numbers. */
enum mb_verdict {
	MB_VERDICT_FORWARDED = 1,
	MB_VERDICT_DROPPED = 2,
	MB_VERDICT_AUDIT = 4,
};

enum mb_ct_state {
	MB_CT_NEW = 0,
	MB_CT_ESTABLISHED = 1,
	MB_CT_REPLY = 2,
	MB_CT_RELATED = 3,
};

/* Hubble's policy_match_type numbers. */
enum mb_match_type {
	MB_MATCH_NONE = 0,
	MB_MATCH_L3_ONLY = 1,
	MB_MATCH_L3_L4 = 2,
	MB_MATCH_L4_ONLY = 3,
	MB_MATCH_ALL = 4,
};

/* Traffic counters per endpoint, direction, peer identity and outcome. */
struct metrics_key {
	__u32 ep_id;
	__u32 remote_identity;
	__u8 direction; /* enum mb_direction */
	__u8 reason;    /* enum mb_drop_reason (MB_DROP_FORWARDED: none) */
	__u16 pad;
};

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* Hubble's TrafficDirection numbers. */
enum mb_direction {
	MB_DIR_INGRESS = 1,
	MB_DIR_EGRESS = 2,
};

/* Reserved identities (Cilium's numbers) the datapath itself tells apart. */
enum mb_identity {
	MB_IDENTITY_HOST = 1,
	MB_IDENTITY_WORLD = 2,
	MB_IDENTITY_REMOTE_NODE = 6, /* another node's host: a VNI of HOST means this on receipt */
};

#endif
