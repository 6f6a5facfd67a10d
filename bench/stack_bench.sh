#!/usr/bin/env bash
# Cost of the stack monitor's programs per event, and the TCP connection rate the
# agent sustains without losing events.
# With kernel.bpf_stats_enabled=1 (the previous value is restored on exit), the
# agent runs in namespace npb-stk-agt and monitors namespace npb-stk-load
# (--socket-netns), where bench/stack_load.py opens and aborts loopback TCP
# connections at increasing paced rates (RATES, SECONDS each), then unpaced. After
# each step: connections/s achieved, and the deltas of
# netprobe_bpf_missed_events_total{program="netprobe_sk_state"} and
# netprobe_ringbuf_reserve_failures_total{ring="conn_events"}. At the end: ns per
# event of every stack program (run_time_ns / run_cnt from the kernel, bpftool).
# Everything is removed on exit, also on failure or Ctrl-C.
#
# Usage: bench/stack_bench.sh [SECONDS=3] [RATES="1000 2000 5000 10000 15000 20000"]
# Output: a table, and RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECS=${1:-3}
RATES=${2:-1000 2000 5000 10000 15000 20000}
NS_A=npb-stk-agt
NS_L=npb-stk-load
PY=/usr/bin/python3
LOAD=$NP_ROOT/bench/stack_load.py

np_require stack bpftool jq curl
[[ -x $NP_AGENT ]] || { np_log "stack: $NP_AGENT not built"; exit 1; }

TMP=$(mktemp -d /tmp/npb-stk.XXXXXX)
STATS_BEFORE=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
  np_cleanup
  sysctl -qw kernel.bpf_stats_enabled="$STATS_BEFORE" || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in "$NS_A" "$NS_L"; do
  if ip netns list | awk -v n="$ns" '$1 == n {f=1} END {exit !f}'; then ip netns del "$ns"; fi
  ip netns add "$ns"
  _np_netns+=("$ns")
  ip -n "$ns" link set lo up
done
sysctl -qw kernel.bpf_stats_enabled=1

PORT=$(np_free_port "$NS_A")
np_start_agent "$NS_A" "$TMP/agent.log" --metrics-port="$PORT" --collect-interval=250ms --xdp-mode=off \
  --socket-netns="/run/netns/$NS_L"
AGENT_PID=$NP_AGENT_PID
metrics() { ip netns exec "$NS_A" curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics" 2>/dev/null || true; }
enabled=0
for i in $(seq 200); do  # 20 s: until the first collection shows connection tracking on
  kill -0 "$AGENT_PID" 2>/dev/null || { np_log "stack: agent exited:"; cat "$TMP/agent.log" >&2; exit 1; }
  if [[ $(metrics) == *'netprobe_stack_feature_enabled{feature="connections"} 1'* ]]; then enabled=1; break; fi
  sleep 0.1
done
[[ $enabled == 1 ]] || { np_log "stack: connection tracking is not enabled:"; cat "$TMP/agent.log" >&2; exit 1; }

# sample: "missed lost closed" now (after the next collections)
sample() {
  local c0 c
  c0=$(metrics | awk '/^netprobe_collections_total/ {print $2}')
  for i in $(seq 100); do
    c=$(metrics | awk '/^netprobe_collections_total/ {print $2}')
    [[ $c -ge $((c0 + 2)) ]] && break
    sleep 0.1
  done
  metrics | awk '
    /^netprobe_bpf_missed_events_total\{program="netprobe_sk_state"\}/ {m = $2}
    /^netprobe_ringbuf_reserve_failures_total\{ring="conn_events"\}/ {l = $2}
    /^netprobe_tcp_connections_closed_total / {c = $2}
    END {printf "%d %d %d\n", m, l, c}'
}

printf '%-10s %12s %12s %10s %10s %12s\n' target conns achieved/s missed lost closed
best_clean=0
dirty=()  # steps with missed events or losses: "rate:missed/lost"
last_rate= last_missed= last_lost=
for rate in $RATES 0; do
  read -r m0 l0 c0 < <(sample)
  out=$(ip netns exec "$NS_L" "$PY" "$LOAD" "$rate" "$SECS" 2 $((25000 * SECS)))
  read -r m1 l1 c1 < <(sample)
  got=$(jq -r .rate <<<"$out")
  n=$(jq -r .connections <<<"$out")
  dm=$((m1 - m0)); dl=$((l1 - l0)); dc=$((c1 - c0))
  label=$([[ $rate == 0 ]] && echo unpaced || echo "$rate/s")
  printf '%-10s %12s %12.0f %10d %10d %12d\n' "$label" "$n" "$got" "$dm" "$dl" "$dc"
  if [[ $dm -eq 0 && $dl -eq 0 ]] && awk -v a="$got" -v b="$best_clean" 'BEGIN {exit !(a > b)}'; then
    best_clean=$got
  fi
  [[ $dm -eq 0 && $dl -eq 0 ]] || dirty+=("$label:${dm}/${dl}")
  last_rate=$got last_missed=$dm last_lost=$dl
done
echo "(closed: both ends are in the namespace, so 2 per connection; fewer without missed events when the"
echo " listener's accept queue overflowed: that server end never became a full socket)"

echo
printf '%-22s %14s %14s %10s\n' program run_cnt run_time_ns ns/event
ids=$(grep -h '^prog_id:' /proc/"$AGENT_PID"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -un)
for id in $ids; do
  bpftool -j prog show id "$id" 2>/dev/null
done | jq -r 'select(.name | startswith("netprobe_")) | select(.type != "sched_cls" and .type != "xdp")
             | [.name, (.run_cnt // 0), (.run_time_ns // 0)] | @tsv' | sort -u |
while IFS=$'\t' read -r name cnt ns; do
  per=$(awk -v t="$ns" -v c="$cnt" 'BEGIN {if (c > 0) printf "%.1f", t / c; else print "n/a"}')
  printf '%-22s %14s %14s %10s\n' "$name" "$cnt" "$ns" "$per"
  printf 'RESULT\tstack_ns_%s\t%s\n' "$name" "$per"
done
echo "(run_cnt counts every event of the machine: tracepoints are global, the namespace filter runs inside)"

printf 'RESULT\tstack_max_clean_cps\t%.0f\n' "$best_clean"
printf 'RESULT\tstack_max_cps\t%.0f\n' "$last_rate"
printf 'RESULT\tstack_missed_at_max\t%s\n' "$last_missed"
printf 'RESULT\tstack_lost_at_max\t%s\n' "$last_lost"
printf 'RESULT\tstack_dirty_steps\t%s\n' "${dirty[*]:-none}"
