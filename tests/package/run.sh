#!/usr/bin/env bash
# Installs the built project into a temporary prefix, builds the consumer project
# against it with find_package(netprobe), and runs it (needs root: it loads BPF).
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d /tmp/netprobe-pkg.XXXXXX)
ns=nppkg$$
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$src/tests/package/consumer" -B "$tmp/build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" >/dev/null
# Attach to the loopback of a namespace of our own, never to the host's interfaces.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$tmp/build/consumer" lo | tee "$tmp/out"
grep -q "^Interface lo: RX" "$tmp/out"
grep -q "^server on port [1-9]" "$tmp/out"
grep -q "^security: 0 events, vertical_ports 30$" "$tmp/out"
grep -q "^container 4f6c1e0b2a9d pod 0d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d$" "$tmp/out"
grep -q "^metrics: lo rx_packets .* (collected)$" "$tmp/out"
