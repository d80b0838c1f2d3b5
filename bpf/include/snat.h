/* BPF masquerading (as Cilium's): what a local endpoint sends out of the cluster leaves through
 * the node's underlay device with the node's address as its source, and replies are translated
 * back before the node's stack sees them. Policy was applied before any of this, by the
 * endpoint's own program on its own address (world, toCIDR and entities judge the pod, and its
 * flows name it); the translation happens at the device, after routing chose it.
 * A connection keeps the endpoint's source port when no other mapping and no socket of the
 * node uses it towards the same peer; otherwise it gets a random free port. A mapping lives as
 * long as the endpoint's connection-tracking entry: a port whose connection expired is free
 * again. ICMP echo is translated by its identifier; ICMP errors coming back (port unreachable,
 * fragmentation needed) are translated inside and out. Non-first fragments and protocols
 * without ports (other than ICMP echo) cannot be told apart, so they are dropped and reported
 * rather than sent out with an address nobody routes back. */
#ifndef MEMBRANE_SNAT_H
#define MEMBRANE_SNAT_H

#include "conntrack.h"
#include "nat.h"

#define SNAT_PORT_MIN 1024
#define SNAT_TRIES 32
#define ICMP_CSUM_OFF 2
#define ICMP_ID_OFF 4
#define IP_CHECK_OFF 10
#define IP_SRC_OFF 12

/* Whether an endpoint's packet to `daddr` leaves the cluster: anything the ipcache does not
 * place in the cluster (world, CIDR identities of this node, unknown addresses). */
static __always_inline int snat_destination(__u32 daddr)
{
	struct ipcache_value *v = ipcache_lookup4(daddr);
	if (!v)
		return 1;
	if (v->flags & MB_IPCACHE_F_CLUSTER)
		return 0;
	return v->identity == MB_IDENTITY_WORLD || v->identity >= (1 << 24);
}

/* The table's key for a packet's own tuple. */
static __always_inline struct snat_key snat_key_of(const struct tuple *t, __u8 direction)
{
	struct snat_key k = {
		.saddr = t->saddr,
		.daddr = t->daddr,
		.sport = t->sport,
		.dport = t->dport,
		.protocol = t->protocol,
		.direction = direction,
	};
	return k;
}

/* Rewrites the source (`source`) or destination address and port; for ICMP echo the "port" is
 * the identifier, under the ICMP checksum (which, unlike TCP's and UDP's, covers no addresses). */
static __always_inline int snat_rewrite(struct __sk_buff *skb, const struct packet *p, int source, __u32 old_addr, __u32 new_addr,
					__u16 old_port, __u16 new_port)
{
	if (p->t.protocol != IPPROTO_ICMP_)
		return nat_rewrite(skb, p, source, old_addr, new_addr, old_port, new_port);
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, new_addr, 4) < 0 ||
	    bpf_skb_store_bytes(skb, source ? IP_SADDR_OFF : IP_DADDR_OFF, &new_addr, 4, 0) < 0)
		return -1;
	if (old_port != new_port && (bpf_l4_csum_replace(skb, p->l4_off + ICMP_CSUM_OFF, old_port, new_port, 2) < 0 ||
				     bpf_skb_store_bytes(skb, p->l4_off + ICMP_ID_OFF, &new_port, 2, 0) < 0))
		return -1;
	return 0;
}

/* Whether a socket of the node itself would take what `in` (a reply's tuple) carries: a connected
 * or bound socket on that port towards that peer. A listener would not (it takes new
 * connections, and the peer's port is already this connection's). */
