#!/usr/bin/env bash
# The agent under a SYN flood with a new source port per packet (every SYN a new
# flow): its CPU during the flood alone (process time + the run time of its own BPF
# programs, from kernel.bpf_stats_enabled) for SECONDS after FLOOD_WARM=10 s of it (a
# sustained flood's steady state: the first seconds fill the kernel flow table), the detection latency of the flood, and
# the throughput of an iperf3 transfer running through the same link during a second
# flood, with and without the agent (the median of TPUT_ROUNDS=3 interleaved pairs).
# hping3 paces the flood (-i uN); the rate reached is the receiver's TcpOutRsts (one RST
# per SYN to the closed port) over the time.
#
# Namespaces npb-fl-cli / npb-fl-srv, veth npbfl0 (198.18.2.1/30) <-> npbfl1
# (198.18.2.2/30); the agent (default configuration) runs in npb-fl-srv on npbfl1.
# Usage: bench/flood_cpu.sh [SECONDS=10] [RATES="10000 50000"]
# Output: a table and RESULT lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SECS=${1:-10}
RATES=${2:-"10000 50000"}
NS_C=npb-fl-cli
NS_S=npb-fl-srv
IF_C=npbfl0
IF_S=npbfl1
ADDR_S=198.18.2.2
PORT=19183
np_require flood_cpu hping3 iperf3 jq curl bpftool
TMP=$(mktemp -d /tmp/npb-fl.XXXXXX)
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
trap 'np_cleanup; sysctl -qw kernel.bpf_stats_enabled="$stats_was"; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
np_make_pair "$NS_C" "$NS_S" "$IF_C" "$IF_S" 198.18.2.1/30 "$ADDR_S/30"
ip netns exec "$NS_S" iperf3 -s -p 5201 >"$TMP/iperf-server.log" 2>&1 &
np_track_pid $!
# kernel.bpf_stats_enabled times every program run (two clock reads each): on only while the
# agent's CPU is measured, never during the iperf3 transfers the ratio compares

rsts() { ip netns exec "$NS_S" nstat -asz TcpOutRsts | awk '$1 == "TcpOutRsts" {print $2}'; }
# sec PORT: the agent's new-flow records read and the attempts folded into them so far
sec() {
  ip netns exec "$NS_S" curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^netprobe_security_observations_total\{kind="new_flow"\}/ {r = $2}
         /^netprobe_security_folded_flows_total / {f = $2}
         END {printf "%d %d\n", r, f}'
}
# flood US SECONDS: hping3 SYNs to port 80 (no listener: the receiver answers RST),
# incrementing source port (hping3's default), US microseconds apart
flood() {
  ip netns exec "$NS_C" timeout "$2" hping3 -S -p 80 -i "u$1" "$ADDR_S" >/dev/null 2>&1 || true
}
# pacing RATE: the -i interval that reaches about RATE here. hping3 sleeps the interval
# and then some; the overhead is measured in 2 s runs and taken off, twice (the overhead
# itself changes with the interval: one pass overshot a 10k target by 8%)
pacing() {
  local want=$1 us=$((1000000 / $1)) pass r0 r1 got
  for pass in 1 2; do
    r0=$(rsts); flood "$us" 2; r1=$(rsts)
    got=$(( (r1 - r0) / 2 ))
    [[ $got -gt 0 ]] || break
    us=$(awk -v us="$us" -v got="$got" -v want="$want" 'BEGIN {o = 1e6 / got - us; n = 1e6 / want - o; if (n < 1) n = 1; printf "%d", n}')
  done
  echo "$us"
}
# iperf3 for SECONDS during a flood: Gbit/s received
iperf_during() {
  ip netns exec "$NS_C" iperf3 -c "$ADDR_S" -p 5201 -t "$1" -J 2>/dev/null | jq '.end.sum_received.bits_per_second / 1e9'
}
hz=$(getconf CLK_TCK)
TPUT_SECS=$((SECS > 4 ? SECS - 2 : SECS))
TPUT_ROUNDS=${TPUT_ROUNDS:-3}
WARM=${FLOOD_WARM:-10}

