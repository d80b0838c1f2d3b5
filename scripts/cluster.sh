#!/usr/bin/env bash
# `make cluster`: a three-node Membrane cluster on this machine, all in network namespaces it
# creates (nothing in the root namespace, no route out of the machine): a namespace playing the
# network between the nodes (a bridge, 172.31.0.0/24) with etcd on 172.31.0.1:2379, and three
# node namespaces mb-n1..mb-n3 (172.31.0.11-13) each running an agent in the background that
# claims its pod CIDR from the cluster pool 10.245.0.0/16, with a certificate of the cluster's CA
# (made here by `membrane cluster certs`) to read the others' flows over mutual TLS, and a host
# "outside" the cluster, mbcluster-out (203.0.113.10, a documentation address), beyond the
# network, which the pods reach masqueraded to their node's address.
# `make clean-cluster` (this script with `clean`) ends them and removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
NET=mbcluster-net
NODES=(mb-n1 mb-n2 mb-n3)
DIR=${MEMBRANE_CLUSTER_DIR:-/var/lib/membrane-cluster}
ETCD_URL=http://172.31.0.1:2379
CGROUP_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)

clean() {
  for f in "$DIR"/*/agent.pid "$DIR"/etcd.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for ns in $(ip netns list | awk '{print $1}' | grep -E '^(mbcluster-|mb-n[0-9]+([-.]|$))' || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns"
  done
  for node in "${NODES[@]}"; do
    rm -rf "/sys/fs/bpf/membrane-$node"
    [ -d "$CGROUP_ROOT/membrane-$node" ] && rmdir "$CGROUP_ROOT/membrane-$node" 2>/dev/null || true
  done
  rm -rf "$DIR" /run/membrane/mb-n*.sock /run/membrane/mb-n*-hubble.sock
  echo "membrane: cluster removed"
}

if [ "${1:-}" = clean ]; then
  clean
  exit 0
fi
if ip netns list | grep -q "^$NET"; then
  echo "membrane: a cluster is already running here: 'make clean-cluster' removes it" >&2
  exit 1
fi

mkdir -p "$DIR" /run/membrane
ip netns add "$NET"
ip -n "$NET" link set lo up
ip -n "$NET" link add br0 type bridge forward_delay 0 stp_state 0
ip -n "$NET" address add 172.31.0.1/24 dev br0
ip -n "$NET" link set br0 up
# The outside host: routed by the network namespace, which knows no way to the pod CIDRs (only
# masqueraded traffic is answered); the nodes get their default route via the network below.
OUT=mbcluster-out
ip netns add "$OUT"
ip -n "$NET" link add out0 type veth peer name eth0 netns "$OUT"
ip -n "$NET" link set out0 up
ip -n "$NET" route add 203.0.113.10/32 dev out0
ip netns exec "$NET" sysctl -qw net.ipv4.conf.out0.proxy_arp=1 net.ipv4.ip_forward=1
ip -n "$OUT" link set lo up
ip -n "$OUT" address add 203.0.113.10/32 dev eth0
ip -n "$OUT" link set eth0 up
ip -n "$OUT" route add default dev eth0

echo "membrane: starting etcd in $NET at $ETCD_URL"
ip netns exec "$NET" etcd --name mbcluster --data-dir "$DIR/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster mbcluster=http://127.0.0.1:2380 --logger zap --log-level warn \
  >"$DIR/etcd.log" 2>&1 &
echo $! >"$DIR/etcd.pid"
for _ in $(seq 100); do
  ip netns exec "$NET" env ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" --dial-timeout=1s endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

# The nodes read each other's flows with mutual TLS: a CA and one certificate per node.
certs=()
for n in $(seq ${#NODES[@]}); do certs+=(--node "${NODES[$((n - 1))]}=172.31.0.1$n"); done
bin/membrane cluster certs --out "$DIR/certs" "${certs[@]}" >/dev/null

i=0
for node in "${NODES[@]}"; do
  i=$((i + 1))
  ip=172.31.0.1$i
  ip netns add "$node"
  ip -n "$node" link set lo up
  ip -n "$node" link add eth0 type veth peer name "n$i" netns "$NET"
  ip -n "$NET" link set "n$i" master br0 up
  ip -n "$node" address add "$ip/24" dev eth0
  ip -n "$node" link set eth0 up
  ip -n "$node" route add default via 172.31.0.1
  mkdir -p "$DIR/$node" "$CGROUP_ROOT/membrane-$node"
  echo "membrane: starting the agent of $node ($ip)"
  nsenter --net="/run/netns/$node" bin/membrane --socket "/run/membrane/$node.sock" agent \
    --node-name "$node" --node-ip "$ip" \
    --kvstore etcd --kvstore-endpoints "$ETCD_URL" \
    --cluster-pool-ipv4-cidr 10.245.0.0/16 --cluster-pool-mask-size 24 \
    --state-dir "$DIR/$node/state" --bpffs-dir "/sys/fs/bpf/membrane-$node" \
    --hubble-socket "/run/membrane/$node-hubble.sock" \
    --hubble-peer-tls-cert-file "$DIR/certs/$node.crt" --hubble-peer-tls-key-file "$DIR/certs/$node.key" \
    --hubble-peer-tls-ca-file "$DIR/certs/ca.crt" \
    --cgroup-root "$CGROUP_ROOT/membrane-$node" --log-format json \
    >"$DIR/$node/agent.log" 2>&1 &
  echo $! >"$DIR/$node/agent.pid"
  for _ in $(seq 300); do
    bin/membrane --socket "/run/membrane/$node.sock" status >/dev/null 2>&1 && break
    kill -0 "$(cat "$DIR/$node/agent.pid")" 2>/dev/null || { echo "membrane: the agent of $node stopped; see $DIR/$node/agent.log" >&2; exit 1; }
    sleep 0.1
  done
done

cat <<EOF

A three-node cluster is running (logs in $DIR/<node>/agent.log; 'make clean-cluster' removes it).
Talk to a node through its socket:

  export MEMBRANE_SOCKET=/run/membrane/mb-n1.sock
  bin/membrane node list
  bin/membrane --socket /run/membrane/mb-n2.sock status
  bin/membrane observe --last 10 --print-node-name      # every node's flows

See "A cluster on one machine" in README.md for a walk through.
EOF
