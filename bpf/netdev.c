// SPDX-License-Identifier: GPL-2.0
/* Programs on the node's underlay device (the one holding its address), attached with tcx, for
 * BPF masquerading (include/snat.h) and native routing's delivery:
 *   to_netdev:   tcx egress: a local endpoint's packet leaving the cluster gets the node's
 *                address (and a free port) as its source;
 *   from_netdev: tcx ingress: a reply to such a packet gets the endpoint's address and port
 *                back, then goes on through the node's stack to the endpoint, whose program
 *                judges it as the reply of the connection it tracked. In native routing with
 *                the fast path, a packet another node sent to a local endpoint is judged for
 *                that endpoint's ingress (the peer classified through the ipcache) and
 *                delivered straight into its namespace, as bpf/overlay.c does in tunnel mode.
 * Masquerading does nothing while datapath_config.snat_ipv4 is 0, delivery while
 * underlay_ifindex is; both pass everything that is not theirs (the node's own traffic, the
 * overlay's) untouched. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/judge.h"
#include "include/snat.h"
#include "include/forward.h"

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	struct datapath_config *cfg = datapath_config();
	if (!cfg || !cfg->snat_ipv4)
		return TC_ACT_OK;
	__be32 node = cfg->snat_ipv4;
	struct packet p = {};
	if (parse_packet(skb, &p) < 0)
		return TC_ACT_OK;
	__u32 saddr = p.t.saddr;
	if (saddr == node)
		return TC_ACT_OK; /* the node's own, the overlay's encapsulated packets included: no lookup */
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_lxc, &saddr);
	/* An endpoint's ICMP error towards the outside (it has no connection there to report on)
	 * is left alone, as everything not sent by an endpoint. */
	if (!ep || p.icmp_error || !snat_destination(p.t.daddr))
		return TC_ACT_OK;
	__u64 now = datapath_now(cfg);
	int reason = snat_out(skb, &p, node, now);
	if (!reason)
		return TC_ACT_OK;
	struct event_info ev = {
		.subtype = reason,
		.direction = MB_DIR_EGRESS,
		.src_identity = ep->identity,
		.dst_identity = ipcache_identity4(p.t.daddr),
	};
	report_drop(skb, ep, &p, &ev, ev.dst_identity, now);
	return TC_ACT_SHOT;
}

/* Native routing: into local endpoint `dst`, judged for its ingress, around the node's stack
 * (which would route it there, and its to_endpoint program judge it, at greater cost). */
static __always_inline int deliver_native(struct __sk_buff *skb, const struct datapath_config *cfg, struct endpoint_info *dst,
					  struct packet *p)
{
	struct ct_conn c;
	int rc = judge(skb, cfg, dst, MB_DIR_INGRESS, p, 0, datapath_now(cfg), &c, 0, NULL, NULL);
	if (rc != TC_ACT_OK)
		return rc;
	return forward_to_endpoint(skb, dst);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct datapath_config *cfg = datapath_config();
	if (!cfg)
		return TC_ACT_OK;
	int delivers = cfg->routing_mode == MB_ROUTING_NATIVE && cfg->fast_path && cfg->underlay_ifindex == skb->ifindex;
	if (!cfg->snat_ipv4 && !delivers)
		return TC_ACT_OK;
	struct packet p = {};
	if (parse_packet(skb, &p) < 0)
		return TC_ACT_OK;
	__u32 daddr = p.t.daddr;
	if (cfg->snat_ipv4 && daddr == cfg->snat_ipv4)
		/* A packet that could not be rewritten would reach the node's stack for a port it
		 * never opened: dropped (the endpoint's side retransmits). */
		return snat_in(skb, &p) < 0 ? TC_ACT_SHOT : TC_ACT_OK;
	if (!delivers || p.ttl <= 1)
		return TC_ACT_OK; /* the stack sends the ICMP time exceeded */
	struct endpoint_info *dst = bpf_map_lookup_elem(&mb_lxc, &daddr);
	return dst ? deliver_native(skb, cfg, dst, &p) : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
