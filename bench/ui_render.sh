#!/usr/bin/env bash
# Web UI at scale (issue 12): the real agent's service map of 500 hosts and 2000 edges,
# drawn by the real UI in Debian's Chromium.
#
# Namespaces npb-ui-cli / npb-ui-srv, veth npbui0 <-> npbui1. 400 client addresses
# (198.18.40.1-198.18.41.144 on npbui0) each send UDP datagrams to 5 of 100 server
# addresses (198.18.42.1-100 on npbui1, one socket on port 5300 drains them): 2000
# conversations, each its own edge of the host graph (500 nodes). The agent watches
# npbui1 in npb-ui-srv (0.5 s collections, API on its loopback). Then:
#   - GET /api/v1/topology?limit=2000 (the answer the page loads): its time and size, by curl;
#   - bench/ui_render.cjs (playwright-core, Debian's chromium, in npb-ui-srv): ROUNDS
#     fresh page loads, each timed from navigation start to the first render of all
#     500 nodes and 2000 edges (graph laid out, table filled); then 10 s of the page's
#     live updates: the main thread's long tasks (> 50 ms) per second, and updates made;
#     5 edges chosen with the keyboard, timed until the details pane shows each; with
#     UI_SCREENSHOT=PATH, a screenshot of the page at that size.
# Everything is removed on exit, also on failure or Ctrl-C.
#
# Usage: bench/ui_render.sh BUILD_DIR [ROUNDS=5]
# Output: a summary, and RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BUILD=${1:?usage: ui_render.sh BUILD_DIR [ROUNDS]}
ROUNDS=${2:-5}
NS_C=npb-ui-cli
NS_S=npb-ui-srv
IF_C=npbui0
IF_S=npbui1
CLIENTS=400
SERVERS=100
PER_CLIENT=5
EDGES=$((CLIENTS * PER_CLIENT))
NODES=$((CLIENTS + SERVERS))
PY=/usr/bin/python3
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
MODULES=$BUILD/ui/node_modules

np_require ui-render curl node "$PY" "$CHROMIUM"
[[ -x $NP_AGENT ]] || { np_log "ui-render: $NP_AGENT not built"; exit 1; }
[[ -d $MODULES/playwright-core ]] || { np_log "ui-render: $MODULES/playwright-core missing (build the UI)"; exit 1; }

TMP=$(mktemp -d /tmp/npb-ui.XXXXXX)
trap 'np_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

np_make_pair "$NS_C" "$NS_S" "$IF_C" "$IF_S" "198.18.43.1/30" "198.18.43.2/30"
# The addresses, in one batch each (ip -batch), and the routes between them.
for i in $(seq 0 $((CLIENTS - 1))); do
  echo "addr add 198.18.$((40 + i / 255)).$((1 + i % 255))/32 dev $IF_C"
done >"$TMP/cli.batch"
for i in $(seq 1 "$SERVERS"); do echo "addr add 198.18.42.$i/32 dev $IF_S"; done >"$TMP/srv.batch"
ip -n "$NS_C" -batch "$TMP/cli.batch"
ip -n "$NS_S" -batch "$TMP/srv.batch"
ip -n "$NS_C" route add 198.18.42.0/24 dev "$IF_C"
ip -n "$NS_S" route add 198.18.40.0/23 dev "$IF_S"

PORT=$(np_free_port "$NS_S")
NETPROBE_STATE_DIR=$TMP/state np_start_agent "$NS_S" "$TMP/agent.log" --interface-filter="$IF_S" --metrics-address=127.0.0.1 \
  --metrics-port="$PORT" --collect-interval=500ms
AGENT_PID=$NP_AGENT_PID
np_wait_agent "$NS_S" "$PORT" "$IF_S" "$AGENT_PID" "$TMP/agent.log"

# The drain: every server address, one socket.
ip netns exec "$NS_S" "$PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5300))
while True:
    s.recv(2048)
