// SPDX-License-Identifier: GPL-2.0
/* Programs on each endpoint's host-side interface, attached with tcx:
 *   from_endpoint: tcx ingress, sees what the workload sends (its egress);
 *   to_endpoint:   tcx egress, sees what is delivered to the workload (its ingress).
 * One object serves every endpoint; what differs per endpoint lives in mb_endpoints.
 * Per packet: one CT lookup, in either direction and also when the fast path judges both
 * endpoints of a local connection; the ipcache and policy lookups only for new connections or
 * after the endpoint's policy or the ipcache changed. A workload's connection to a service
 * frontend that the socket hooks did not translate is translated here (include/nat.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/ipcache.h"
#include "include/metrics.h"
#include "include/conntrack.h"
#include "include/policy.h"
#include "include/events.h"
#include "include/nat.h"

/* Connection tracking's clock (src/kernel/jiffies.ts): the tick counter, one inlined load,
 * scaled to nanoseconds; lifetimes need no more. Events stamp finely on their own. */
static __always_inline __u64 datapath_now(const struct datapath_config *cfg)
{
	if (cfg && cfg->ns_per_jiffy)
		return bpf_jiffies64() * cfg->ns_per_jiffy;
	return bpf_ktime_get_coarse_ns();
}

/* Counts a drop (ev.subtype is the reason) and emits its event. */
static __always_inline void report_drop(struct __sk_buff *skb, struct endpoint_info *ep, const struct packet *p, struct event_info *ev,
					__u32 remote_identity, __u64 now)
{
	metrics_count(ep->ep_id, remote_identity, ev->direction, ev->subtype, p->len);
	ev->type = MB_EVENT_DROP;
	ev->verdict = MB_VERDICT_DROPPED;
	emit_event(skb, ep, p, ev, now);
}

/* Emits a policy verdict (ev.subtype: the drop reason policy gave, 0 when allowed). A denied
 * connection gets one with MB_VERDICT_DROPPED and then its drop (report_drop), as in Cilium. */
static __always_inline void report_policy_verdict(struct __sk_buff *skb, struct endpoint_info *ep, const struct packet *p,
						  struct event_info *ev, __u8 verdict, __u64 now)
{
	ev->type = MB_EVENT_POLICY_VERDICT;
	ev->verdict = verdict;
	emit_event(skb, ep, p, ev, now);
}

/* Whether the node has no route for a new connection a workload starts (an unused pod address
 * hits the pod CIDR's unreachable route): the stack will drop it and answer with ICMP
 * unreachable; the datapath reports the drop (FIB_LOOKUP_FAILED) so a flow says why. */
static __always_inline int unroutable(struct __sk_buff *skb, const struct packet *p, const struct endpoint_info *local_dst)
{
	__u32 daddr = p->t.daddr;
	if (local_dst)
		return 0; /* a local endpoint */
	/* Set field by field: with a designated initializer the family reached the helper as 0. */
	struct bpf_fib_lookup fib;
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.family = 2; /* AF_INET */
	fib.l4_protocol = p->t.protocol;
	fib.sport = p->t.sport;
	fib.dport = p->t.dport;
	fib.ifindex = skb->ifindex;
	fib.ipv4_src = p->t.saddr;
	fib.ipv4_dst = daddr;
	int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	return rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE || rc == BPF_FIB_LKUP_RET_PROHIBIT;
}

/* Connection tracking, policy, counters and events for one endpoint direction. `c` is the
 * packet's connection: looked up here unless `looked_up` (the fast path judges the receiving
 * endpoint on the entry the sender's judgement found or made, and counted the packet there).
 * For the egress direction `*local_dst` is the local endpoint the packet is addressed to (NULL:
 * none, or not looked up because the fast path is off), kept true across a service translation.
 * `cfg` is the datapath config, looked up once per program run.
 * Returns TC_ACT_OK to let the packet go on, TC_ACT_SHOT when it was dropped (and reported). */
