/* Policy lookup: one LPM lookup for the exact peer identity and one for "any peer"; a deny from
 * either wins, an allow from either passes. The agent never leaves an allow entry narrower than
 * a deny entry of the same identity, so the longest match inside one lookup cannot hide a deny. */
#ifndef MEMBRANE_POLICY_H
#define MEMBRANE_POLICY_H

#include "maps.h"

struct policy_verdict {
	int drop_reason; /* 0 allowed */
	__u32 rule_id;
};

static __always_inline struct policy_value *policy_lookup(__u32 ep_id, __u32 identity, __u8 dir, __u8 proto, __u16 dport_be)
{
	struct policy_key key = {
		.prefixlen = MB_POLICY_PREFIX_FULL,
		.ep_id = ep_id,
		.identity = identity,
		.direction = dir,
		.protocol = proto,
		.dport = dport_be,
	};
	return bpf_map_lookup_elem(&mb_policy, &key);
}

static __always_inline struct policy_verdict policy_check(struct endpoint_info *ep, __u32 remote_identity, __u8 dir,
							   __u8 proto, __u16 dport_be)
{
	struct policy_verdict v = {};
	__u32 enforced = dir == MB_DIR_INGRESS ? MB_EP_F_INGRESS_ENFORCED : MB_EP_F_EGRESS_ENFORCED;
	if (!(ep->flags & enforced))
		return v;
	if (dir == MB_DIR_INGRESS && remote_identity == MB_IDENTITY_HOST && (ep->flags & MB_EP_F_ALLOW_HOST_INGRESS))
		return v;

	struct policy_value *l3 = policy_lookup(ep->ep_id, remote_identity, dir, proto, dport_be);
	struct policy_value *l4 = policy_lookup(ep->ep_id, 0, dir, proto, dport_be);
	if (l3 && (l3->flags & MB_POLICY_F_DENY)) {
		v.drop_reason = MB_DROP_POLICY_DENY;
		v.rule_id = l3->rule_id;
	} else if (l4 && (l4->flags & MB_POLICY_F_DENY)) {
		v.drop_reason = MB_DROP_POLICY_DENY;
		v.rule_id = l4->rule_id;
	} else if (l3) {
		v.rule_id = l3->rule_id;
	} else if (l4) {
		v.rule_id = l4->rule_id;
	} else {
		v.drop_reason = MB_DROP_POLICY;
	}
	return v;
}

#endif
