#ifndef MEMBRANE_PARSE_H
#define MEMBRANE_PARSE_H

#define ETH_P_IP 0x0800
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Returns the IPv4 header of an Ethernet frame, or NULL for anything else. */
static __always_inline struct iphdr *parse_ipv4(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return NULL;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return NULL;
	return ip;
}

#endif
