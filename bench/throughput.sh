#!/usr/bin/env bash
# TCP throughput over a veth pair between two namespaces, without and with the
# agent attached. ROUNDS rounds of five runs: without, with the agent in its
# default configuration (every feature on, default collect interval), with
# --xdp-mode=off, with --xdp-mode=generic, and two kernel baselines without the
# agent: the one-increment reference TC program on ingress and egress (clsact), the
# cost of the hook itself, and the reference XDP program in generic mode (generic
# XDP copies every non-linear skb); each configuration's median is compared with
# the median without the agent, and with its baseline.
# Everything runs inside the namespaces npb-tp-cli / npb-tp-srv (198.18.0.1/30 <-> 198.18.0.2/30); the
# agent is started inside npb-tp-srv on npbtp1 (the receiver side: data at XDP +
# TC ingress, ACKs at TC egress). iperf3 client pinned to CPU 0, server to CPU 1
# (when there are 2+ CPUs). Cleans up on exit, also on failure or Ctrl-C.
#
# Usage: bench/throughput.sh [SECONDS=5] [ROUNDS=3]   (env NP_BENCH_REF_OBJ: the reference
# BPF object, default build/bpf/reference.bpf.o)
# Output: a table, and RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECS=${1:-5}
ROUNDS=${2:-3}
NS_C=npb-tp-cli
NS_S=npb-tp-srv
IF_C=npbtp0
IF_S=npbtp1
ADDR_S=198.18.0.2
IPERF_PORT=5201

np_require throughput iperf3 jq curl
[[ -x $NP_AGENT ]] || { np_log "throughput: $NP_AGENT not built"; exit 1; }
REF_OBJ=${NP_BENCH_REF_OBJ:-$NP_ROOT/build/bpf/reference.bpf.o}
[[ -f $REF_OBJ ]] || { np_log "throughput: $REF_OBJ not built"; exit 1; }

TMP=$(mktemp -d /tmp/npb-tp.XXXXXX)
trap 'np_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

np_make_pair "$NS_C" "$NS_S" "$IF_C" "$IF_S" 198.18.0.1/30 "$ADDR_S/30"
CPU_C=0
CPU_S=$(( $(nproc) > 1 ? 1 : 0 ))

ip netns exec "$NS_S" taskset -c "$CPU_S" iperf3 -s -p "$IPERF_PORT" >"$TMP/iperf-server.log" 2>&1 &
np_track_pid $!
for i in $(seq 50); do
  ip netns exec "$NS_S" ss -Hltn "sport = :$IPERF_PORT" | grep -q . && break
  sleep 0.1
done
ip netns exec "$NS_C" ping -c1 -W1 -q "$ADDR_S" >/dev/null

# iperf_run: prints the receiver's Gbit/s of one SECS-second run (1 s omitted for slow start).
iperf_run() {
  local out=$TMP/iperf.json
  ip netns exec "$NS_C" taskset -c "$CPU_C" iperf3 -c "$ADDR_S" -p "$IPERF_PORT" -t "$SECS" -O 1 -J >"$out" ||
    { np_log "iperf3 failed:"; cat "$out" >&2; return 1; }
  jq -r '.end.sum_received.bits_per_second / 1e9' "$out"
}

PORT=$(np_free_port "$NS_S")
AGENT_PID=
start_agent() {
  local log=$TMP/agent.log
  np_start_agent "$NS_S" "$log" --interface-filter="$IF_S" --metrics-port="$PORT" "$@"
  AGENT_PID=$NP_AGENT_PID
  np_wait_agent "$NS_S" "$PORT" "$IF_S" "$AGENT_PID" "$log"
}
stop_agent() {
  np_kill "$AGENT_PID"
  np_untrack_pid "$AGENT_PID"
  AGENT_PID=
}

# Warm-up run (not counted): first connection, page cache, CPU frequency.
iperf_run >/dev/null

