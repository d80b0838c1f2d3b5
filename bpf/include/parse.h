#ifndef MEMBRANE_PARSE_H
#define MEMBRANE_PARSE_H

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_HLEN 14
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_SCTP_ 132

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport; /* network order */
	__u16 dport;
	__u8 protocol;
};

/* What the datapath needs to know about one IPv4 packet. */
struct packet {
	struct tuple t;
	__u16 policy_port; /* network order: destination port, or the ICMP type for ICMP */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 icmp_error;   /* an ICMP error: `inner` is the packet it reports on */
	__u8 ttl;
	__u8 has_ports;    /* t.sport/t.dport were read from a TCP/UDP/SCTP header at l4_off */
	__u16 l4_off;
	struct tuple inner;
	__u32 len;
	__u32 frontend_addr; /* the service frontend this packet was translated from (0: none) */
	__u16 frontend_port;
	__u16 ethertype;     /* network order */
};

/* parse_packet results besides 0 (an IPv4 packet). */
#define PARSE_PASS -1 /* ARP: the endpoint's neighbours need it; no policy applies */
#define PARSE_UNSUPPORTED -2 /* any other L3 protocol (IPv6 included): dropped, so nothing bypasses policy */
#define PARSE_INVALID -3 /* a truncated IPv4 header */

/* Ports (or the ICMP echo identifier) of the L4 header at `off`. */
static __always_inline int parse_ports(struct __sk_buff *skb, __u32 off, __u8 proto, struct tuple *t)
{
	if (proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_) {
		__u16 ports[2];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return -1;
		t->sport = ports[0];
		t->dport = ports[1];
	}
	return 0;
}

/* The ICMP error's inner packet, read with helpers: rare, and possibly past the linear data. */
static __always_inline void parse_icmp_error(struct __sk_buff *skb, __u32 l4, struct packet *p)
{
	struct iphdr inner;
	if (bpf_skb_load_bytes(skb, l4 + 8, &inner, sizeof(inner)) < 0)
		return;
	p->icmp_error = 1;
	p->inner.saddr = inner.saddr;
	p->inner.daddr = inner.daddr;
	p->inner.protocol = inner.protocol;
	parse_ports(skb, l4 + 8 + inner.ihl * 4, inner.protocol, &p->inner);
}

/* Returns 0 for a parsed IPv4 packet, else PARSE_*. Headers are read in place (direct packet
 * access); an IPv4 header outside the linear data is pulled in first, and only ICMP errors and
 * non-linear L4 headers use helpers. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return PARSE_INVALID;
	p->ethertype = eth->h_proto;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return PARSE_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_UNSUPPORTED;
	if (data + ETH_HLEN + sizeof(struct iphdr) > end) {
		if (bpf_skb_pull_data(skb, ETH_HLEN + sizeof(struct iphdr)) < 0)
			return PARSE_INVALID;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return PARSE_INVALID;
	__u32 ihl = (ip->ihl & 0xf) * 4;
	if (ihl < sizeof(*ip))
		return PARSE_INVALID;
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.protocol = ip->protocol;
	p->ttl = ip->ttl;
	p->len = skb->len;
	/* Later fragments carry no L4 header: they are judged on addresses and protocol only. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0;

	__u32 l4off = ETH_HLEN + ihl;
	__u8 *l4 = (__u8 *)ip + ihl;
	p->l4_off = l4off;
	if (ip->protocol == IPPROTO_ICMP_) {
		if ((void *)(l4 + 8) > end)
			return 0;
		__u8 type = l4[0];
		__u16 id = *(__u16 *)(l4 + 4);
		p->icmp_type = type;
		p->icmp_code = l4[1];
		p->policy_port = bpf_htons(type);
		if (type == ICMP_ECHO)
			p->t.sport = id;
		else if (type == ICMP_ECHOREPLY)
			p->t.dport = id;
		else if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB)
			parse_icmp_error(skb, l4off, p);
		return 0;
	}
	if (ip->protocol != IPPROTO_TCP_ && ip->protocol != IPPROTO_UDP_ && ip->protocol != IPPROTO_SCTP_)
		return 0;
	if ((void *)(l4 + 14) <= end) {
		p->t.sport = *(__u16 *)l4;
		p->t.dport = *(__u16 *)(l4 + 2);
		if (ip->protocol == IPPROTO_TCP_)
			p->tcp_flags = l4[13];
	} else {
		/* Short packet or non-linear headers. */
		if (parse_ports(skb, l4off, p->t.protocol, &p->t) < 0)
			return 0;
		if (p->t.protocol == IPPROTO_TCP_) {
			__u8 flags;
			if (bpf_skb_load_bytes(skb, l4off + 13, &flags, 1) == 0)
				p->tcp_flags = flags;
		}
	}
	p->has_ports = 1;
	p->policy_port = p->t.dport;
	return 0;
}

#endif
