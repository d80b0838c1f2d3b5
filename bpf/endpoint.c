// SPDX-License-Identifier: GPL-2.0
/* Programs on each endpoint's host-side interface, attached with tcx:
 *   from_endpoint: tcx ingress, sees what the workload sends (its egress);
 *   to_endpoint:   tcx egress, sees what is delivered to the workload (its ingress).
 * One object serves every endpoint; what differs per endpoint lives in mb_endpoints.
 * Per packet: one ipcache lookup, one CT lookup (two for replies), and the policy lookups only
 * for new connections or after the endpoint's policy changed. */
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

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_OK; /* not ours yet (being set up or torn down) */
	struct packet p = {};
	if (parse_packet(skb, &p) < 0)
		return TC_ACT_OK; /* ARP and friends */

	__u32 remote_identity = ipcache_identity4(dir == MB_DIR_EGRESS ? p.t.daddr : p.t.saddr);
	struct event_info ev = {
		.direction = dir,
		.src_identity = dir == MB_DIR_EGRESS ? ep->identity : remote_identity,
		.dst_identity = dir == MB_DIR_EGRESS ? remote_identity : ep->identity,
	};
	__u64 now = bpf_ktime_get_ns();
	if (dir == MB_DIR_EGRESS && p.t.saddr != ep->ipv4) {
		ev.subtype = MB_DROP_INVALID_SOURCE_IP;
		goto drop;
	}

	struct ct_value *ct = NULL;
	enum ct_state state = ct_lookup(&p, dir, now, &ct);
	ev.ct_state = state;
	int is_reply = state == CT_REPLY || state == CT_RELATED;
	if (is_reply)
		ev.direction = ct_opposite(dir); /* the connection's direction, as Hubble reports it */

	if (is_reply || (state == CT_ESTABLISHED && ct && ct->policy_revision == ep->policy_revision)) {
		if (ct)
			ct_touch(ct, &p, now);
	} else {
		/* New, or established but the endpoint's policy changed since it was judged. */
		struct policy_verdict v = policy_check(ep, remote_identity, dir, p.t.protocol, p.policy_port);
		ev.rule_id = v.rule_id;
		ev.match_type = v.match_type;
		int audited = 0;
		if (v.drop_reason) {
			ev.subtype = v.drop_reason;
			if (!(ep->flags & MB_EP_F_POLICY_AUDIT))
				goto drop;
			audited = 1; /* audit mode: report what would have been dropped, and pass */
		}
		if (state == CT_ESTABLISHED && ct) {
			ct->policy_revision = ep->policy_revision;
			ct_touch(ct, &p, now);
		} else {
			if (ct_create(&p, dir, now, ep->ep_id, remote_identity, ep->policy_revision) < 0) {
				ev.subtype = MB_DROP_CT_INSERT;
				goto drop;
			}
			ct = NULL; /* a new connection: always traced */
			if (v.enforced) {
				ev.type = MB_EVENT_POLICY_VERDICT;
				ev.verdict = audited ? MB_VERDICT_AUDIT : MB_VERDICT_FORWARDED;
				emit_event(skb, ep, &p, &ev, now);
				ev.subtype = 0;
			}
		}
	}
	metrics_count(ep->ep_id, remote_identity, dir, MB_REASON_FORWARDED, p.len);
	if (trace_wanted(datapath_config(), ct, is_reply, p.tcp_flags, now)) {
		ev.type = MB_EVENT_TRACE;
		ev.subtype = dir == MB_DIR_EGRESS ? MB_TRACE_FROM_ENDPOINT : MB_TRACE_TO_ENDPOINT;
		ev.verdict = MB_VERDICT_FORWARDED;
		emit_event(skb, ep, &p, &ev, now);
	}
	return TC_ACT_OK; /* routed by the node towards the destination's interface */

drop:
	metrics_count(ep->ep_id, remote_identity, dir, ev.subtype, p.len);
	ev.type = MB_EVENT_DROP;
	ev.verdict = MB_VERDICT_DROPPED;
	emit_event(skb, ep, &p, &ev, now);
	return TC_ACT_SHOT;
}

SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, MB_DIR_EGRESS);
}

SEC("tc")
int to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, MB_DIR_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
