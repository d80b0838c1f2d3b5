// SPDX-License-Identifier: GPL-2.0
/* Programs on the node's underlay device (the one holding its address), attached with tcx, for
 * BPF masquerading (include/snat.h):
 *   to_netdev:   tcx egress: a local endpoint's packet leaving the cluster gets the node's
 *                address (and a free port) as its source;
 *   from_netdev: tcx ingress: a reply to such a packet gets the endpoint's address and port
 *                back, then goes on through the node's stack to the endpoint, whose program
 *                judges it as the reply of the connection it tracked.
 * Both do nothing while datapath_config.snat_ipv4 is 0, and pass everything that is not theirs
 * (the node's own traffic, the overlay's, other nodes' pods in native routing) untouched. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/judge.h"
#include "include/snat.h"

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

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct datapath_config *cfg = datapath_config();
	if (!cfg || !cfg->snat_ipv4)
		return TC_ACT_OK;
	struct packet p = {};
	if (parse_packet(skb, &p) < 0 || p.t.daddr != cfg->snat_ipv4)
		return TC_ACT_OK;
	/* A packet that could not be rewritten would reach the node's stack for a port it never
	 * opened: dropped (the endpoint's side retransmits). */
	return snat_in(skb, &p) < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