static __always_inline int judge(struct __sk_buff *skb, const struct datapath_config *cfg, struct endpoint_info *ep, __u8 dir,
				 struct packet *p, __u32 known_remote_identity, __u64 now, struct ct_conn *c, int looked_up,
				 struct endpoint_info **local_dst)
{
	struct event_info ev = { .direction = dir };
	__u32 remote_ip;
	__u32 remote_identity = known_remote_identity;
	enum mb_ct_state state = MB_CT_NEW;
	__u32 ipcache_rev = cfg ? cfg->ipcache_revision : 0;
	if (dir == MB_DIR_EGRESS && p->t.saddr != ep->ipv4) {
		ev.subtype = MB_DROP_INVALID_SOURCE_IP;
		goto drop;
	}

	if (!looked_up)
		ct_lookup(p, now, c);
	if (dir == MB_DIR_EGRESS) {
		/* Only from_endpoint judges the egress direction: what the workload sends. */
		int reason = local_dst ? lb_egress(skb, ep, p, now, c, local_dst) : 0;
		if (reason) {
			ev.subtype = reason;
			goto drop;
		}
	}
	struct ct_value *ct = c->entry;
	state = ct_state_for(c, p, dir, ep->ep_id);
	ev.ct_state = state;
	remote_ip = dir == MB_DIR_EGRESS ? p->t.daddr : p->t.saddr; /* after any translation */
	/* A tracked connection remembers its peer's identity: the ipcache is consulted only for
	 * new connections, ICMP errors, and after some address changed identity. */
	struct ct_side *side = ct && state != MB_CT_NEW && state != MB_CT_RELATED ? ct_side_of(ct, dir, c->forward) : NULL;
	int identity_fresh = side && side->ipcache_revision == ipcache_rev;
	if (!remote_identity)
		remote_identity = identity_fresh ? ct_peer_identity(ct, dir, c->forward) : ipcache_identity4(remote_ip);
	ev.src_identity = dir == MB_DIR_EGRESS ? ep->identity : remote_identity;
	ev.dst_identity = dir == MB_DIR_EGRESS ? remote_identity : ep->identity;
	int is_reply = state == MB_CT_REPLY || state == MB_CT_RELATED;
	if (is_reply)
		ev.direction = ct_opposite(dir); /* the connection's direction, as Hubble reports it */
	/* Each packet is counted once: by the sender's program when the sender is an endpoint here. */
	int count = !looked_up && (dir == MB_DIR_EGRESS || !ct || !ct_side_of(ct, MB_DIR_EGRESS, c->forward)->ep_id);

