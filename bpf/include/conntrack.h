/* Connection tracking. Each endpoint direction that sees the first packet of a connection owns
 * one entry keyed by that packet's tuple; a later packet is ESTABLISHED (same tuple and
 * direction), REPLY (reversed tuple, owned by the other direction) or RELATED (an ICMP error
 * about a tracked packet). Entries expire by idle time, checked on lookup. */
#ifndef MEMBRANE_CONNTRACK_H
#define MEMBRANE_CONNTRACK_H

#include "maps.h"
#include "parse.h"

enum ct_state { CT_NEW, CT_ESTABLISHED, CT_REPLY, CT_RELATED };

#define NS_PER_SEC 1000000000ULL
#define CT_LIFETIME_TCP (21600 * NS_PER_SEC)
#define CT_LIFETIME_TCP_SYN (60 * NS_PER_SEC)
#define CT_LIFETIME_TCP_CLOSING (10 * NS_PER_SEC)
#define CT_LIFETIME_OTHER (60 * NS_PER_SEC)

static __always_inline __u8 ct_opposite(__u8 dir)
{
	return dir == MB_DIR_INGRESS ? MB_DIR_EGRESS : MB_DIR_INGRESS;
}

static __always_inline void ct_key_of(struct ct_key *k, const struct tuple *t, __u8 dir, int reversed)
{
	k->saddr = reversed ? t->daddr : t->saddr;
	k->daddr = reversed ? t->saddr : t->daddr;
	k->sport = reversed ? t->dport : t->sport;
	k->dport = reversed ? t->sport : t->dport;
	k->protocol = t->protocol;
	k->direction = dir;
	k->pad = 0;
}

static __always_inline int ct_expired(const struct ct_value *v, __u8 protocol, __u64 now)
{
	__u64 lifetime = CT_LIFETIME_OTHER;
	if (protocol == IPPROTO_TCP_) {
		if (v->tcp_flags_seen & (TCP_FLAG_FIN | TCP_FLAG_RST))
			lifetime = CT_LIFETIME_TCP_CLOSING;
		else if (!(v->tcp_flags_seen & TCP_FLAG_ACK))
			lifetime = CT_LIFETIME_TCP_SYN;
		else
			lifetime = CT_LIFETIME_TCP;
	}
	return now - v->last_seen_ns > lifetime;
}

static __always_inline struct ct_value *ct_find(struct ct_key *k, __u64 now)
{
	struct ct_value *v = bpf_map_lookup_elem(&mb_ct, k);
	if (v && ct_expired(v, k->protocol, now))
		return NULL;
	return v;
}

static __always_inline void ct_touch(struct ct_value *v, const struct packet *p, __u64 now)
{
	v->last_seen_ns = now;
	/* Plain increments: a lost update between CPUs costs a count, never a verdict. */
	v->packets += 1;
	v->bytes += p->len;
	v->tcp_flags_seen |= p->tcp_flags;
}

/* Keeps a service entry alive (its lifetime follows the connection's TCP flags). */
static __always_inline void ct_touch_service(struct ct_value *v, const struct packet *p, __u64 now)
{
	v->last_seen_ns = now;
	v->tcp_flags_seen |= p->tcp_flags;
}

/* Classifies the packet for the endpoint direction `dir`; `*entry` is the entry to update. */
static __always_inline enum ct_state ct_lookup(const struct packet *p, __u8 dir, __u64 now, struct ct_value **entry)
{
	struct ct_key k;
	if (p->icmp_error) {
		ct_key_of(&k, &p->inner, ct_opposite(dir), 0);
		*entry = ct_find(&k, now);
		return *entry ? CT_RELATED : CT_NEW;
	}
	ct_key_of(&k, &p->t, dir, 0);
	*entry = ct_find(&k, now);
	if (*entry) {
		/* A SYN on a connection that has closed starts a new one (a source port reused). */
		if (p->t.protocol == IPPROTO_TCP_ && (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
		    ((*entry)->tcp_flags_seen & (TCP_FLAG_FIN | TCP_FLAG_RST))) {
			*entry = NULL;
			return CT_NEW;
		}
		return CT_ESTABLISHED;
	}
	ct_key_of(&k, &p->t, ct_opposite(dir), 1);
	*entry = ct_find(&k, now);
	if (*entry)
		return CT_REPLY;
	return CT_NEW;
}

static __always_inline int ct_create(const struct packet *p, __u8 dir, __u64 now, __u32 ep_id, __u32 remote_identity,
				     __u32 policy_revision, __u32 ipcache_revision)
{
	struct ct_key k;
	ct_key_of(&k, &p->t, dir, 0);
	struct ct_value v = {
		.last_seen_ns = now,
		.packets = 1,
		.bytes = p->len,
		.ep_id = ep_id,
		.remote_identity = remote_identity,
		.policy_revision = policy_revision,
		.ipcache_revision = ipcache_revision,
		.tcp_flags_seen = p->tcp_flags,
		.tx_flags_seen = p->tcp_flags,
		.last_tx_report = now / NS_PER_SEC,
	};
	if (p->frontend_addr && dir == MB_DIR_EGRESS) {
		/* A translated connection: its replies must look like they come from the frontend. */
		v.flags = MB_CT_F_REVNAT;
		v.nat_addr = p->frontend_addr;
		v.nat_port = p->frontend_port;
	}
	return bpf_map_update_elem(&mb_ct, &k, &v, BPF_ANY);
}

/* Remembers the backend a client's connection to a service frontend was given, keyed by the
 * untranslated tuple, so every later packet of the connection goes to the same backend. */
static __always_inline int ct_create_service(const struct packet *p, __u8 dir, __u64 now, __u32 ep_id, __u32 backend_addr,
					     __u16 backend_port)
{
	struct ct_key k;
	ct_key_of(&k, &p->t, dir, 0);
	struct ct_value v = {
		.last_seen_ns = now, /* no counters: the translated connection's entry counts the traffic */
		.ep_id = ep_id,
		.tcp_flags_seen = p->tcp_flags,
		.flags = MB_CT_F_SERVICE,
		.nat_addr = backend_addr,
		.nat_port = backend_port,
	};
	return bpf_map_update_elem(&mb_ct, &k, &v, BPF_ANY);
}

#endif