' &
np_track_pid $!

# The clients: 3 datagrams of 100-1400 bytes (varied, so edge widths differ) to each of
# their 5 servers, from a socket bound to the client's address. Prints datagrams sent.
ip netns exec "$NS_C" "$PY" - "$CLIENTS" "$SERVERS" "$PER_CLIENT" >"$TMP/sent" <<'EOF'
import socket, sys
clients, servers, per = (int(a) for a in sys.argv[1:4])
sent = 0
for i in range(clients):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((f"198.18.{40 + i // 255}.{1 + i % 255}", 0))
    for j in range(per):
        dst = f"198.18.42.{1 + (i * per + j) % servers}"
        for k in range(3):
            s.sendto(b"x" * (100 + (i * 37 + j * 101 + k * 13) % 1300), (dst, 5300))
            sent += 1
    s.close()
print(sent)
EOF
np_log "ui-render: $(cat "$TMP/sent") datagrams sent by $CLIENTS clients to $SERVERS servers"

url="http://127.0.0.1:$PORT"
edges=0
for i in $(seq 100); do  # until the graph holds every conversation (10 s at most)
  edges=$(ip netns exec "$NS_S" curl -sf "$url/api/v1/topology?limit=$EDGES" | jq '.edges | length' || echo 0)
  [[ $edges -ge $EDGES ]] && break
  sleep 0.1
done
[[ $edges -ge $EDGES ]] || { np_log "ui-render: the topology has $edges edges, not $EDGES"; exit 1; }

# The API answer the page loads: time (median of 5) and size.
for i in 1 2 3 4 5; do
  ip netns exec "$NS_S" curl -sf -o /dev/null -w '%{time_total} %{size_download}\n' "$url/api/v1/topology?window=5m&group_by=host"
done >"$TMP/api"
api_ms=$(sort -n "$TMP/api" | awk 'NR == 3 {printf "%.1f", $1 * 1000}')
api_bytes=$(awk 'NR == 1 {print $2}' "$TMP/api")

ip netns exec "$NS_S" env NODE_PATH="$MODULES" CHROMIUM="$CHROMIUM" SCREENSHOT="${UI_SCREENSHOT:-}" \
  node "$NP_ROOT/bench/ui_render.cjs" "$url/ui/" "$NODES" "$EDGES" "$ROUNDS" >"$TMP/page" 2>"$TMP/page.err" || {
  np_log "ui-render: the page run failed:"; cat "$TMP/page" "$TMP/page.err" >&2; exit 1; }
cat "$TMP/page.err" >&2
res=$(tail -n 1 "$TMP/page")

echo "UI at $NODES nodes / $EDGES edges (real agent, host grouping):"
echo "  GET /api/v1/topology: $api_ms ms (median of 5), $api_bytes bytes"
echo "  page: $res"
printf 'RESULT\tui_api_ms\t%s\n' "$api_ms"
printf 'RESULT\tui_api_bytes\t%s\n' "$api_bytes"
printf 'RESULT\tui_first_render_ms\t%s\n' "$(jq -r '.first_render_ms_median' <<<"$res")"
printf 'RESULT\tui_first_render_all_ms\t%s\n' "$(jq -r '.first_render_ms | join(" ")' <<<"$res")"
printf 'RESULT\tui_update_longtask_ms_per_s\t%s\n' "$(jq -r '.longtask_ms_per_second' <<<"$res")"
printf 'RESULT\tui_updates\t%s\n' "$(jq -r '"\(.updates) in \(.steady_seconds) s"' <<<"$res")"
printf 'RESULT\tui_console_errors\t%s\n' "$(jq -r '.console_errors | length' <<<"$res")"
printf 'RESULT\tui_select_ms\t%s\n' "$(jq -r '.select_ms_median' <<<"$res")"
printf 'RESULT\tui_select_all_ms\t%s\n' "$(jq -r '.select_ms | join(" ")' <<<"$res")"
