/* Forwarding by hand, around the node's routing stack: one routed hop (the TTL), then either
 * straight into a local endpoint's namespace (bpf_redirect_peer), into the overlay (a tunnel
 * key for the VXLAN device: the sender's security identity in the VNI, the hosting node as the
 * outer destination; the device encapsulates), or in native routing out of the underlay device
 * to the hosting node (bpf_redirect_neigh: the kernel's neighbour entry gives the MACs).
 * API: callers judge the packet first, and leave a packet whose TTL would expire (ttl <= 1) to
 * the stack, which answers it with ICMP time exceeded.
 * Verifier note (measured with the overlay prototype on this kernel): every call of
 * bpf_skb_set/get_tunnel_key passes sizeof(key). Calls with different sizes were merged by clang
 * into one call with a variable size, which the verifier refused. */
#ifndef MEMBRANE_FORWARD_H
#define MEMBRANE_FORWARD_H

#include "parse.h"

/* Outer TTL of encapsulated packets (the kernel's IPv4 default). */
#define OVERLAY_TTL 64

/* One routed hop, in place, with the incremental checksum update of the kernel's
 * ip_decrease_ttl. Returns -1 when the header is not in the linear data. */
static __always_inline int forward_hop(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return -1;
	__u32 check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
	return 0;
}

/* Into local endpoint `dst`'s namespace as the node's routing would deliver it: one hop, the
 * MACs its neighbour entry would give, then the workload interface's ingress. Returns the
 * program's verdict (TC_ACT_OK: the stack routes it instead). */
static __always_inline int forward_to_endpoint(struct __sk_buff *skb, const struct endpoint_info *dst)
{
	if (forward_hop(skb) < 0)
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	__builtin_memcpy(eth->h_dest, dst->mac, 6);
	__builtin_memcpy(eth->h_source, dst->node_mac, 6);
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* Gives the packet its tunnel key: VNI = `identity` (24 bits: endpoint identities stay below
 * 2^24), outer destination `node` (network order), no outer UDP checksum (the inner packet
 * carries its own). The outer source is the node's address towards `node`, by its routes. */
static __always_inline long forward_tunnel_key(struct __sk_buff *skb, __u32 identity, __be32 node)
{
	struct bpf_tunnel_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.tunnel_id = identity;
	key.remote_ipv4 = bpf_ntohl(node); /* the helper takes host order */
	key.tunnel_ttl = OVERLAY_TTL;
	return bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX);
}

/* Into the overlay from an endpoint: one hop, the tunnel key, then the VXLAN device's egress
 * (inner MACs unchanged: the receiving node rewrites them). Returns the program's verdict, or
 * -1 when the key could not be set (the caller reports the drop). */
static __always_inline int forward_to_overlay(struct __sk_buff *skb, __u32 identity, __be32 node, __u32 tunnel_ifindex)
{
	if (forward_hop(skb) < 0)
		return TC_ACT_OK;
	if (forward_tunnel_key(skb, identity, node) < 0)
		return -1;
	return bpf_redirect(tunnel_ifindex, 0);
}

/* Native routing, from an endpoint: one hop, then out of the underlay device `ifindex` to the
 * node `node` (network order) hosting the destination, as the agent's route to that node's pod
 * CIDR would send it; the neighbour subsystem resolves the node's MAC (and queues the packet
 * while it asks). Returns the program's verdict.
 * Only the sending side is forwarded by hand. Delivering what arrives on the underlay straight
 * to the endpoint (bpf_redirect_peer, or bpf_redirect to its host interface) was measured on
 * these VMs at 0.54-0.76x (medians) the TCP stream throughput of the stack's forwarding
 * (alternating pairs, veth underlay), for +8% request/response; the sending side alone is
 * neutral for streams (docs/architecture.md). */
static __always_inline int forward_to_node(struct __sk_buff *skb, __be32 node, __u32 ifindex)
{
	if (forward_hop(skb) < 0)
		return TC_ACT_OK;
	struct bpf_redir_neigh nh;
	__builtin_memset(&nh, 0, sizeof(nh));
	nh.nh_family = 2; /* AF_INET */
	nh.ipv4_nh = node;
	return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

#endif
