/* Policy lookup: one LPM lookup for the exact peer identity and one for "any peer"; a deny from
 * either wins (also over allow-localhost), an allow from either passes. The agent never leaves an allow entry narrower than
 * a deny entry of the same identity, so the longest match inside one lookup cannot hide a deny. */
#ifndef MEMBRANE_POLICY_H
#define MEMBRANE_POLICY_H

#include "maps.h"

struct policy_verdict {
	int drop_reason; /* 0 allowed */
	__u32 rule_id;
	__u8 enforced;   /* a policy decided (not an unenforced direction) */
	__u8 match_type; /* MB_MATCH_* */
	__u8 always;     /* a drop that audit mode does not let through */
};

static __always_inline __u8 match_type_of(struct policy_value *v, int any_peer)
{
	if (any_peer)
		return v->l4_prefixlen ? MB_MATCH_L4_ONLY : MB_MATCH_ALL;
	return v->l4_prefixlen ? MB_MATCH_L3_L4 : MB_MATCH_L3_ONLY;
}

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

/* The guard of the agent's port a packet from an endpoint to the node is addressed to, if any. */
static __always_inline struct agent_port_value *to_agent_port(__u32 remote_identity, __u8 dir, __u8 proto, __u16 dport_be)
{
	if (dir != MB_DIR_EGRESS || remote_identity != MB_IDENTITY_HOST)
		return NULL;
	struct agent_port_key key = { .port = dport_be, .protocol = proto };
	return bpf_map_lookup_elem(&mb_agent_ports, &key);
}

static __always_inline struct policy_verdict policy_check(struct endpoint_info *ep, __u32 remote_identity, __u8 dir,
							   __u8 proto, __u16 dport_be)
{
	struct policy_verdict v = {};
	struct agent_port_value *guard = to_agent_port(remote_identity, dir, proto, dport_be);
	if (guard) {
		/* Enforced whatever the endpoint's policy and audit mode say: it guards the agent. */
		v.drop_reason = MB_DROP_POLICY_DENY;
		v.rule_id = guard->rule_id;
		v.enforced = 1;
		v.always = 1;
		v.match_type = MB_MATCH_L3_L4;
		return v;
	}
	__u32 enforced = dir == MB_DIR_INGRESS ? MB_EP_F_INGRESS_ENFORCED : MB_EP_F_EGRESS_ENFORCED;
	if (!(ep->flags & enforced))
		return v;
	/* allow-localhost is an allow like any other: a deny for the host still wins over it. */
	int host_allowed = dir == MB_DIR_INGRESS && remote_identity == MB_IDENTITY_HOST && (ep->flags & MB_EP_F_ALLOW_HOST_INGRESS);

	v.enforced = 1;
	struct policy_value *l3 = policy_lookup(ep->ep_id, remote_identity, dir, proto, dport_be);
	struct policy_value *l4 = policy_lookup(ep->ep_id, 0, dir, proto, dport_be);
	struct policy_value *hit = NULL;
	int any_peer = 0;
	if (l3 && (l3->flags & MB_POLICY_F_DENY)) {
		hit = l3;
	} else if (l4 && (l4->flags & MB_POLICY_F_DENY)) {
		hit = l4;
		any_peer = 1;
	} else if (l3) {
		hit = l3;
	} else if (l4) {
		hit = l4;
		any_peer = 1;
	}
	if (!hit || (host_allowed && !(hit->flags & MB_POLICY_F_DENY))) {
		if (host_allowed) {
			struct policy_verdict allowed = {};
			return allowed; /* the node reaches its endpoints: not a policy decision */
		}
		v.drop_reason = MB_DROP_POLICY_DENIED;
		return v;
	}
	if (hit->flags & MB_POLICY_F_DENY)
		v.drop_reason = MB_DROP_POLICY_DENY;
	v.rule_id = hit->rule_id;
	v.match_type = match_type_of(hit, any_peer);
	return v;
}

#endif