	if (is_reply || (state == MB_CT_ESTABLISHED && identity_fresh && side->policy_revision == ep->policy_revision)) {
		if (ct)
			ct_touch(ct, p, now, count);
	} else {
		/* New to this endpoint, or established but its policy or the ipcache changed since. */
		struct policy_verdict v = policy_check(ep, remote_identity, dir, p->t.protocol, p->policy_port);
		ev.rule_id = v.rule_id;
		ev.match_type = v.match_type;
		int audited = 0;
		if (v.drop_reason) {
			ev.subtype = v.drop_reason;
			if (!(ep->flags & MB_EP_F_POLICY_AUDIT) || v.always) {
				/* As Cilium: a policy denial is a policy verdict (DROPPED) before it is a
				 * drop, so verdict readers see denials too. Only on the deny path. */
				report_policy_verdict(skb, ep, p, &ev, MB_VERDICT_DROPPED, now);
				goto drop;
			}
			audited = 1; /* audit mode: report what would have been dropped, and pass */
		}
		if (ct && c->forward && !p->icmp_error) {
			/* Judged again, or an entry this endpoint joins (its peer here judged it first). */
			ct_record_side(ct, dir, c->forward, ep, remote_identity, ipcache_rev);
			ct_touch(ct, p, now, count);
		} else {
			/* Untracked, or a packet against a tracked connection's grain that no endpoint's
			 * side of it covers: it starts a connection of its own, in its direction. */
			c->entry = ct_create(p, dir, now, ep, remote_identity, ipcache_rev);
			c->forward = 1;
			if (!c->entry) {
				ev.subtype = MB_DROP_CT_MAP_INSERTION_FAILED;
				goto drop;
			}
		}
		if (state == MB_CT_NEW) {
			ct = NULL; /* a new connection: always traced */
			if (v.enforced) {
				report_policy_verdict(skb, ep, p, &ev, audited ? MB_VERDICT_AUDIT : MB_VERDICT_FORWARDED, now);
				ev.subtype = 0;
			}
			if (dir == MB_DIR_EGRESS && !p->icmp_error && local_dst && unroutable(skb, p, *local_dst)) {
				ev.subtype = MB_DROP_FIB_LOOKUP_FAILED;
				report_drop(skb, ep, p, &ev, remote_identity, now);
				return TC_ACT_OK; /* the stack drops it, and tells the sender */
			}
		}
	}
	/* Forwarded traffic is counted in its connection's CT entry (the agent sums those); the
	 * counters map holds drops only: one map update less on every forwarded packet. */
	__u8 point = dir == MB_DIR_EGRESS ? MB_TRACE_FROM_ENDPOINT : MB_TRACE_TO_ENDPOINT;
	if (trace_wanted(cfg, ct, is_reply, p->tcp_flags, point, now)) {
		ev.type = MB_EVENT_TRACE;
		ev.subtype = point;
		ev.verdict = MB_VERDICT_FORWARDED;
		emit_event(skb, ep, p, &ev, now);
	}
	/* A reply of a translated connection is rewritten once, where it reaches the client. */
	if (state == MB_CT_REPLY && dir == MB_DIR_INGRESS && ct && (ct->flags & MB_CT_F_REVNAT) && lb_reverse(skb, p, ct) < 0) {
		ev.subtype = MB_DROP_ERROR_WRITING_TO_PACKET;
		goto drop;
	}
	return TC_ACT_OK;

drop:
	if (!remote_identity) {
		remote_identity = ipcache_identity4(remote_ip);
		ev.src_identity = dir == MB_DIR_EGRESS ? ep->identity : remote_identity;
		ev.dst_identity = dir == MB_DIR_EGRESS ? remote_identity : ep->identity;
	}
	report_drop(skb, ep, p, &ev, remote_identity, now);
	if (ev.subtype == MB_DROP_SERVICE_BACKEND_NOT_FOUND)
		return lb_reject(skb, p);
	return TC_ACT_SHOT;
}

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
 * see the packet), then the packet is routed by hand — TTL, MACs — and handed straight to the
 * workload's interface with bpf_redirect_peer, skipping the node's routing stack. Anything that
 * does not fit (TTL about to expire, no such endpoint) takes the routed path. */
static __always_inline int deliver_local(struct __sk_buff *skb, const struct datapath_config *cfg, struct endpoint_info *src,
					 struct packet *p, __u64 now, struct ct_conn *c, struct endpoint_info *dst)
{
	if (!cfg || !cfg->fast_path || p->icmp_error)
		return TC_ACT_OK;
	if (!dst || p->ttl <= 1)
		return TC_ACT_OK; /* no such endpoint, or the stack must send the ICMP time exceeded */
	int rc = judge(skb, cfg, dst, MB_DIR_INGRESS, p, src->identity, now, c, 1, NULL);
	if (rc != TC_ACT_OK)
		return rc;
	/* Route by hand, in place: decrement the TTL (with the incremental checksum update the
	 * kernel's ip_decrease_ttl uses) and rewrite the MACs as the node's neighbour entry would. */
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	__u32 check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xFFFF));
	ip->ttl--;
	__builtin_memcpy(eth->h_dest, dst->mac, 6);
	__builtin_memcpy(eth->h_source, dst->node_mac, 6);
	return bpf_redirect_peer(dst->ifindex, 0);
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
	int rc = judge(skb, cfg, ep, MB_DIR_EGRESS, &p, 0, now, &c, 0, &dst);
	if (rc != TC_ACT_OK)
		return rc;
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
	return judge(skb, cfg, ep, MB_DIR_INGRESS, &p, 0, now, &c, 0, NULL);
}

char LICENSE[] SEC("license") = "GPL";
