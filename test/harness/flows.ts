/* Flows shared by the unit tests of the filters, the printers and the JSON encoder: a small
 * story between pods x/a and y/b (a drop by default deny, its reply, a DNS query, a ping, the
 * node reaching a pod). Keys are deliberately not in proto order, to prove the JSON encoder
 * orders them. */
import type { Flow } from '../../src/flow/types.js';

/** TCP SYN from x/a to y/b dropped by policy (default deny on y/b's ingress). */
export const drop: Flow = {
  Summary: 'TCP Flags: SYN',
  default_deny_by: [{ kind: 'CiliumNetworkPolicy', name: 'web-ingress', namespace: 'y' }],
  node_name: 'node1',
  uuid: 'f1-drop',
  time: '2024-11-21T20:52:01.123456789Z',
  verdict: 'DROPPED',
  event_type: { sub_type: 133, type: 1 },
  drop_reason_desc: 'POLICY_DENIED',
  traffic_direction: 'INGRESS',
  drop_reason: 133,
  Type: 'L3_L4',
  destination: {
    pod_name: 'b',
    labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=y'],
    namespace: 'y',
    identity: 257,
    ID: 22,
  },
  source: {
    ID: 11,
    identity: 256,
    namespace: 'x',
    labels: ['k8s:app=client', 'k8s:io.kubernetes.pod.namespace=x'],
    pod_name: 'a',
  },
  l4: { TCP: { flags: { SYN: true, ACK: false }, destination_port: 80, source_port: 41234 } },
  IP: { ipVersion: 'IPv4', destination: '10.0.1.22', source: '10.0.0.11' },
  ethernet: { source: '02:00:0a:00:00:0b', destination: '02:00:0a:00:01:16' },
};

/** The forwarded SYN-ACK reply from y/b back to x/a. */
export const reply: Flow = {
  time: '2024-11-21T20:52:01.123456790Z',
  uuid: 'f2-reply',
  verdict: 'FORWARDED',
  IP: { source: '10.0.1.22', destination: '10.0.0.11', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 80, destination_port: 41234, flags: { SYN: true, ACK: true } } },
  source: { ID: 22, identity: 257, namespace: 'y', pod_name: 'b' },
  destination: { ID: 11, identity: 256, namespace: 'x', pod_name: 'a' },
  Type: 'L3_L4',
  node_name: 'node1',
  event_type: { type: 4, sub_type: 0 },
  traffic_direction: 'EGRESS',
  trace_observation_point: 'TO_ENDPOINT',
  is_reply: true,
  interface: { index: 7, name: 'lxc1' },
  Summary: 'TCP Flags: SYN, ACK',
};

/** A UDP DNS query from x/a to the world, traced leaving the endpoint. */
export const udp: Flow = {
  time: '2024-11-21T20:52:02.5Z',
  uuid: 'f3-udp',
  verdict: 'FORWARDED',
  IP: { source: '10.0.0.11', destination: '10.96.0.10', ipVersion: 'IPv4' },
  l4: { UDP: { source_port: 5353, destination_port: 53 } },
  source: { ID: 11, identity: 256, namespace: 'x', pod_name: 'a' },
  destination: { identity: 2, labels: ['reserved:world'] },
  Type: 'L3_L4',
  node_name: 'node2',
  event_type: { type: 4, sub_type: 5 },
  traffic_direction: 'EGRESS',
  trace_observation_point: 'FROM_ENDPOINT',
  is_reply: false,
  Summary: 'UDP',
};

/** An ICMP echo request from x/a to y/c allowed by an egress policy (policy verdict event). */
export const icmp: Flow = {
  time: '2024-11-21T20:52:03.000000000Z',
  uuid: 'f4-icmp',
  verdict: 'FORWARDED',
  IP: { source: '10.0.0.11', destination: '10.0.1.33', ipVersion: 'IPv4' },
  l4: { ICMPv4: { type: 8 } },
  source: { ID: 11, identity: 256, namespace: 'x', pod_name: 'a' },
  destination: { ID: 33, identity: 258, namespace: 'y', pod_name: 'c' },
  Type: 'L3_L4',
  node_name: 'node1',
  event_type: { type: 5 },
  traffic_direction: 'EGRESS',
  policy_match_type: 1,
  is_reply: false,
  Summary: 'ICMPv4 EchoRequest',
  egress_allowed_by: [{ kind: 'CiliumNetworkPolicy', namespace: 'x', name: 'allow-ping', revision: 4 }],
};

/** The node itself reaching y/b:8080. */
export const fromHost: Flow = {
  time: '2024-11-21T20:52:04Z',
  uuid: 'f5-host',
  verdict: 'FORWARDED',
  IP: { source: '10.0.0.1', destination: '10.0.1.22', ipVersion: 'IPv4' },
  l4: { TCP: { source_port: 39000, destination_port: 8080, flags: { ACK: true } } },
  source: { identity: 1, labels: ['reserved:host'] },
  destination: { ID: 22, identity: 257, namespace: 'y', pod_name: 'b' },
  Type: 'L3_L4',
  node_name: 'node1',
  event_type: { type: 4 },
  traffic_direction: 'INGRESS',
  is_reply: false,
  Summary: 'TCP Flags: ACK',
};