static __always_inline int snat_port_used_by_node(struct __sk_buff *skb, const struct snat_key *in)
{
	struct bpf_sock_tuple t = {};
	t.ipv4.saddr = in->saddr;
	t.ipv4.daddr = in->daddr;
	t.ipv4.sport = in->sport;
	t.ipv4.dport = in->dport;
	/* Each lookup reads its own result: merged, the two socket kinds would meet in one load,
	 * which the verifier refuses. A UDP socket found takes the port whatever its state. */
	if (in->protocol == IPPROTO_UDP_) {
		struct bpf_sock *udp = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (!udp)
			return 0;
		bpf_sk_release(udp);
		return 1;
	}
	if (in->protocol != IPPROTO_TCP_)
		return 0;
	struct bpf_sock *tcp = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!tcp)
		return 0;
	int used = tcp->state != BPF_TCP_LISTEN;
	bpf_sk_release(tcp);
	return used;
}

/* Whether the mapping `in` → `v` still belongs to a live connection of its endpoint. */
static __always_inline int snat_live(const struct snat_key *in, const struct snat_value *v, __u64 now)
{
	struct tuple t = { .saddr = v->to_addr, .daddr = in->saddr, .sport = v->to_port, .protocol = in->protocol };
	if (in->protocol != IPPROTO_ICMP_)
		t.dport = in->sport;
	int src_is_b;
	return ct_find(&t, now, &src_is_b) != NULL;
}

/* A node port for the endpoint's new connection `p` towards its peer: its own port when free,
 * else random ones. Claims the reply's mapping; returns the port (network order), or 0. */
static __always_inline __be16 snat_claim(struct __sk_buff *skb, const struct packet *p, __be32 node, __u64 now)
{
	int icmp = p->t.protocol == IPPROTO_ICMP_;
	struct snat_key in = {
		.saddr = p->t.daddr,
		.daddr = node,
		.sport = icmp ? 0 : p->t.dport,
		.protocol = p->t.protocol,
		.direction = MB_SNAT_IN,
	};
	struct snat_value back = { .to_addr = p->t.saddr, .to_port = p->t.sport, .created_ns = now };
	__u16 port = bpf_ntohs(p->t.sport);
	for (int i = 0; i < SNAT_TRIES; i++) {
		if (port >= SNAT_PORT_MIN || (icmp && port)) {
			in.dport = bpf_htons(port);
			struct snat_value *taken = bpf_map_lookup_elem(&mb_snat, &in);
			if ((!taken || !snat_live(&in, taken, now)) && !snat_port_used_by_node(skb, &in) &&
			    bpf_map_update_elem(&mb_snat, &in, &back, taken ? BPF_ANY : BPF_NOEXIST) == 0)
				return in.dport;
		}
		port = SNAT_PORT_MIN + bpf_get_prandom_u32() % (65536 - SNAT_PORT_MIN);
	}
	return 0;
}

/* What can be translated: TCP and UDP with their ports (first fragments), ICMP echo requests. */
static __always_inline int snat_supported(const struct packet *p)
{
	if (p->t.protocol == IPPROTO_ICMP_)
		return p->icmp_type == ICMP_ECHO && p->l4_off;
	return (p->t.protocol == IPPROTO_TCP_ || p->t.protocol == IPPROTO_UDP_) && p->has_ports;
}

/* Translates an endpoint's packet leaving the cluster to come from `node`. Returns 0, or the
 * reason to drop it. */
static __always_inline int snat_out(struct __sk_buff *skb, const struct packet *p, __be32 node, __u64 now)
{
	if (!snat_supported(p))
		return MB_DROP_UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE;
	struct snat_key out = snat_key_of(&p->t, MB_SNAT_OUT);
	struct snat_value *v = bpf_map_lookup_elem(&mb_snat, &out);
	__be16 port;
	if (v && v->to_addr == node) {
		port = v->to_port;
	} else {
		port = snat_claim(skb, p, node, now);
		if (!port)
			return MB_DROP_NO_MAPPING_FOR_NAT_MASQUERADE;
		struct snat_value fwd = { .to_addr = node, .to_port = port, .created_ns = now };
		if (bpf_map_update_elem(&mb_snat, &out, &fwd, BPF_ANY) < 0)
			return MB_DROP_NO_MAPPING_FOR_NAT_MASQUERADE;
	}
	if (snat_rewrite(skb, p, 1, p->t.saddr, node, p->t.sport, port) < 0)
		return MB_DROP_ERROR_WRITING_TO_PACKET;
	return 0;
}