printf '%-10s %-10s %-22s %-16s %-12s %-26s\n' "target" "reached" "agent CPU (proc+BPF)" "BPF alone" "detection" "iperf3 during flood (w/o)"
for rate in $RATES; do
  us=$(pacing "$rate")
  # The link's throughput during a flood with / without the agent, in TPUT_ROUNDS
  # interleaved pairs (one 8 s transfer each way moved by several percent between runs);
  # the agent's CPU and the detection latency from the first round's agent.
  ratios=() withs=() withouts=()
  for round in $(seq "$TPUT_ROUNDS"); do
    flood "$us" "$SECS" &
    fp=$!
    sleep 1
    without=$(iperf_during "$TPUT_SECS")
    wait $fp || true

    np_start_agent "$NS_S" "$TMP/agent-$rate-$round.log" --interface-filter="$IF_S" --metrics-port="$PORT" \
      --metrics-address=127.0.0.1
    agent=$NP_AGENT_PID
    np_wait_agent "$NS_S" "$PORT" "$IF_S" "$agent" "$TMP/agent-$rate-$round.log"
    sleep 2
    if [[ $round == 1 ]]; then
      # the steady state of a sustained flood: measured after WARM s of it (the kernel
      # table filled and the agent's answer to that, if any, in place), for SECS s
      flood "$us" "$((WARM + SECS + 1))" &
      fp=$!
      sleep "$WARM"
      sysctl -qw kernel.bpf_stats_enabled=1
      np_bpf_by_prog "$agent" >"$TMP/progs0"
      read -r rec0 fold0 < <(sec "$PORT")  # the scrapes outside the measured time
      t0=$(np_proc_ticks "$agent"); r0=$(rsts); s0=$(date +%s.%N)
      sleep "$SECS"
      t1=$(np_proc_ticks "$agent"); r1=$(rsts); s1=$(date +%s.%N); read -r rec1 fold1 < <(sec "$PORT")
      np_bpf_by_prog "$agent" >"$TMP/progs1"
      sysctl -qw kernel.bpf_stats_enabled="$stats_was"
      b0=$(np_bpf_ns "$TMP/progs0"); b1=$(np_bpf_ns "$TMP/progs1")
      wait $fp || true
    fi
    flood "$us" "$SECS" &
    fp=$!
    sleep 1
    with=$(iperf_during "$TPUT_SECS")
    wait $fp || true
    if [[ $round == 1 ]]; then
      events=$(ip netns exec "$NS_S" curl -sf "http://127.0.0.1:$PORT/api/v1/events?type=syn_flood" || echo '{}')
      latency=$(jq -r '[.events[]? | select(.type == "syn_flood") | .evidence.detection_latency_ms] | min // "none"' <<<"$events")
    fi
    np_kill "$agent"; np_untrack_pid "$agent"
    withs+=("${with:-0}"); withouts+=("${without:-0}")
    ratios+=("$(awk -v a="${with:-0}" -v b="${without:-0}" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print 0}')")
  done

  wall=$(awk -v a="$s0" -v b="$s1" 'BEGIN {print b - a}')
  reached=$(awk -v r="$((r1 - r0))" -v w="$wall" 'BEGIN {printf "%.0f", r / w}')
  proc_pct=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v w="$wall" 'BEGIN {printf "%.1f", t / hz / w * 100}')
  bpf_pct=$(awk -v b="$((b1 - b0))" -v w="$wall" 'BEGIN {printf "%.1f", b / 1e9 / w * 100}')
  total=$(awk -v a="$proc_pct" -v b="$bpf_pct" 'BEGIN {printf "%.1f", a + b}')
  ratio=$(np_median "${ratios[@]}")
  lat_s=$([[ $latency == none ]] && echo none || awk -v l="$latency" 'BEGIN {printf "%.2f", l / 1000}')
  # where the BPF time went: each program's runs per flood packet and cost
  np_bpf_breakdown "$TMP/progs0" "$TMP/progs1" "$wall" "$((r1 - r0))" packet
  np_log "  security records read by the agent: $(awk -v r="$((rec1 - rec0))" -v w="$wall" 'BEGIN {printf "%.0f", r / w}')/s, announcing $(awk -v r="$((rec1 - rec0 + fold1 - fold0))" -v w="$wall" 'BEGIN {printf "%.0f", r / w}') attempts and refusals/s (the rest folded into their aggregate entry's records)"
  np_log "  iperf3 during the flood, Gbit/s with / without the agent per round: $(for i in "${!ratios[@]}"; do printf '%.2f/%.2f ' "${withs[$i]}" "${withouts[$i]}"; done)"
  printf '%-10s %-10s %-22s %-16s %-12s %-26s\n' "$rate pps" "$reached pps" "$total% ($proc_pct+$bpf_pct)" "$bpf_pct%" \
    "$lat_s s" "median of ${#ratios[@]}: $ratio (${ratios[*]})"
  echo -e "RESULT\tflood_$rate\t$reached\t$total\t$proc_pct\t$bpf_pct\t$lat_s\t$ratio"
done
