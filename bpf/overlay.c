// SPDX-License-Identifier: GPL-2.0
/* Programs on the node's VXLAN device (collect_md: created `external`, so every packet carries
 * its tunnel key as metadata), attached with tcx:
 *   from_overlay: tcx ingress, sees what other nodes send here, decapsulated. The VNI is the
 *     sender's security identity, the outer source the sending node. A packet for a local
 *     endpoint is judged for that endpoint's ingress with the VNI's identity, never the inner
 *     source address's (DESIGN.md §3.13), and delivered straight into its namespace; the
 *     endpoint's to_endpoint program does not see it. Anything else (the node's own
 *     addresses, a TTL about to expire) goes to the node's stack.
 *   to_overlay: tcx egress, sees what enters the device. What from_endpoint encapsulated has
 *     its tunnel key and passes; what the node's stack routed here (the node's own traffic to
 *     other nodes' pod CIDRs, by src/cluster/routing.ts's routes) gets one here, with its
 *     source's identity: HOST for the node's own addresses.
 * A VNI of HOST is REMOTE_NODE on receipt, as in Cilium: another node's host is never this one. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/judge.h"
#include "include/forward.h"

#define PACKET_HOST_ 0
#define VNI_LIMIT (1 << 24)

/* The sender's identity as this node sees it. */
static __always_inline __u32 sender_identity(__u32 vni)
{
	if (vni == MB_IDENTITY_HOST)
		return MB_IDENTITY_REMOTE_NODE;
	return vni ? vni : MB_IDENTITY_WORLD; /* 0: a VXLAN sender that is no Membrane node */
}

/* To the node's stack. The inner destination MAC is the sending node's, so the kernel marked the
 * decapsulated frame PACKET_OTHERHOST, which IP would drop: it is for this host. */
static __always_inline int to_stack(struct __sk_buff *skb)
{
	bpf_skb_change_type(skb, PACKET_HOST_);
	return TC_ACT_OK;
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key;
	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return TC_ACT_SHOT; /* a collect_md device always gives one: without it, no identity */
	struct packet p = {};
	if (parse_packet(skb, &p) < 0)
		return to_stack(skb); /* not IPv4: the device speaks no ARP nor IPv6, nothing answers */
	__u32 daddr = p.t.daddr;
	struct endpoint_info *dst = bpf_map_lookup_elem(&mb_lxc, &daddr);
	if (!dst || p.ttl <= 1)
		return to_stack(skb); /* the node itself, or the stack must send the ICMP time exceeded */
	struct datapath_config *cfg = datapath_config();
	__u64 now = datapath_now(cfg);
	struct ct_conn c;
	int rc = judge(skb, cfg, dst, MB_DIR_INGRESS, &p, sender_identity(key.tunnel_id), now, &c, 0, NULL, NULL);
	if (rc != TC_ACT_OK)
		return rc;
	return forward_to_endpoint(skb, dst);
}

SEC("tc")
int to_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key;
	__builtin_memset(&key, 0, sizeof(key));
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK; /* from_endpoint's: judged and keyed already */
	if (bpf_skb_pull_data(skb, ETH_HLEN + sizeof(struct iphdr)) < 0)
		return TC_ACT_SHOT;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_SHOT; /* IPv4 only, as everywhere in the datapath */
	struct ipcache_value *dst = ipcache_lookup4(ip->daddr);
	if (!dst || !dst->tunnel_endpoint)
		return TC_ACT_SHOT; /* no node hosts it (the ipcache has yet to learn of it) */
	__be32 node = dst->tunnel_endpoint;
	__u32 identity = ipcache_identity4(ip->saddr);
	/* CIDR identities are this node's alone (the local scope bit): elsewhere they mean world. */
	if (identity >= VNI_LIMIT)
		identity = MB_IDENTITY_WORLD;
	if (forward_tunnel_key(skb, identity, node) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
