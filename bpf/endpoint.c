// SPDX-License-Identifier: GPL-2.0
/* Programs on each endpoint's host-side interface, attached with tcx:
 *   from_endpoint: tcx ingress, sees what the workload sends (its egress);
 *   to_endpoint:   tcx egress, sees what is delivered to the workload (its ingress).
 * One object serves every endpoint; what differs per endpoint lives in mb_endpoints.
 * Per packet: one CT lookup, in either direction and also when the fast path judges both
 * endpoints of a local connection; the ipcache and policy lookups only for new connections or
 * after the endpoint's policy or the ipcache changed (include/judge.h). A workload's connection
 * to a service frontend that the socket hooks did not translate is translated here
 * (include/nat.h). What goes to another node's endpoint is forwarded here (include/forward.h):
 * in tunnel mode encapsulated straight into the VXLAN device (bpf/overlay.c receives it there),
 * in native routing with the fast path sent straight out of the underlay device to its node,
 * whose stack routes it to the endpoint (see forward_to_node). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/judge.h"
#include "include/forward.h"

/* What is not IPv4: ARP passes; any other protocol (IPv6 included) or a truncated header is
 * dropped and reported, so nothing reaches or leaves a workload around policy. */
static __always_inline int not_ipv4(struct __sk_buff *skb, struct endpoint_info *ep, __u8 dir, struct packet *p, int parsed,
				    __u64 now)
{
	if (parsed == PARSE_PASS)
		return TC_ACT_OK;
	struct event_info ev = {
		.type = MB_EVENT_DROP,
		.subtype = parsed == PARSE_UNSUPPORTED ? MB_DROP_UNSUPPORTED_L3_PROTOCOL : MB_DROP_INVALID_PACKET_DROPPED,
		.direction = dir,
		.verdict = MB_VERDICT_DROPPED,
		.src_identity = dir == MB_DIR_EGRESS ? ep->identity : 0,
		.dst_identity = dir == MB_DIR_EGRESS ? 0 : ep->identity,
	};
	p->len = skb->len;
	metrics_count(ep->ep_id, 0, dir, ev.subtype, p->len);
	emit_event(skb, ep, p, &ev, now);
	return TC_ACT_SHOT;
}

/* Fast path to a local endpoint: its ingress is judged here (its to_endpoint program will not
 * see the packet), then the packet is routed by hand and handed straight to the workload's
 * interface, skipping the node's routing stack. Anything that does not fit (TTL about to
 * expire, no such endpoint) takes the routed path. */
static __always_inline int deliver_local(struct __sk_buff *skb, const struct datapath_config *cfg, struct endpoint_info *src,
					 struct packet *p, __u64 now, struct ct_conn *c, struct endpoint_info *dst)
{
	if (!cfg || !cfg->fast_path || p->icmp_error)
		return TC_ACT_OK;
	if (!dst || p->ttl <= 1)
		return TC_ACT_OK; /* no such endpoint, or the stack must send the ICMP time exceeded */
	int rc = judge(skb, cfg, dst, MB_DIR_INGRESS, p, src->identity, now, c, 1, NULL, NULL);
	if (rc != TC_ACT_OK)
		return rc;
	return forward_to_endpoint(skb, dst);
}

/* Tunnel mode: into the overlay towards `node`, the sender's identity in the VNI (the one the
 * cluster knows, never a node-local address identity). The packet was judged (and traced as
 * to-overlay); a key the kernel refuses is a drop of its own. */
static __always_inline int deliver_remote(struct __sk_buff *skb, __u32 tunnel_ifindex, struct endpoint_info *src, struct packet *p,
					  __u64 now, __be32 node)
{
	int rc = forward_to_overlay(skb, src->cluster_identity, node, tunnel_ifindex);
	if (rc >= 0)
		return rc;
	struct event_info ev = {
		.subtype = MB_DROP_ERROR_WRITING_TO_PACKET,
		.direction = MB_DIR_EGRESS,
		.src_identity = src->identity,
		.dst_identity = ipcache_identity4(p->t.daddr),
	};
	report_drop(skb, src, p, &ev, ev.dst_identity, now);
	return TC_ACT_SHOT;
}

/* The device packets to other nodes' endpoints are forwarded to by hand: the VXLAN device in
 * tunnel mode, the underlay device in native routing with the fast path; 0: the stack routes. */
static __always_inline __u32 remote_device(const struct datapath_config *cfg)
{
	if (!cfg)
		return 0;
	if (cfg->routing_mode == MB_ROUTING_TUNNEL)
		return cfg->tunnel_ifindex;
	return cfg->fast_path ? cfg->underlay_ifindex : 0;
}

SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_OK; /* not ours yet (being set up or torn down) */
	struct packet p = {};
	struct datapath_config *cfg = datapath_config();
	__u64 now = datapath_now(cfg);
	int parsed = parse_packet(skb, &p);
	if (parsed < 0)
		return not_ipv4(skb, ep, MB_DIR_EGRESS, &p, parsed, now);
	struct ct_conn c;
	__u32 daddr = p.t.daddr;
	/* Only the fast path needs the destination on every packet; without it, the service and
	 * route checks of a new connection find their own way. */
	struct endpoint_info *dst = cfg && cfg->fast_path ? bpf_map_lookup_elem(&mb_lxc, &daddr) : NULL;
	__be32 node = 0;
	/* One value, not one per mode, carried across judge(): two doubled the states the verifier
	 * explores for this program, past its limit. */
	__u32 remote_ifindex = remote_device(cfg);
	int rc = judge(skb, cfg, ep, MB_DIR_EGRESS, &p, 0, now, &c, 0, &dst, remote_ifindex ? &node : NULL);
	if (rc != TC_ACT_OK)
		return rc;
	if (node && cfg->routing_mode == MB_ROUTING_TUNNEL)
		return deliver_remote(skb, remote_ifindex, ep, &p, now, node);
	if (node)
		return forward_to_node(skb, node, remote_ifindex);
	return deliver_local(skb, cfg, ep, &p, now, &c, dst);
}

SEC("tc")
int to_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_OK;
	struct packet p = {};
	struct datapath_config *cfg = datapath_config();
	__u64 now = datapath_now(cfg);
	int parsed = parse_packet(skb, &p);
	if (parsed < 0)
		return not_ipv4(skb, ep, MB_DIR_INGRESS, &p, parsed, now);
	struct ct_conn c;
	return judge(skb, cfg, ep, MB_DIR_INGRESS, &p, 0, now, &c, 0, NULL, NULL);
}

char LICENSE[] SEC("license") = "GPL";