# Rounds of: without agent, agent (default modes), agent --xdp-mode=off, agent
# --xdp-mode=generic, reference XDP program in generic mode; the same statistic
# (median over ROUNDS) for each.
declare -A runs=()
mode=
printf '%-6s %-30s %10s\n' round run Gbit/s
for r in $(seq "$ROUNDS"); do
  for cfg in without auto off generic reftc refxdp; do
    case $cfg in
      without) ;;
      auto) start_agent ;;
      refxdp) ip -n "$NS_S" link set dev "$IF_S" xdpgeneric obj "$REF_OBJ" sec xdp ;;
      reftc)
        ip netns exec "$NS_S" tc qdisc add dev "$IF_S" clsact
        for d in ingress egress; do ip netns exec "$NS_S" tc filter add dev "$IF_S" "$d" bpf da obj "$REF_OBJ" sec tc; done ;;
      *) start_agent --xdp-mode="$cfg" ;;
    esac
    if [[ $cfg == auto && -z $mode ]]; then
      mode=$(ip netns exec "$NS_S" curl -sf "http://127.0.0.1:$PORT/metrics" |
             sed -n "s/^netprobe_interface_attached{interface=\"$IF_S\",tc_mode=\"\([^\"]*\)\",xdp_mode=\"\([^\"]*\)\".*/tc=\1 xdp=\2/p")
    fi
    g=$(iperf_run)
    runs[$cfg]+="$g "
    case $cfg in
      without) label="without agent" ;;
      refxdp) label="reference XDP (generic), no agent" ;;
      reftc) label="reference TC in+eg, no agent" ;;
      *) label="with agent, --xdp-mode=$cfg" ;;
    esac
    printf '%-6s %-34s %10.2f\n' "$r" "$label" "$g"
    case $cfg in
      without) ;;
      refxdp) ip -n "$NS_S" link set dev "$IF_S" xdpgeneric off ;;
      reftc) ip netns exec "$NS_S" tc qdisc del dev "$IF_S" clsact ;;
      *) stop_agent ;;
    esac
  done
done

med() { np_median ${runs[$1]}; }
ratio() { awk -v a="$(med "$1")" -v b="$(med without)" 'BEGIN {printf "%.3f", a / b}'; }
echo
printf 'median without agent: %.2f Gbit/s\n' "$(med without)"
for cfg in auto off generic; do
  printf 'median with agent --xdp-mode=%-8s %.2f Gbit/s, ratio %s (floor 0.95, aim 0.98)\n' "$cfg:" "$(med $cfg)" "$(ratio $cfg)"
done
printf 'median with the reference TC program on ingress + egress, no agent: %.2f Gbit/s, ratio %s (the cost of the TC hook)\n' "$(med reftc)" "$(ratio reftc)"
printf 'median with the reference XDP program in generic mode, no agent: %.2f Gbit/s, ratio %s (the kernel'"'"'s cost of generic XDP)\n' "$(med refxdp)" "$(ratio refxdp)"
printf 'agent --xdp-mode=generic / reference XDP in generic mode: %s\n' "$(awk -v a="$(med generic)" -v b="$(med refxdp)" 'BEGIN {printf "%.3f", a / b}')"
echo "default (auto) modes resolved to: ${mode:-unknown}"
printf 'RESULT\tthroughput_without_gbps\t%.2f\n' "$(med without)"
printf 'RESULT\tthroughput_with_gbps\t%.2f\n' "$(med auto)"
printf 'RESULT\tthroughput_ratio\t%s\n' "$(ratio auto)"
printf 'RESULT\tthroughput_xdp_off_gbps\t%.2f\n' "$(med off)"
printf 'RESULT\tthroughput_ratio_xdp_off\t%s\n' "$(ratio off)"
printf 'RESULT\tthroughput_xdp_generic_gbps\t%.2f\n' "$(med generic)"
printf 'RESULT\tthroughput_ratio_xdp_generic\t%s\n' "$(ratio generic)"
printf 'RESULT\tthroughput_reftc_gbps\t%.2f\n' "$(med reftc)"
printf 'RESULT\tthroughput_ratio_reftc\t%s\n' "$(ratio reftc)"
printf 'RESULT\tthroughput_refxdp_gbps\t%.2f\n' "$(med refxdp)"
printf 'RESULT\tthroughput_ratio_refxdp\t%s\n' "$(ratio refxdp)"
printf 'RESULT\tthroughput_ratio_generic_vs_refxdp\t%s\n' "$(awk -v a="$(med generic)" -v b="$(med refxdp)" 'BEGIN {printf "%.3f", a / b}')"
printf 'RESULT\tthroughput_mode\t%s\n' "${mode:-unknown}"
for cfg in without auto off generic reftc refxdp; do printf 'RESULT\tthroughput_runs_%s\t%s\n' "$cfg" "${runs[$cfg]}"; done
