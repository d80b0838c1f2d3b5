/* tc-level service translation, for what a workload sends that the socket hooks did not
 * translate (a process outside the agent's cgroup): a new connection to a frontend gets a
 * backend (lb_pick), remembered in a service CT entry keyed by the untranslated tuple; every
 * packet of it is rewritten to the backend (DNAT), and replies are rewritten back to come from
 * the frontend (reverse NAT through the connection's CT entry). A frontend without backends is
 * answered at once with ICMP port unreachable, never black-holed. */
#ifndef MEMBRANE_NAT_H
#define MEMBRANE_NAT_H

#include "conntrack.h"
#include "lb.h"
#include "parse.h"

#define IP_CSUM_OFF (ETH_HLEN + 10)
#define IP_SADDR_OFF (ETH_HLEN + 12)
#define IP_DADDR_OFF (ETH_HLEN + 16)
#define ICMP_PORT_UNREACH 3

/* Rewrites the packet's source (`source`) or destination address and port, with incremental
 * checksum updates (the L4 checksum covers the addresses through the pseudo header). */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct packet *p, int source, __u32 old_addr, __u32 new_addr,
				       __u16 old_port, __u16 new_port)
{
	__u32 csum_off = p->l4_off + (p->t.protocol == IPPROTO_TCP_ ? 16 : 6);
	__u64 udp = p->t.protocol == IPPROTO_UDP_ ? BPF_F_MARK_MANGLED_0 : 0;
	if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr, udp | BPF_F_PSEUDO_HDR | 4) < 0 ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, new_addr, 4) < 0 ||
	    bpf_skb_store_bytes(skb, source ? IP_SADDR_OFF : IP_DADDR_OFF, &new_addr, 4, 0) < 0)
		return -1;
	if (old_port != new_port &&
	    (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, udp | 2) < 0 ||
	     bpf_skb_store_bytes(skb, p->l4_off + (source ? 0 : 2), &new_port, 2, 0) < 0))
		return -1;
	return 0;
}

static __always_inline __u16 csum_fold32(__s64 sum)
{
	__u32 c = (__u32)sum;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)~c;
}

/* What follows the IP header of an ICMP error: the header, then the offending packet's IP
 * header and first 8 bytes. */
struct icmp_error_body {
	__u8 type;
	__u8 code;
	__u16 check;
	__u32 unused;
	struct iphdr inner;
	__u8 inner_l4[8];
};

/* Turns the packet into the ICMP port unreachable the frontend would send and hands it back to
 * the workload (TCP then fails with ECONNREFUSED, connected UDP with ECONNREFUSED on the next
 * call). Returns the verdict for the program. */
static __always_inline int lb_reject(struct __sk_buff *skb, const struct packet *p)
{
	struct ethhdr eth;
	struct iphdr ip = {};
	struct icmp_error_body body = {};
	__u32 ip_off = ETH_HLEN, body_off = ETH_HLEN + sizeof(ip), len = ETH_HLEN + sizeof(ip) + sizeof(body);
	if (p->l4_off != ETH_HLEN + sizeof(struct iphdr))
		return TC_ACT_SHOT; /* IP options: too rare to answer */
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0 || bpf_skb_load_bytes(skb, ETH_HLEN, &body.inner, sizeof(body.inner)) < 0 ||
	    bpf_skb_load_bytes(skb, p->l4_off, body.inner_l4, sizeof(body.inner_l4)) < 0)
		return TC_ACT_SHOT;
	__u8 mac[6];
	__builtin_memcpy(mac, eth.h_source, 6);
	__builtin_memcpy(eth.h_source, eth.h_dest, 6);
	__builtin_memcpy(eth.h_dest, mac, 6);
	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(sizeof(ip) + sizeof(body));
	ip.ttl = 64;
	ip.protocol = IPPROTO_ICMP_;
	ip.saddr = p->t.daddr;
	ip.daddr = p->t.saddr;
	ip.check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0));
	body.type = ICMP_DEST_UNREACH;
	body.code = ICMP_PORT_UNREACH;
	body.check = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&body, sizeof(body), 0));
	if (bpf_skb_change_tail(skb, len, 0) < 0 || bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ip_off, &ip, sizeof(ip), 0) < 0 || bpf_skb_store_bytes(skb, body_off, &body, sizeof(body), 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect_peer(skb->ifindex, 0);
}

/* Service translation of a packet the endpoint sends, after its CT lookup (`c`). On a
 * translation `p`, `c` and `*local_dst` (the local endpoint it is addressed to, if any: never a
 * frontend) describe the packet as it now is. Returns 0, or the reason to drop the
 * packet (MB_DROP_SERVICE_BACKEND_NOT_FOUND: answer it with lb_reject). */
static __always_inline int lb_egress(struct __sk_buff *skb, struct endpoint_info *ep, struct packet *p, __u64 now, struct ct_conn *c,
				     struct endpoint_info **local_dst)
{
	struct lb_backend_value be;
	__u32 vip = p->t.daddr;
	__u16 vport = p->t.dport;
	if (c->entry) {
		if (!(c->entry->flags & MB_CT_F_SERVICE) || !c->forward || p->icmp_error)
			return 0; /* the common case: an ordinary connection */
		be.ip = c->entry->nat_addr;
		be.port = c->entry->nat_port;
		ct_touch_service(c->entry, p, now);
	} else {
		if (*local_dst || p->icmp_error || !p->has_ports || (p->t.protocol != IPPROTO_TCP_ && p->t.protocol != IPPROTO_UDP_))
			return 0;
		struct lb_service_value *svc = lb_service(vip, vport, p->t.protocol);
		if (!svc)
			return 0;
		if (!svc->count ||
		    lb_pick(svc, lb_flow_hash(p->t.saddr, p->t.sport, vip, vport, p->t.protocol), p->t.saddr, MB_LB_CLIENT_IP,
			    bpf_ktime_get_coarse_ns() /* affinity: the socket hooks' clock */, &be) < 0)
			return MB_DROP_SERVICE_BACKEND_NOT_FOUND;
		if (ct_create_service(p, now, ep->ep_id, be.ip, be.port) < 0)
			return MB_DROP_CT_MAP_INSERTION_FAILED;
	}
	if (nat_rewrite(skb, p, 0, vip, be.ip, vport, be.port) < 0)
		return MB_DROP_ERROR_WRITING_TO_PACKET;
	p->t.daddr = be.ip;
	p->t.dport = be.port;
	p->policy_port = be.port;
	p->frontend_addr = vip;
	p->frontend_port = vport;
	__u32 backend = be.ip;
	*local_dst = bpf_map_lookup_elem(&mb_lxc, &backend);
	ct_lookup(p, now, c);
	return 0;
}

/* A reply of a translated connection leaves the backend's address: it must come from the
 * frontend the client connected to. */
static __always_inline int lb_reverse(struct __sk_buff *skb, const struct packet *p, const struct ct_value *ct)
{
	return nat_rewrite(skb, p, 1, p->t.saddr, ct->nat_addr, p->t.sport, ct->nat_port);
}

#endif