/* An ICMP error about a translated packet (its inner packet left from the node's port): the
 * outer destination, the inner source and its port become the endpoint's again, with the inner
 * IP checksum and the ICMP checksum (which covers the inner packet) updated. */
static __always_inline int snat_in_icmp_error(struct __sk_buff *skb, const struct packet *p)
{
	if (p->inner.protocol != IPPROTO_TCP_ && p->inner.protocol != IPPROTO_UDP_)
		return 0;
	struct snat_key in = {
		.saddr = p->inner.daddr,
		.daddr = p->inner.saddr,
		.sport = p->inner.dport,
		.dport = p->inner.sport,
		.protocol = p->inner.protocol,
		.direction = MB_SNAT_IN,
	};
	struct snat_value *v = bpf_map_lookup_elem(&mb_snat, &in);
	if (!v)
		return 0;
	__u32 node = p->t.daddr, to_addr = v->to_addr;
	__u16 node_port = p->inner.sport, to_port = v->to_port;
	__u32 inner_off = p->l4_off + 8;
	__u8 ihl;
	__u16 old_check, new_check;
	if (bpf_skb_load_bytes(skb, inner_off, &ihl, 1) < 0 || bpf_skb_load_bytes(skb, inner_off + IP_CHECK_OFF, &old_check, 2) < 0)
		return -1;
	__u32 inner_l4 = inner_off + (ihl & 0xf) * 4;
	__u32 icmp_csum = p->l4_off + ICMP_CSUM_OFF;
	/* Inner IP header: source address (its checksum follows). */
	if (bpf_l3_csum_replace(skb, inner_off + IP_CHECK_OFF, node, to_addr, 4) < 0 ||
	    bpf_skb_store_bytes(skb, inner_off + IP_SRC_OFF, &to_addr, 4, 0) < 0 ||
	    bpf_skb_load_bytes(skb, inner_off + IP_CHECK_OFF, &new_check, 2) < 0)
		return -1;
	/* The ICMP checksum covers all of it: address, inner checksum, port. */
	if (bpf_l4_csum_replace(skb, icmp_csum, node, to_addr, 4) < 0 ||
	    bpf_l4_csum_replace(skb, icmp_csum, old_check, new_check, 2) < 0 ||
	    bpf_l4_csum_replace(skb, icmp_csum, node_port, to_port, 2) < 0 ||
	    bpf_skb_store_bytes(skb, inner_l4, &to_port, 2, 0) < 0)
		return -1;
	/* The outer destination: the IP checksum only. */
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, node, to_addr, 4) < 0 || bpf_skb_store_bytes(skb, IP_DADDR_OFF, &to_addr, 4, 0) < 0)
		return -1;
	return 0;
}

/* Translates a packet arriving for the node's address back to the endpoint whose connection it
 * belongs to; anything else is the node's own. Returns 0, or -1 when the packet could not be
 * rewritten. */
static __always_inline int snat_in(struct __sk_buff *skb, const struct packet *p)
{
	if (p->icmp_error)
		return snat_in_icmp_error(skb, p);
	struct snat_key in = snat_key_of(&p->t, MB_SNAT_IN);
	if (p->t.protocol == IPPROTO_ICMP_ ? p->icmp_type != ICMP_ECHOREPLY : !p->has_ports)
		return 0;
	struct snat_value *v = bpf_map_lookup_elem(&mb_snat, &in);
	if (!v)
		return 0;
	return snat_rewrite(skb, p, 0, p->t.daddr, v->to_addr, p->t.dport, v->to_port);
}

#endif
