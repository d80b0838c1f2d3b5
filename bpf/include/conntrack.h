/* Connection tracking: one entry per connection on the node, found by one lookup from either
 * direction (the key is the tuple in canonical order). An entry records, per side, which local
 * endpoint judged the connection and at which policy and ipcache revisions: the originator's
 * egress and the acceptor's ingress. For the endpoint program at hand a packet is ESTABLISHED
 * (the original direction, and this endpoint's side judged it), REPLY (the reverse direction of
 * a connection this endpoint's side judged), RELATED (an ICMP error about a tracked packet) or
 * NEW (no entry, or this endpoint has not judged it yet). Entries expire by idle time, checked
 * on lookup. */
#ifndef MEMBRANE_CONNTRACK_H
#define MEMBRANE_CONNTRACK_H

#include "maps.h"
#include "parse.h"

#ifndef NS_PER_SEC
#define NS_PER_SEC 1000000000ULL
#endif

static __always_inline __u8 ct_opposite(__u8 dir)
{
	return dir == MB_DIR_INGRESS ? MB_DIR_EGRESS : MB_DIR_INGRESS;
}

/* The connection a packet belongs to, as one lookup found it. */
struct ct_conn {
	struct ct_value *entry; /* NULL: untracked (or idle past its lifetime, or closed and reopened) */
	__u8 forward;           /* the packet goes the connection's original way */
};

/* The canonical key of `t`; returns whether t's source is the key's side b. */
static __always_inline int ct_key_of(struct ct_key *k, const struct tuple *t)
{
	int src_is_b = t->saddr > t->daddr || (t->saddr == t->daddr && t->sport > t->dport);
	k->addr_a = src_is_b ? t->daddr : t->saddr;
	k->addr_b = src_is_b ? t->saddr : t->daddr;
	k->port_a = src_is_b ? t->dport : t->sport;
	k->port_b = src_is_b ? t->sport : t->dport;
	k->protocol = t->protocol;
	k->pad[0] = k->pad[1] = k->pad[2] = 0;
	return src_is_b;
}

/* The side of the connection that the endpoint seeing the packet in `dir` is on: the
 * originator sends forward packets and receives replies. */
static __always_inline struct ct_side *ct_side_of(struct ct_value *v, __u8 dir, int forward)
{
	return (dir == MB_DIR_EGRESS) == !!forward ? &v->egress : &v->ingress;
}

/* The identity of the endpoint's peer, as recorded when its side was judged. */
static __always_inline __u32 ct_peer_identity(const struct ct_value *v, __u8 dir, int forward)
{
	return (dir == MB_DIR_EGRESS) == !!forward ? v->dst_identity : v->src_identity;
}

static __always_inline int ct_expired(const struct ct_value *v, __u8 protocol, __u64 now)
{
	__u64 lifetime = MB_CT_LIFETIME_OTHER;
	if (protocol == IPPROTO_TCP_) {
		if (v->tcp_flags_seen & (TCP_FLAG_FIN | TCP_FLAG_RST))
			lifetime = MB_CT_LIFETIME_TCP_CLOSING;
		else if (!(v->tcp_flags_seen & TCP_FLAG_ACK))
			lifetime = MB_CT_LIFETIME_TCP_SYN;
		else
			lifetime = MB_CT_LIFETIME_TCP;
	}
	return now - v->last_seen_ns > lifetime * NS_PER_SEC; /* the enum counts seconds */
}

static __always_inline struct ct_value *ct_find(const struct tuple *t, __u64 now, int *src_is_b)
{
	struct ct_key k;
	*src_is_b = ct_key_of(&k, t);
	struct ct_value *v = bpf_map_lookup_elem(&mb_ct, &k);
	if (v && ct_expired(v, k.protocol, now))
		return NULL;
	return v;
}

/* Keeps the entry alive; counts the packet unless another program of this node already did
 * (`count`: each packet is counted once, by the first endpoint program that sees it). */
static __always_inline void ct_touch(struct ct_value *v, const struct packet *p, __u64 now, int count)
{
	v->last_seen_ns = now;
	v->tcp_flags_seen |= p->tcp_flags;
	if (count) {
		/* Plain increments: a lost update between CPUs costs a count, never a verdict. */
		v->packets += 1;
		v->bytes += p->len;
	}
}

/* Keeps a service entry alive (its lifetime follows the connection's TCP flags). */
static __always_inline void ct_touch_service(struct ct_value *v, const struct packet *p, __u64 now)
{
	v->last_seen_ns = now;
	v->tcp_flags_seen |= p->tcp_flags;
}

