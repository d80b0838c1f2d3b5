/* Judging a packet for one local endpoint in one direction: connection tracking, service
 * translation (egress), the peer's identity, policy, counters and events. The endpoint programs
 * (bpf/endpoint.c) judge what a workload sends and what is routed to it; the overlay programs
 * (bpf/overlay.c) judge what another node sends to a local endpoint, with the identity its VNI
 * carries.
 * Per packet: one CT lookup; the ipcache and policy lookups only for new connections, or after
 * the endpoint's policy or the ipcache changed (a tracked connection remembers its peer's
 * identity, and the node the peer is reached through when it is another node's). */
#ifndef MEMBRANE_JUDGE_H
#define MEMBRANE_JUDGE_H

#include "maps.h"
#include "parse.h"
#include "ipcache.h"
#include "metrics.h"
#include "conntrack.h"
#include "policy.h"
#include "events.h"
#include "nat.h"

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

/* Whether the stack will deliver the packet to a local endpoint, which then traces it: only asked
 * when the fast path is off (with it on, the caller looked the destination up already). */
static __always_inline int routed_to_endpoint(const struct datapath_config *cfg, const struct packet *p)
{
	__u32 daddr = p->t.daddr;
	return cfg && !cfg->fast_path && bpf_map_lookup_elem(&mb_lxc, &daddr);
}

/* Where a packet for another node leaves: to-overlay (tunnel mode) or to-network (native). By
 * arithmetic, not a branch: a branch here doubled the states the verifier explores for
 * from_endpoint, past its limit. */
static __always_inline __u8 remote_point(const struct datapath_config *cfg)
{
	_Static_assert(MB_ROUTING_TUNNEL == 1 && MB_ROUTING_NATIVE == 0, "routing modes are one bit");
	__u32 mode = cfg ? cfg->routing_mode : MB_ROUTING_TUNNEL;
	return MB_TRACE_TO_NETWORK - (MB_TRACE_TO_NETWORK - MB_TRACE_TO_OVERLAY) * (mode & 1);
}

/* Records what the side just judged learnt of the overlay: the peer's node when it looked it up
 * (egress in tunnel mode), otherwise that nothing is known, so what an earlier judgement learnt
 * never outlives the revision it was learnt at. */
static __always_inline void ct_note_tunnel(struct ct_value *v, int known, __be32 node)
{
	if (known) {
		v->tunnel_endpoint = node;
		v->flags |= MB_CT_F_TUNNEL;
	} else {
		v->flags &= ~MB_CT_F_TUNNEL;
	}
}

/* Connection tracking, policy, counters and events for one endpoint direction. `c` is the
 * packet's connection: looked up here unless `looked_up` (the fast path judges the receiving
 * endpoint on the entry the sender's judgement found or made, and counted the packet there).
 * `known_remote_identity` is the peer's identity when the caller knows it (the sending local
 * endpoint's, or the VNI's); 0: from connection tracking or the ipcache.
 * For the egress direction `*local_dst` is the local endpoint the packet is addressed to (NULL:
 * none, or not looked up because the fast path is off), kept true across a service translation.
 * `tunnel` (egress only, when the caller forwards to other nodes by hand: tunnel mode, or native
 * routing with the fast path) receives the node hosting the destination: 0 when it is not
 * another node's, or its TTL leaves it to the stack.
 * `cfg` is the datapath config, looked up once per program run.
 * Returns TC_ACT_OK to let the packet go on, TC_ACT_SHOT when it was dropped (and reported). */
static __always_inline int judge(struct __sk_buff *skb, const struct datapath_config *cfg, struct endpoint_info *ep, __u8 dir,
				 struct packet *p, __u32 known_remote_identity, __u64 now, struct ct_conn *c, int looked_up,
				 struct endpoint_info **local_dst, __be32 *tunnel)
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
	 * new connections, ICMP errors, and after some address changed identity (or the peer
	 * now says another identity than the one judged). */
	struct ct_side *side = ct && state != MB_CT_NEW && state != MB_CT_RELATED ? ct_side_of(ct, dir, c->forward) : NULL;
	int identity_fresh = side && side->ipcache_revision == ipcache_rev &&
			     (!known_remote_identity || ct_peer_identity(ct, dir, c->forward) == known_remote_identity);
	struct ipcache_value *peer = NULL;
	int peer_looked_up = 0;
	if (!remote_identity) {
		if (identity_fresh) {
			remote_identity = ct_peer_identity(ct, dir, c->forward);
		} else {
			peer = ipcache_lookup4(remote_ip);
			peer_looked_up = 1;
			remote_identity = peer ? peer->identity : MB_IDENTITY_WORLD;
		}
	}
	/* Towards another node's endpoint (forwarded by hand): the node comes with the identity,
	 * from the same source (the connection, or the ipcache). Not for a local destination. */
	int want_tunnel = tunnel && local_dst && !*local_dst;
	__be32 to_node = 0;
	if (want_tunnel) {
		if (identity_fresh && (ct->flags & MB_CT_F_TUNNEL)) {
			to_node = ct->tunnel_endpoint;
		} else {
			if (!peer_looked_up)
				peer = ipcache_lookup4(remote_ip);
			to_node = peer ? peer->tunnel_endpoint : 0;
			if (identity_fresh)
				ct_note_tunnel(ct, 1, to_node); /* e.g. replies of a connection another node opened */
		}
	}
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
		ct_note_tunnel(c->entry, want_tunnel, to_node);
		if (state == MB_CT_NEW) {
			ct = NULL; /* a new connection: always traced */
			if (v.enforced) {
				report_policy_verdict(skb, ep, p, &ev, audited ? MB_VERDICT_AUDIT : MB_VERDICT_FORWARDED, now);
				ev.subtype = 0;
			}
			if (dir == MB_DIR_EGRESS && !p->icmp_error && local_dst && !to_node && unroutable(skb, p, *local_dst)) {
				ev.subtype = MB_DROP_FIB_LOOKUP_FAILED;
				report_drop(skb, ep, p, &ev, remote_identity, now);
				return TC_ACT_OK; /* the stack drops it, and tells the sender */
			}
		}
	}
	/* A packet whose TTL would expire is the stack's to answer, not the overlay's to carry. */
	if (p->ttl <= 1)
		to_node = 0;
	if (want_tunnel)
		*tunnel = to_node;
	/* Forwarded traffic is counted in its connection's CT entry (the agent sums those); the
	 * counters map holds drops only: one map update less on every forwarded packet. What leaves
	 * for another node is traced where it enters the overlay, as Cilium's to-overlay, or (native
	 * routing) where it is sent out of the underlay device, as Cilium's to-network; what no
	 * endpoint here receives (the outside, routed peers) where it is handed to the stack, as
	 * Cilium's to-stack, since no delivery side traces it. */
	__u8 point = MB_TRACE_TO_ENDPOINT;
	if (dir == MB_DIR_EGRESS)
		point = to_node ? remote_point(cfg) : local_dst && !*local_dst && !routed_to_endpoint(cfg, p) ? MB_TRACE_TO_STACK : MB_TRACE_FROM_ENDPOINT;
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

#endif
