#!/usr/bin/env bash
# `make clean-run`: removes what `make run` and the quickstart left on this machine: the
# agent (if running), its namespaces (the endpoints' and the prepared pool's) with any process
# still running in them, pinned objects and state.
set -uo pipefail
NODE_NETNS=${MEMBRANE_NODE_NETNS:-membrane-node}
NODE_NAME=${MEMBRANE_NODE_NAME:-membrane}
STATE_DIR=${MEMBRANE_STATE_DIR:-/var/lib/membrane}
BPFFS_DIR=${MEMBRANE_BPFFS_DIR:-/sys/fs/bpf/membrane}
SOCKET=${MEMBRANE_SOCKET:-/run/membrane/membrane.sock}
pids=$(pgrep -f -- "--node-name $NODE_NAME --pod-cidr" || true)
for pid in $pids; do kill "$pid"; done
# Wait for it to go (up to 5 s), so it cannot prepare a namespace after the sweep below.
for _ in $(seq 50); do
  alive=0
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for ns in $(ip netns list | awk '{print $1}' | grep -E "^(${NODE_NAME}-|${NODE_NAME}\.attached-|${NODE_NAME}\.pool[0-9]+$|${NODE_NETNS}$)" || true); do
  # What still runs in a namespace the agent made (the quickstart's servers) goes with it; the
  # namespace would otherwise live on, nameless, as long as they do. A process's own namespace,
  # given by path (<node>.attached-...), only loses the name the agent gave it.
  case "$ns" in
    "${NODE_NAME}.attached-"*) ;;
    *) for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done ;;
  esac
  ip netns delete "$ns"
done
rm -rf "$BPFFS_DIR" "$STATE_DIR" "$SOCKET"
echo "membrane: removed namespaces, pins and state"