/* The connection of the packet: one lookup, by its tuple (an ICMP error: the packet it reports on). */
static __always_inline void ct_lookup(const struct packet *p, __u64 now, struct ct_conn *c)
{
	int src_is_b;
	c->entry = ct_find(p->icmp_error ? &p->inner : &p->t, now, &src_is_b);
	c->forward = 0;
	if (!c->entry)
		return;
	c->forward = src_is_b == !!(c->entry->flags & MB_CT_F_ORIG_B);
	/* A SYN on a connection that has closed starts a new one (a source port reused). */
	if (!p->icmp_error && p->t.protocol == IPPROTO_TCP_ && (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	    (c->entry->tcp_flags_seen & (TCP_FLAG_FIN | TCP_FLAG_RST)))
		c->entry = NULL;
}

/* What the connection is to the endpoint `ep_id` seeing the packet in `dir`. */
static __always_inline enum mb_ct_state ct_state_for(const struct ct_conn *c, const struct packet *p, __u8 dir, __u32 ep_id)
{
	if (!c->entry)
		return MB_CT_NEW;
	if (p->icmp_error)
		return c->entry->egress.ep_id == ep_id || c->entry->ingress.ep_id == ep_id ? MB_CT_RELATED : MB_CT_NEW;
	if (ct_side_of(c->entry, dir, c->forward)->ep_id != ep_id)
		return MB_CT_NEW; /* the endpoint has not judged this connection yet */
	return c->forward ? MB_CT_ESTABLISHED : MB_CT_REPLY;
}

/* Records that endpoint `ep` judged the connection in `dir` (its side, and both identities). */
static __always_inline void ct_record_side(struct ct_value *v, __u8 dir, int forward, const struct endpoint_info *ep,
					   __u32 remote_identity, __u32 ipcache_revision)
{
	struct ct_side *side = ct_side_of(v, dir, forward);
	side->ep_id = ep->ep_id;
	side->policy_revision = ep->policy_revision;
	side->ipcache_revision = ipcache_revision;
	int originator = (dir == MB_DIR_EGRESS) == !!forward;
	v->src_identity = originator ? ep->identity : remote_identity;
	v->dst_identity = originator ? remote_identity : ep->identity;
}

/* A new connection, started by this packet and judged by `ep` in `dir`. Returns the entry, or
 * NULL when the map refused it. */
static __always_inline struct ct_value *ct_create(const struct packet *p, __u8 dir, __u64 now, const struct endpoint_info *ep,
						  __u32 remote_identity, __u32 ipcache_revision)
{
	struct ct_key k;
	struct ct_value v = {
		.last_seen_ns = now,
		.packets = 1,
		.bytes = p->len,
		.tcp_flags_seen = p->tcp_flags,
		.tx_flags_seen = p->tcp_flags,
		.last_tx_report = now / NS_PER_SEC,
	};
	if (ct_key_of(&k, &p->t))
		v.flags = MB_CT_F_ORIG_B;
	ct_record_side(&v, dir, 1, ep, remote_identity, ipcache_revision);
	if (p->frontend_addr && dir == MB_DIR_EGRESS) {
		/* A translated connection: its replies must look like they come from the frontend. */
		v.flags |= MB_CT_F_REVNAT;
		v.nat_addr = p->frontend_addr;
		v.nat_port = p->frontend_port;
	}
	if (bpf_map_update_elem(&mb_ct, &k, &v, BPF_ANY) < 0)
		return NULL;
	return bpf_map_lookup_elem(&mb_ct, &k);
}

/* Remembers the backend a client's connection to a service frontend was given, keyed by the
 * untranslated tuple, so every later packet of the connection goes to the same backend. */
static __always_inline int ct_create_service(const struct packet *p, __u64 now, __u32 ep_id, __u32 backend_addr, __u16 backend_port)
{
	struct ct_key k;
	struct ct_value v = {
		.last_seen_ns = now, /* no counters: the translated connection's entry counts the traffic */
		.egress = { .ep_id = ep_id },
		.tcp_flags_seen = p->tcp_flags,
		.flags = MB_CT_F_SERVICE,
		.nat_addr = backend_addr,
		.nat_port = backend_port,
	};
	if (ct_key_of(&k, &p->t))
		v.flags |= MB_CT_F_ORIG_B;
	return bpf_map_update_elem(&mb_ct, &k, &v, BPF_ANY);
}

#endif
