/* Datapath notifications into the mb_events ring buffer, throttled like Cilium's monitor
 * aggregation: drops and policy verdicts always; traces of every packet at none; from low up
 * only where packets are delivered or leave the node (to-endpoint, to-overlay; not
 * from-endpoint); at medium once per
 * connection direction (a new connection, TCP flags not seen before in that direction, or once
 * per report interval); at maximum only new connections and closing flags. */
#ifndef MEMBRANE_EVENTS_H
#define MEMBRANE_EVENTS_H

#include "maps.h"
#include "parse.h"

static __always_inline struct datapath_config *datapath_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&mb_config, &zero);
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&mb_events_lost, &zero);
	if (lost)
		*lost += 1;
}

struct event_info {
	__u8 type;
	__u8 subtype;
	__u8 direction;
	__u8 verdict;
	__u8 ct_state;
	__u8 match_type;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
};

static __always_inline void emit_event(struct __sk_buff *skb, const struct endpoint_info *ep, const struct packet *p,
				       const struct event_info *info, __u64 now)
{
	struct flow_event *ev = bpf_ringbuf_reserve(&mb_events, sizeof(*ev), 0);
	if (!ev) {
		count_lost();
		return;
	}
	ev->timestamp_ns = bpf_ktime_get_ns(); /* `now` is connection tracking's tick clock */
	ev->type = info->type;
	ev->subtype = info->subtype;
	ev->direction = info->direction;
	ev->verdict = info->verdict;
	ev->ct_state = info->ct_state;
	ev->tcp_flags = p->tcp_flags;
	ev->protocol = p->t.protocol;
	ev->match_type = info->match_type;
	ev->ep_id = ep->ep_id;
	ev->ifindex = ep->ifindex; /* the endpoint's interface, also when the fast path judges for the destination */
	ev->src_identity = info->src_identity;
	ev->dst_identity = info->dst_identity;
	ev->rule_id = info->rule_id;
	ev->saddr = p->t.saddr;
	ev->daddr = p->t.daddr;
	ev->sport = p->t.protocol == IPPROTO_ICMP_ ? 0 : p->t.sport;
	ev->dport = p->t.protocol == IPPROTO_ICMP_ ? 0 : p->t.dport;
	ev->icmp_type = p->icmp_type;
	ev->icmp_code = p->icmp_code;
	ev->ethertype = p->ethertype;
	ev->orig_len = p->len;
	ev->pad2 = 0;
	if (bpf_skb_load_bytes(skb, 0, ev->dst_mac, 6) < 0 || bpf_skb_load_bytes(skb, 6, ev->src_mac, 6) < 0) {
		__builtin_memset(ev->dst_mac, 0, 6);
		__builtin_memset(ev->src_mac, 0, 6);
	}
	/* Never a wakeup: the agent looks at the ring on a timer (src/kernel/ringbuf.ts), and a
	 * wakeup is an interrupt (a VM exit here), dearer than the event itself. */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
}

/* Whether a forwarded packet deserves a trace at the configured aggregation level; updates the
 * connection's report state when it does. `ct` is NULL for a connection just created. */
static __always_inline int trace_wanted(const struct datapath_config *cfg, struct ct_value *ct, int is_reply, __u8 tcp_flags,
					__u8 point, __u64 now)
{
	__u32 level = cfg ? cfg->aggregation : MB_AGG_MEDIUM;
	/* From low up, as in Cilium, only the delivery side traces (and the sender's to-overlay,
	 * for what another node delivers): a local packet is seen twice. */
	if (level >= MB_AGG_LOW && point == MB_TRACE_FROM_ENDPOINT)
		return 0;
	if (level < MB_AGG_MEDIUM || !ct)
		return 1;
	__u8 *seen = is_reply ? &ct->rx_flags_seen : &ct->tx_flags_seen;
	__u32 *last = is_reply ? &ct->last_rx_report : &ct->last_tx_report;
	__u32 now_s = now / NS_PER_SEC;
	__u8 fresh = tcp_flags & ~*seen;
	if (level >= MB_AGG_MAXIMUM)
		fresh &= TCP_FLAG_FIN | TCP_FLAG_RST;
	__u32 interval = cfg && cfg->report_interval ? cfg->report_interval : 5;
	if (fresh || (level < MB_AGG_MAXIMUM && now_s - *last >= interval)) {
		*seen |= tcp_flags;
		*last = now_s;
		return 1;
	}
	return 0;
}

#endif
