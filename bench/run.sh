#!/usr/bin/env bash
# Runs every NetProbe benchmark, prints one summary table (metric, value, target,
# verdict) and writes docs/benchmarks.md. Called by `make bench` as
#   bash bench/run.sh BUILD_DIR
# Needs root (BPF, network namespaces). Builds the bench targets and the agent
# first (NP_BENCH_SKIP_BUILD=1 skips that). Exit status: non-zero when a
# benchmark could not run (an error), never because a target was missed.
# Everything it creates (namespaces npb-*, veths npb*, processes) is removed on
# exit, also on failure or Ctrl-C.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
BIN=$BUILD/bench
DOC=$ROOT/docs/benchmarks.md
source "$ROOT/bench/lib.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "bench: needs root (BPF programs, network namespaces)" >&2
  exit 1
fi

LOGS=$(mktemp -d /tmp/npb-run.XXXXXX)
# the agents the benchmarks start keep their state (the history store) here, not in /var/lib
export NETPROBE_STATE_DIR=$LOGS/state
final_cleanup() {
  # The sub-scripts clean up after themselves; this catches what a killed one left.
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^npb-(tp|rss|stk|sec|ifc|fl|churn)-/ {print $1}'); do
    ip netns pids "$ns" 2>/dev/null | while read -r p; do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$LOGS"
}
trap final_cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ build
if [[ ${NP_BENCH_SKIP_BUILD:-0} != 1 ]]; then
  if [[ ! -f $BUILD/build.ninja && ! -f $BUILD/Makefile ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1
  fi
  cmake --build "$BUILD" --target netprobe_bench_targets netprobe-agent || { echo "bench: build failed" >&2; exit 1; }
fi

TP_ROUNDS=${NP_BENCH_TP_ROUNDS:-5}  # throughput rounds (4 iperf3 runs of 6 s each)
SERIES_CHURN_SECS=${NP_BENCH_SERIES_CHURN_SECONDS:-600}  # short-lived connections for the series churn row
errors=()
declare -A R  # RESULT name -> value

# run_step NAME LOGFILE CMD...: runs CMD (output shown and logged), records RESULT lines.
run_step() {
  local name=$1 log=$2
  shift 2
  echo
  echo "=================== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if [[ $rc -eq 130 || $rc -eq 143 ]]; then  # the step was interrupted (Ctrl-C / SIGTERM): stop here
    echo "bench: interrupted during $name; docs/benchmarks.md not updated" >&2
    exit "$rc"
  fi
  if [[ $rc -ne 0 ]]; then
    errors+=("$name (exit $rc)")
    echo "bench: $name FAILED (exit $rc)" >&2
  fi
  while IFS=$'\t' read -r tag key rest; do
    [[ $tag == RESULT ]] && R[$key]=$rest
  done <"$log"
  return 0
}

run_step "BPF programs (BPF_PROG_TEST_RUN)" "$LOGS/prog.log" "$BIN/np_bpf_prog_bench"
run_step "netprobe_tc_in under a random-port SYN flood, feature by feature (BPF_PROG_TEST_RUN)" \
  "$LOGS/flood_prog.log" "$BIN/np_bpf_flood_bench"
run_step "Collector (Google Benchmark)" "$LOGS/collector.log" \
  "$BIN/np_collector_bench" --benchmark_out="$LOGS/collector.json" --benchmark_out_format=json
run_step "Topology stream update cost (Google Benchmark)" "$LOGS/topology_stream.log" \
  "$BIN/np_topology_stream_bench" --benchmark_out="$LOGS/topology_stream.json" --benchmark_out_format=json
run_step "Forecast accuracy (Holt-Winters vs seasonal naive, synthetic traces)" "$LOGS/forecast.log" "$BIN/np_forecast_bench"
run_step "RSS of the user-space pipeline (synthetic)" "$LOGS/rss_pipeline.log" "$BIN/np_rss_bench" 100000
run_step "RSS of the real agent with 100k flows" "$LOGS/rss_agent.log" bash "$ROOT/bench/rss_agent.sh" \
  "$BIN/np_flowgen" 100000 50000
run_step "TCP throughput over veth (iperf3)" "$LOGS/throughput.log" \
  env NP_BENCH_REF_OBJ="$BUILD/bpf/reference.bpf.o" bash "$ROOT/bench/throughput.sh" 5 "$TP_ROUNDS"
run_step "Stack monitor: program cost and connection rate" "$LOGS/stack.log" bash "$ROOT/bench/stack_bench.sh" 3
run_step "Interface churn: 4 rounds of 200 veths in 60 s" "$LOGS/churn.log" /usr/bin/python3 "$ROOT/bench/veth_churn.py" \
  "$NP_AGENT" 200 60
run_step "Agent CPU under SYN floods (hping3, a new source port per packet)" "$LOGS/flood.log" \
  bash "$ROOT/bench/flood_cpu.sh" 10 "10000 50000"
run_step "Agent start-up and restart with a keep-alive scrape open" "$LOGS/restart.log" \
  /usr/bin/python3 "$ROOT/bench/restart_bench.py" "$NP_AGENT" 3
run_step "Flow export: the ClickHouse sink against clickhouse-server" "$LOGS/clickhouse.log" \
  bash "$ROOT/bench/clickhouse_sink.sh" "$BIN" 10000 30
run_step "L7 capture: nginx + wrk, per-syscall cost, RSS with 10k connections" "$LOGS/l7.log" \
  bash "$ROOT/bench/l7_http.sh" "$BIN" 3 8
run_step "Security: detection latency (nmap, hping3)" "$LOGS/security.log" /usr/bin/python3 "$ROOT/bench/security_bench.py" --rounds=3
run_step "Anomaly detection: events during a benign mix after learning" "$LOGS/anomaly.log" \
  /usr/bin/python3 "$ROOT/bench/anomaly_benign.py"
run_step "Series churn: distinct top-talker series in a real Prometheus" "$LOGS/series_churn.log" \
  bash "$ROOT/bench/series_churn.sh" "$SERIES_CHURN_SECS"
UI_SCREENSHOT="$ROOT/docs/images/ui-topology-2000.png" \
  run_step "Web UI: 500 nodes / 2000 edges in Chromium" "$LOGS/ui.log" bash "$ROOT/bench/ui_render.sh" "$BUILD" 5

# ------------------------------------------------------------------ summary
rows=()  # metric|value|target|verdict
row() { rows+=("$1|$2|$3|$4"); }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 <= b + 0)}'; }
# flood_at_rate RATE: a flood row's agent CPU (%) scaled to its target RATE from the rate
# hping3 reached (the cost is per packet; the pacing lands within several percent)
flood_at_rate() {
  awk -F'\t' -v r="$1" '{printf "%.1f", ($1 > 0 ? $2 * r / $1 : $2)}' <<<"${R[flood_$1]}"
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 >= b + 0)}'; }
na() { row "$1" "n/a" "$2" "ERROR (not measured)"; }

for c in "netprobe_xdp ipv4 steady" "netprobe_tc_in ipv4 steady" "netprobe_tc_eg ipv4 steady" \
         "netprobe_tc_in ipv6 steady" "netprobe_tc_eg ipv6 steady" \
         "netprobe_tc_in ipv4 first" "netprobe_tc_eg ipv4 first" "netprobe_tc_in ipv6 first"; do
  if [[ -z ${R[$c]:-} ]]; then na "$c: ns/packet vs reference" "ratio <= 5x (aim 3x)"; continue; fi
  IFS=$'\t' read -r ref prog ratio verdict <<<"${R[$c]}"
  if [[ $c == *first ]]; then
    extra=${R[${c% first} insert_extra]:-?}
    row "$c: ns/packet (new flow) vs reference" "$prog ns vs $ref ns = ${ratio}x; insert = +$extra ns over a hit" "-" "info"
  else
    row "$c: ns/packet vs reference" "$prog ns vs $ref ns = ${ratio}x" "<= 5x (aim 3x)" "$verdict"
  fi
done

# --qos-udp-jitter=on times every UDP datagram (bpf/lib/udp_timing.h): its cost, for the record
if [[ -n ${R[netprobe_tc_in+udp ipv4 steady]:-} ]]; then
  IFS=$'\t' read -r ref prog ratio verdict <<<"${R[netprobe_tc_in+udp ipv4 steady]}"
  tcp=$(cut -f2 <<<"${R[netprobe_tc_in ipv4 steady]:-}")
  row "netprobe_tc_in ipv4/udp steady with --qos-udp-jitter=on (off by default)" "$prog ns vs $ref ns = ${ratio}x (TCP steady: ${tcp:-?} ns)" "-" "info"
fi

gb() {  # gb NAME FIELD: field of the Google Benchmark entry whose name starts with NAME
  [[ -f $LOGS/collector.json ]] || return 0
  jq -r --arg n "$1" --arg f "$2" \
    'first(.benchmarks[] | select(.name | startswith($n + "/")) | select(.error_occurred != true) | .[$f]) // empty' \
    "$LOGS/collector.json"
}
# Security analytics: what detection adds to the datapath (same method as above),
# and how fast it detects.
for p in "netprobe_tc_in ipv4" "netprobe_tc_eg ipv4" "netprobe_tc_in ipv6"; do
  base=${R[$p steady]:-}
  sec=${R[${p/ /+sec } steady]:-}
  if [[ -z $base || -z $sec ]]; then na "$p: security analytics cost" "<= +30%"; continue; fi
  b=$(cut -f2 <<<"$base"); s=$(cut -f2 <<<"$sec")
  pct=$(awk -v a="$s" -v b="$b" 'BEGIN {printf "%.0f", (a / b - 1) * 100}')
  if le "$pct" 30; then v=PASS; else v=MISS; fi
  row "$p: ns/packet with security analytics on" "$s ns vs $b ns = +$pct%" "<= +30%" "$v"
done
if [[ -n ${R[netprobe_xdp+sec ipv4 steady]:-} && -n ${R[netprobe_xdp ipv4 steady]:-} ]]; then
  b=$(cut -f2 <<<"${R[netprobe_xdp ipv4 steady]}"); s=$(cut -f2 <<<"${R[netprobe_xdp+sec ipv4 steady]}")
  row "netprobe_xdp ipv4: ns/packet with --mitigate=on/dry-run (blocklist lookup; 0 with mitigation off)" "$s ns vs $b ns" "-" "info"
fi
if [[ -n ${R[netprobe_tc_in+sec ipv4 insert_extra]:-} ]]; then
  row "netprobe_tc_in+sec ipv4: new flow (insert + ring record) over a hit" "+${R[netprobe_tc_in+sec ipv4 insert_extra]} ns" "-" "info"
fi
# Forecasting (bench/forecast_bench.cpp): rolling-origin MAPE against the seasonal naive
# baseline (must beat it) and the 80% interval's coverage (target 75-85%).
for t in seasonal step lowtraffic; do
  if [[ -z ${R[forecast_$t]:-} ]]; then na "forecast ($t): MAPE vs seasonal naive" "beats naive; 80% interval covers 75-85%"; continue; fi
  IFS=$'\t' read -r m1 n1 ms ns cov <<<"${R[forecast_$t]}"
  if le "$m1" "$n1" && le "$ms" "$ns" && ge "$cov" 0.75 && le "$cov" 0.85; then v=PASS; else v=MISS; fi
  row "forecast ($t trace): MAPE % h=1 / h=season vs seasonal naive; 80% interval coverage" \
    "$m1 / $ms vs $n1 / $ns; coverage $cov" "beats naive; 0.75-0.85" "$v"
done
if [[ -n ${R[anomaly_benign]:-} ]]; then
  IFS=$'\t' read -r n secs series mem <<<"${R[anomaly_benign]}"
  if [[ $n -eq 0 ]]; then v=PASS; else v=MISS; fi
  row "anomaly events during $secs s of a benign mix after learning ($series models, $((mem / 1024)) KiB)" "$n" "0" "$v"
else
  na "anomaly events during a benign mix after learning" "0"
fi
# Threat intel: 1.1M prefixes in the kernel trie (bench/bpf_prog_bench.cpp).
if [[ -n ${R[intel_install]:-} ]]; then
  IFS=$'\t' read -r n secs mib <<<"${R[intel_install]}"
  row "threat intel: install $n prefixes (1M IPv4 + 100k IPv6) into a kernel LPM trie" "$secs s, $mib MiB (trie memlock)" "a few seconds" \
    "$(le "$secs" 5 && echo PASS || echo MISS)"
fi
for p in "netprobe_tc_in ipv4" "netprobe_tc_in ipv6"; do
  sec=${R[${p/ /+sec } steady]:-}
  it=${R[${p/ /+intel } steady]:-}
  [[ -z $sec || -z $it ]] && continue
  s=$(cut -f2 <<<"$sec"); i=$(cut -f2 <<<"$it")
  pct=$(awk -v a="$i" -v b="$s" 'BEGIN {printf "%.0f", (a / b - 1) * 100}')
  row "$p: ns/packet with threat intel (1.1M prefixes; verdict cached per flow) over security on" "$i ns vs $s ns = +$pct%" "<= +10%" \
    "$(le "$pct" 10 && echo PASS || echo MISS)"
  first=${R[${p/ /+intel } first]:-}
  if [[ -n $first ]]; then
    IFS=$'\t' read -r _ fprog _ _ <<<"$first"
    row "$p+intel: new flow (two trie lookups + insert + records)" "$fprog ns; insert = +${R[${p/ /+intel } insert_extra]:-?} ns over a hit" "-" "info"
  fi
done
while IFS= read -r k; do
  [[ $k == "sec_latency "* ]] || continue
  IFS=$'\t' read -r secs target verdict <<<"${R[$k]}"
  row "detection latency: ${k#sec_latency } (tool start -> event, worst of 3)" "$secs s" "<= $target s" "$verdict"
done < <(printf '%s\n' "${!R[@]}" | sort)
[[ -n ${R[sec_ring_lost]:-} ]] && row "security ring-buffer records lost during the latency runs" "${R[sec_ring_lost]}" "0" \
  "$([[ ${R[sec_ring_lost]} == 0 ]] && echo PASS || echo MISS)"
if [[ -n ${R[scrape_latency]:-} ]]; then
  IFS=$'\t' read -r idle flood ratio verdict <<<"${R[scrape_latency]}"
  row "/metrics latency p99 during a SYN flood with --mitigate=on vs idle" "$flood ms vs $idle ms = ${ratio}x" "<= 2x idle" "$verdict"
  if [[ -n ${R[scrape_latency_control]:-} ]]; then
    IFS=$'\t' read -r hidle hflood hratio <<<"${R[scrape_latency_control]}"
    row "control: /healthz latency p99 during the same flood vs idle (the machine's share)" "$hflood ms vs $hidle ms = ${hratio}x" "-" "info"
  fi
else
  na "/metrics latency p99 during a SYN flood with --mitigate=on vs idle" "<= 2x idle"
fi

ms_row() {  # ms_row BENCH LABEL LIMIT_MS|"" 
  local v
  v=$(gb "$1" real_time)
  if [[ -z $v ]]; then na "$2" "${3:+< $3 ms}"; return; fi
  v=$(printf '%.2f' "$v")
  if [[ -z $3 ]]; then row "$2" "$v ms" "-" "info"
  elif le "$v" "$3"; then row "$2" "$v ms" "< $3 ms" "PASS"
  else row "$2" "$v ms" "< $3 ms" "MISS ($(awk -v a="$v" -v b="$3" 'BEGIN {printf "%.1fx", a / b}'))"
  fi
}
ms_row ReadFlows/Batch "read 100k flows, batch (readFlowMap: what the agent does every interval)" 50
ms_row DrainFlows/Batch "read and delete 100k flows, batch (readFlowMap take=true; the agent only removes idle flows)" ""
ms_row FlowDeltas "per-entry baselines: deltas of 100k kernel entries (FlowDeltaTracker, every interval)" ""
ms_row FlowPlaces "which entry counts each 5-tuple: 100k samples (FlowDeltaTracker::markPlaces, every interval)" ""
series=$(gb RenderMetrics/Series10k series)
ms_row RenderMetrics/Series10k "render /metrics, ${series:-?} series" 10
ms_row RenderMetrics/Flows100k "render /metrics, 4 interfaces + 100k flows (top 20 talkers)" ""
ms_row FlowTableApply/Insert "FlowTable::apply 100k samples (new flows)" ""
ms_row FlowTableApply/Update "FlowTable::apply 100k samples (known flows)" ""
ms_row FlowTableRecords "flow view of a quiet collection, 100k flows (FlowTable::apply without samples)" ""
ms_row TopTalkers "TopTalkers stage over 100k samples (talkers, sums, sticky top-20; every interval)" ""
topo_convs=$(gb Topology conversations)
ms_row Topology "Topology stage over 100k samples (${topo_convs%.*} conversations; every interval)" ""
ms_row TopologyJson "GET /api/v1/topology over those conversations (top 2000 edges)" ""
# The topology stream (bench/topology_stream_bench.cpp): per view and distinct query.
tsb() {  # tsb NAME FIELD, from the stream bench's JSON
  [[ -f $LOGS/topology_stream.json ]] || return 0
  jq -r --arg n "$1" --arg f "$2" \
    'first(.benchmarks[] | select(.name | startswith($n + "/")) | select(.error_occurred != true) | .[$f]) // empty' \
    "$LOGS/topology_stream.json"
}
if [[ -n $(tsb TopologyStream/Update real_time) ]]; then
  row "topology stream: update per view, 2000 edges with 5% changed (document + diff + event)" \
    "$(printf '%.2f' "$(tsb TopologyStream/Update real_time)") ms (diff alone $(printf '%.2f' "$(tsb TopologyStream/Diff real_time)") ms)" "-" "info"
  row "topology stream: bytes per update (5% of 2000 edges) vs a snapshot" \
    "$(printf '%.0f' "$(tsb TopologyStream/Diff bytes_per_update)") B vs $(printf '%.0f' "$(tsb TopologyStream/Diff snapshot_bytes)") B" "-" "info"
else
  na "topology stream: update per view, 2000 edges with 5% changed" "-"
fi
ms_row FlowExport/Update "FlowExport stage over 100k samples of open flows (flow records; every interval)" ""
ms_row FlowExport/Emit "FlowExport: 100k flows end, their records built" ""
ipfix_bpr=$(gb IpfixEncode bytes_per_record)
ms_row IpfixEncode "IPFIX encoding of 100k biflow records (${ipfix_bpr%.*} bytes/record on the wire)" ""
json_bpr=$(gb FlowLogJson bytes_per_record)
ms_row FlowLogJson "flow log JSON of 100k records (${json_bpr%.*} bytes/record)" ""

if [[ -n ${R[l7_wrk_ratio]:-} ]]; then
  v=$(ge "${R[l7_wrk_ratio]}" 0.95 && echo PASS || echo MISS)
  row "L7 (--l7=on): nginx requests/s with/without agent, wrk -c64 small responses, median of 3" \
    "${R[l7_wrk_ratio]} (p99 ${R[l7_wrk_p99_on_ms]} vs ${R[l7_wrk_p99_off_ms]} ms)" ">= 0.95 (aim 0.98)" "$v"
  if [[ -n ${R[l7_agent_us]:-} ]]; then
    IFS=$'\t' read -r l7proc l7bpf <<<"${R[l7_agent_us]}"
    row "L7: the agent's CPU per wrk request: its process (median of 3) + its BPF programs (one more run with bpf_stats on)" \
      "$l7proc us + $l7bpf us" "-" "info"
  fi
  row "L7: server-side requests counted vs wrk's own count (within its 64 connections)" \
    "$([[ ${R[l7_wrk_counted_exact]} == 1 ]] && echo exact || echo differs)" "exact" \
    "$([[ ${R[l7_wrk_counted_exact]} == 1 ]] && echo PASS || echo MISS)"
  if [[ -n ${R[l7_wrk_tls_ratio]:-} ]]; then
    v=$(ge "${R[l7_wrk_tls_ratio]}" 0.95 && echo PASS || echo MISS)
    row "L7 over HTTPS (OpenSSL probes): nginx requests/s with/without agent, wrk -c64, median of 3" \
      "${R[l7_wrk_tls_ratio]} (p99 ${R[l7_wrk_tls_p99_on_ms]} vs ${R[l7_wrk_tls_p99_off_ms]} ms)" ">= 0.95 (aim 0.98)" "$v"
    row "L7 over HTTPS: server-side requests counted vs wrk's own count (within its 64 connections)" \
      "$([[ ${R[l7_wrk_tls_counted_exact]} == 1 ]] && echo exact || echo differs)" "exact" \
      "$([[ ${R[l7_wrk_tls_counted_exact]} == 1 ]] && echo PASS || echo MISS)"
  fi
  if [[ -n ${R[l7_hook_ref_sys_exit_ratio]:-} ]]; then
    row "L7 kernel baseline: an empty program at the raw sys_exit tracepoint (the capture's hook), no agent / without, median of 5" \
      "${R[l7_hook_ref_sys_exit_ratio]}" "(reference)" "-"
  fi
  if [[ -n ${R[l7_hook_ref_l7off_ratio]:-} ]]; then
    row "L7 baseline: the agent with --l7=off (its other features at their defaults) / without, median of 5" \
      "${R[l7_hook_ref_l7off_ratio]}" "(reference)" "-"
  fi
  if [[ -n ${R[l7_hook_ref_sock_ratio]:-} ]]; then
    row "L7 kernel baseline: empty programs at sock_send_length + sock_recv_length (socket I/O only), no agent / without, median of 5" \
      "${R[l7_hook_ref_sock_ratio]}" "(reference)" "-"
  fi
  row "L7: ns added per write(2) - /dev/null / HTTP socket (captured) / binary socket (skipped)" \
    "${R[l7_ns_devnull]} / ${R[l7_ns_http_socket]} / ${R[l7_ns_binary_socket]}" "non-socket near zero" "info"
  row "L7: ring records/s delivered with 4 writers flat out (lost: counted)" \
    "${R[l7_ring_records_per_second]} (lost ${R[l7_ring_lost_per_second]}/s)" "-" "info"
  row "L7 parsing, ns per message: Kafka Produce / Fetch exchange (request + response)" \
    "${R[l7_parse_ns_kafka_produce]:-n/a} / ${R[l7_parse_ns_kafka_fetch]:-n/a}" "-" "info"
  row "L7 parsing, ns per message: AMQP basic.publish + confirm / basic.deliver + ack / 1 MiB publish in 64 KiB reads" \
    "${R[l7_parse_ns_amqp_publish]:-n/a} / ${R[l7_parse_ns_amqp_deliver]:-n/a} / ${R[l7_parse_ns_amqp_publish_1mib]:-n/a}" "-" "info"
  row "L7: agent RSS with 10k keep-alive connections (${R[l7_rss_connections]} tracked: both ends)" \
    "${R[l7_rss_10k_mib]} MiB (+${R[l7_rss_10k_delta_mib]} MiB)" "-" "info"
else na "L7: nginx requests/s with/without agent" ">= 0.95"; fi
if [[ -n ${R[ch_sink_records_per_second]:-} ]]; then
  row "ClickHouse sink: records/s delivered to clickhouse-server on this machine (1M records, batches of 50k)" \
    "${R[ch_sink_records_per_second]}" ">= 10000" "$(ge "${R[ch_sink_records_per_second]}" 10000 && echo PASS || echo MISS)"
else na "ClickHouse sink: records/s delivered" ">= 10000"; fi
if [[ -n ${R[ch_sink_cpu_per_10k]:-} ]]; then
  row "ClickHouse sink: agent CPU per 10k records/s (with ${R[ch_agent_cpu_sink]}% vs without a sink ${R[ch_agent_cpu_none]}%, at ${R[ch_records_per_second]} records/s)" \
    "${R[ch_sink_cpu_per_10k]}% of a core" "-" "info"
  row "ClickHouse: bytes per flow record on disk (18.16, after OPTIMIZE FINAL; ${R[ch_rows]} rows for ${R[ch_records]} records)" \
    "${R[ch_disk_bytes_per_record]} B (${R[ch_raw_bytes_per_record]} B uncompressed)" "-" "info"
else na "ClickHouse sink: agent CPU per 10k records/s" "-"; fi

if [[ -n ${R[throughput_ratio]:-} ]]; then
  r=${R[throughput_ratio]}
  if ge "$r" 0.98; then v=PASS; elif ge "$r" 0.95; then v="PASS(floor)"; else v="MISS"; fi
  row "TCP throughput with/without agent (${R[throughput_mode]:-?}), median of $TP_ROUNDS" \
    "$r (${R[throughput_with_gbps]} / ${R[throughput_without_gbps]} Gbit/s)" ">= 0.95 (aim 0.98)" "$v"
  r=${R[throughput_ratio_xdp_off]}
  if ge "$r" 0.98; then v=PASS; elif ge "$r" 0.95; then v="PASS(floor)"; else v="MISS"; fi
  row "TCP throughput with agent --xdp-mode=off / without, median of $TP_ROUNDS" \
    "$r (${R[throughput_xdp_off_gbps]} Gbit/s)" ">= 0.95 (aim 0.98)" "$v"
  r=${R[throughput_ratio_xdp_generic]}
  if ge "$r" 0.98; then v=PASS; elif ge "$r" 0.95; then v="PASS(floor)"; else v="MISS"; fi
  row "TCP throughput with agent --xdp-mode=generic / without, median of $TP_ROUNDS" \
    "$r (${R[throughput_xdp_generic_gbps]} Gbit/s)" ">= 0.95 (aim 0.98)" "$v"
  row "Kernel baseline: one-increment TC program on ingress + egress (clsact), no agent / without" \
    "${R[throughput_ratio_reftc]:-n/a} (${R[throughput_reftc_gbps]:-?} Gbit/s)" "(reference)" "-"
  row "Kernel baseline: one-increment XDP program in generic mode, no agent / without" \
    "${R[throughput_ratio_refxdp]:-n/a} (${R[throughput_refxdp_gbps]:-?} Gbit/s)" "(reference)" "-"
  row "TCP throughput with agent --xdp-mode=generic / the generic-XDP baseline" \
    "${R[throughput_ratio_generic_vs_refxdp]:-n/a}" "(the agent's own share)" "-"
else
  na "TCP throughput with/without agent" ">= 0.95 (aim 0.98)"
fi

if [[ -n ${R[rss_agent_hwm_mib]:-} ]]; then
  h=${R[rss_agent_hwm_mib]}
  if le "$h" 56; then v=PASS; else v="MISS"; fi
  row "agent VmHWM, ${R[rss_agent_flows]} flows tracked, collecting + /metrics scrapes" "$h MiB (VmRSS ${R[rss_agent_rss_mib]} MiB)" "< 56 MiB" "$v"
  h=${R[rss_agent_hwm_after_api_mib]}
  if le "$h" 56; then v=PASS; else v="MISS"; fi
  row "agent VmHWM after one /api/v1/flows?limit=10000" "$h MiB (VmRSS ${R[rss_agent_rss_after_api_mib]} MiB)" "< 56 MiB" "$v"
  row "agent BPF map memory (kernel, not in RSS)" "${R[rss_agent_map_mib]} MiB" "-" "info"
  row "agent: longest collection while 50k new flows/s arrived" "${R[rss_agent_max_collect_seconds]} s" "-" "info"
else
  na "agent RSS with 100k flows" "< 56 MiB"
fi
if [[ -n ${R[rss_pipeline_hwm_mib]:-} ]]; then
  row "user-space pipeline VmHWM, 100k flows (np_rss_bench, synthetic)" \
    "${R[rss_pipeline_hwm_mib]} MiB (${R[rss_pipeline_trimmed_mib]} MiB after malloc_trim)" "< 56 MiB" \
    "info"
fi

for rate in 10000 50000; do
  if [[ -z ${R[flood_$rate]:-} ]]; then na "agent CPU during a $rate pps SYN flood" "<= 5% of a core at 10k pps"; continue; fi
  IFS=$'\t' read -r reached total proc bpf lat ratio <<<"${R[flood_$rate]}"
  # judged at the target rate (10789 pps reached at 5.3% was 4.9% at 10k; 9396 pps at 4.8% was 5.1%)
  at=$(flood_at_rate "$rate")
  # (the 50k target is beyond what hping3 reaches here: its row is the rate reached, not scaled)
  if [[ $rate == 10000 ]]; then
    if le "$at" 5; then v=PASS; else v=MISS; fi
    tgt="<= 5% of a core" scaled="; $at% at $rate pps"
  else v=info; tgt="-" scaled=""; fi
  row "agent CPU during a SYN flood, target $rate pps (reached $reached pps; process + its BPF programs; 10 s after 10 s of flood)" \
    "$total% ($proc% + $bpf%)$scaled" "$tgt" "$v"
  if ge "$ratio" 0.95; then v=PASS; else v=MISS; fi
  row "iperf3 through the link during that flood, with / without the agent (median of 3 interleaved pairs)" "$ratio" ">= 0.95" "$v"
  if [[ $lat != none ]] && le "$lat" 2; then v=PASS; else v=MISS; fi
  row "syn_flood detection latency during that flood" "$lat s" "<= 2 s" "$v"
done

if [[ -n ${R[restart_sigkill_ms]:-} ]]; then
  IFS=$'\t' read -r cmed cmax <<<"${R[restart_cold_ms]}"
  row "agent start-up: spawn -> first /metrics answer (BPF load and attach included)" "median $cmed ms, max $cmax ms" "-" "info"
  for s in sigkill sigterm; do
    IFS=$'\t' read -r med max <<<"${R[restart_${s}_ms]}"
    if [[ ${R[restart_failures]} == 0 ]] && le "$max" 2000; then v=PASS; else v=MISS; fi
    row "restart after ${s^^} with a keep-alive scrape open: spawn -> first /metrics answer" \
      "median $med ms, max $max ms (${R[restart_failures]} failed restarts in all)" "<= 2000 ms, none failed" "$v"
  done
else
  na "restart after SIGKILL/SIGTERM: spawn -> first /metrics answer" "<= 2000 ms"
fi

if [[ -n ${R[churn_attach_ms]:-} ]]; then
  IFS=$'\t' read -r med p99 max missed <<<"${R[churn_attach_ms]}"
  IFS=$'\t' read -r pairs secs <<<"${R[churn_pairs]}"
  if le "$p99" 1000 && [[ $missed == 0 ]]; then v=PASS; else v=MISS; fi
  row "interface churn: $pairs veths created and deleted in $secs s, new interface -> programs attached" \
    "p99 $p99 ms (median $med, max $max; $missed never attached)" "p99 <= 1000 ms" "$v"
  IFS=$'\t' read -r med p99 max missed <<<"${R[churn_latency_ms]}"
  row "interface churn: new interface -> listed by /api/v1/interfaces (adds up to one collect interval)" \
    "p99 $p99 ms (median $med, max $max)" "-" "info"
  IFS=$'\t' read -r f0 f1 <<<"${R[churn_fds]}"
  IFS=$'\t' read -r r0 r1 h1 <<<"${R[churn_rss_kib]}"
  # growth is judged after the warm-up rounds: VmRSS after the last round against after
  # round 2 (the first two carry warm-up and state that ends with time: veth_churn.py)
  read -r -a rr <<<"${R[churn_rss_rounds_kib]:-}"
  warm=$r0 last=$r1
  if (( ${#rr[@]} >= 2 )); then warm=${rr[1]} last=${rr[${#rr[@]} - 1]}; fi
  if [[ $f1 -le $((f0 + 2)) && ${R[churn_left]} == 0 ]] && le "$last" "$((warm * 105 / 100 + 1024))"; then v=PASS; else v=MISS; fi
  row "interface churn: agent fds before -> after, VmRSS after round 2 -> after the last (before the churn: $((r0 / 1024)) MiB), interfaces left listed" \
    "fds $f0 -> $f1, VmRSS $((warm / 1024)) -> $((last / 1024)) MiB, ${R[churn_left]} left" "flat" "$v"
  if (( ${#rr[@]} > 0 )); then
    row "interface churn: VmRSS after each round of $((pairs / ${#rr[@]})) veths (rounds 1-2: warm-up; then growth)" \
      "$(printf '%s KiB ' "${rr[@]}")" "-" "info"
  fi
else
  na "interface churn: 200 veths in 60 s" "p99 <= 1000 ms"
fi

if [[ -n ${R[stack_max_cps]:-} ]]; then
  for p in netprobe_sk_state netprobe_tcp_probe netprobe_tcp_rst_tx netprobe_tcp_rst_rx netprobe_tcp_retx \
           netprobe_kfree_skb netprobe_nf; do
    [[ -n ${R[stack_ns_$p]:-} ]] && row "stack program $p: ns/event (run_time_ns/run_cnt)" "${R[stack_ns_$p]} ns" "-" "info"
  done
  row "TCP connections/s with zero missed events and zero ring-buffer losses (highest such step)" \
    "${R[stack_max_clean_cps]} (steps with misses/losses: ${R[stack_dirty_steps]:-?})" "-" "info"
  row "TCP connections/s at the highest rate tried (unpaced): missed events / ring-buffer losses" \
    "${R[stack_max_cps]}: ${R[stack_missed_at_max]} missed / ${R[stack_lost_at_max]} lost" "counted" \
    "$([[ ${R[stack_lost_at_max]} == 0 && ${R[stack_missed_at_max]} == 0 ]] && echo "info (none)" || echo "info (counted)")"
else
  na "stack monitor: program cost and connection rate" "-"
fi

if [[ -n ${R[series_churn_distinct]:-} ]]; then
  row "distinct ${R[series_churn_family]}_bytes_rate series in Prometheus over ${R[series_churn_seconds]} s of short-lived TCP connections from random ports (${R[series_churn_connections]}), vs the per-scrape budget (K + other)" \
    "${R[series_churn_distinct]} (budget ${R[series_churn_budget]}, at most ${R[series_churn_max_per_scrape]} in one scrape) = ${R[series_churn_ratio]}x" \
    "<= 2x budget" "${R[series_churn_verdict]}"
else
  na "distinct top-talker series in Prometheus over $SERIES_CHURN_SECS s of short-lived connections" "<= 2x budget"
fi

if [[ -n ${R[ui_first_render_ms]:-} ]]; then
  row "web UI: first render of the service map, 500 nodes / 2000 edges (real agent, Chromium; median of 5 loads)" \
    "${R[ui_first_render_ms]} ms (${R[ui_first_render_all_ms]})" "< 2000 ms" \
    "$(le "${R[ui_first_render_ms]}" 2000 && echo PASS || echo MISS)"
  row "web UI: an edge chosen with the keyboard at that size, until its details show (median of 5)" \
    "${R[ui_select_ms]} ms (${R[ui_select_all_ms]})" "< 250 ms" \
    "$(le "${R[ui_select_ms]}" 250 && echo PASS || echo MISS)"
  row "web UI: GET /api/v1/topology behind it (2000 edges; median of 5)" "${R[ui_api_ms]} ms, ${R[ui_api_bytes]} bytes" "-" "info"
  row "web UI: main-thread long tasks during live updates at that size ($((${R[ui_updates]%% *})) updates in 10 s)" \
    "${R[ui_update_longtask_ms_per_s]} ms per s" "-" "info"
else
  na "web UI: first render of 500 nodes / 2000 edges" "-"
fi

echo
echo "=================== Summary"
{
  printf '%s|%s|%s|%s\n' metric value target verdict
  printf '%s\n' "${rows[@]}"
} | awk -F'|' '{for (i = 1; i <= NF; i++) {c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i)}; n = NR}
  END {for (r = 1; r <= n; r++) {for (i = 1; i <= 4; i++) printf "%-*s%s", w[i], c[r, i], (i < 4 ? "  " : "\n");
        if (r == 1) {for (i = 1; i <= 4; i++) {s = ""; for (j = 0; j < w[i]; j++) s = s "-"; printf "%s%s", s, (i < 4 ? "  " : "\n")}}}}'

# ------------------------------------------------------------------ docs/benchmarks.md
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
gb_build=$( [[ -f $LOGS/collector.json ]] && jq -r '.context.library_build_type' "$LOGS/collector.json" || echo "?")
section() {  # section FILE: the log without RESULT lines, as a code block
  echo '```'
  if [[ -f $1 ]]; then grep -v $'^RESULT\t' "$1"; else echo "(not run)"; fi
  echo '```'
}
# notes: what dominates each missed or borderline target, as found when these
# benchmarks were written (perf, and variants of the programs built outside the
# tree); printed only for the rows that apply.
notes() {
  local any=0
  local tc_ratio
  tc_ratio=$(cut -f3 <<<"${R[netprobe_tc_in ipv4 steady]:-}")
  if [[ -n $tc_ratio ]] && ! le "$tc_ratio" 3; then
    any=1
    cat <<'EON'
- **TC programs (~5x the reference, at the floor).** On the steady path `netprobe_tc_in` calls two
  hash lookups (`tc_device_stats` PERCPU_HASH, `flow_stats` PERCPU_HASH with a 44-byte key) and
  `bpf_ktime_get_ns` (`bpftool prog dump xlated`); the per-CPU array counters are inlined by the JIT.
  Measured by removing or replacing one piece at a time (IPv4 steady, ~135 ns total, reference 27 ns):
  flow accounting ~65 ns (of which `bpf_ktime_get_ns` ~18 ns: `read_tsc` is ~12% of all samples
  under perf), `tc_device_stats` hash update ~22 ns, protocol counters ~7 ns, parser and the rest
  ~12 ns. `bpf_ktime_get_coarse_ns` plus a PERCPU_ARRAY device counter (slot per interface) measured
  95 ns = 3.5x.
EON
  fi
  if [[ -n ${R[netprobe_tc_in ipv4 insert_extra]:-} ]]; then
    any=1
    cat <<'EON'
- **New flows.** Inserting into `flow_stats` (`BPF_F_NO_PREALLOC`: element and per-CPU value come
  from the BPF memory allocator) costs ~270 ns over a hit; the same program with a preallocated
  `flow_stats` measured ~190 ns.
EON
  fi
  if [[ -n $(gb DrainFlows/Batch real_time) ]] && ! le "$(gb DrainFlows/Batch real_time)" 50; then
    any=1
    cat <<'EON'
- **Draining 100k flows (~10x the 50 ms target) while reading them takes ~40 ms.** The difference
  is the delete: `flow_stats` is a `BPF_F_NO_PREALLOC` PERCPU_HASH, so every deleted element frees
  its per-CPU value through the kernel's per-CPU allocator (`unit_free`/`free_htab_elem` dominate
  under perf), ~5 us per flow; inserting 100k from user space takes ~1 s for the same reason and
  can fail with transient ENOMEM. A preallocated map of the same shape measured 38 ms to drain
  and 48 ms to fill.
EON
  fi
  if [[ -n ${R[throughput_ratio]:-} ]] && ! ge "${R[throughput_ratio]}" 0.95; then
    any=1
    cat <<'EON'
- **Throughput with XDP in native mode on veth.** The loss does not depend on the program: a bare
  `XDP_PASS` program (with or without `xdp.frags`) attached in driver mode to the receiving veth
  also cuts iperf3 from ~19.5 to ~5.3 Gbit/s, and the sending peer shows
  `tcp-segmentation-offload: off` while it is attached. The agent's own counters show the effect:
  in native mode the receiver sees MTU-sized packets (~1.5 KB on average), in generic mode GSO-sized
  ones (~45 KB), so it handles about 6x more packets. With `--xdp-mode=generic` or `off` the
  agent costs nothing measurable here.
- **Throughput with every feature on (2026-11-28).** The datapath is not what costs here: with
  `--socket-monitor=off --cgroup-traffic=off --security=off` the same run gave 0.990 / 0.992 / 0.995
  (auto / xdp off / generic); with only `--cgroup-traffic=off --security=off` 0.937 / 0.910 / 0.926, as
  with everything on (0.919 / 0.938 / 0.908). Kernel run times during 5 s of iperf3 at 19.2 Gbit/s
  (`kernel.bpf_stats_enabled=1`, both ends' sockets on this host): tc_in+tc_eg 97 ms, xdp 20 ms,
  tcp_probe 76 ms (410k events, every ACK of both ends), netfilter 92 ms (932k hook runs: 4 hooks per
  packet), cgroup_skb in+eg 116 ms (466k + 466k). So the socket-layer tracing (tcp_probe, netfilter at
  every hook) is what takes the throughput under the floor; per-cgroup counting costs about as much
  as the whole TC datapath, within this benchmark's noise. Since then tcp_probe samples (a
  connection's first 8 segments, then ~1 in 8): 186 -> 120 ns/event, 76 -> 48 ms in the same 5 s.
  Next: attach netfilter only where a count is wanted, make cgroup counters an array like host_stats.
EON
  fi
  if [[ -n ${R[rss_agent_hwm_after_api_mib]:-} ]] && ! le "${R[rss_agent_hwm_after_api_mib]}" 56; then
    any=1
    cat <<'EON'
- **RSS after `/api/v1/flows?limit=10000`.** The answer is streamed into one string (~3 MiB for 10k
  flows), the HTTP head written in front of it in the same buffer; the agent's peak is a collection
  (`np_rss_bench`): the interval's samples (80 B per kernel entry that moved) and, while a view still
  publishes the previous flow records, copies of the 80 KiB chunks of stored flows that moved.
EON
  fi
  if [[ -n ${R[l7_wrk_ratio]:-} ]] && ! ge "${R[l7_wrk_ratio]}" 0.95; then
    any=1
    cat <<'EON'
- **L7 capture under wrk (2026-12-06).** This workload is ~170k requests/s of 3-byte answers on 2
  CPUs, ~6 syscalls and ~8 packets a request, so it prices everything per syscall and per packet.
  Interleaved pairs here: the agent with `--l7=off` already gives 0.84-0.92 (cgroup_skb, netfilter,
  tcp_probe, TC: each ~100-160 ns a packet); `--l7=on` 0.64-0.66. An empty `tp_btf` sys_enter +
  sys_exit pair costs ~115 ns per syscall of every process (write to /dev/null 135 -> 250 ns),
  per-syscall tracepoints (`syscalls:sys_enter_write`) more (358 ns); the capture's own logic for a
  non-socket fd adds ~75-100 ns over that. Kernel run times (`bpf_stats`) at 91k requests/s:
  np_l7_exit 342 ns/run (197 ms/s), np_l7_enter 163 ns/run (94 ms/s) over ~575k syscalls/s, the
  agent's process ~18% of a core for ~360k records/s. Fixed on the way: a ring wakeup (an IPI, a
  hypervisor exit in a VM) per record whenever the backlog was above 256 KiB - np_l7_exit was
  620 ns/run with it.
EON
  fi
  if [[ -n ${R[flood_10000]:-} ]] && ! le "$(flood_at_rate 10000)" 5; then
    any=1
    cat <<'EOF2'
- **Agent CPU in a SYN flood.** At the steady state of a random-port flood the kernel table is
  under pressure: each SYN costs `netprobe_tc_in` ~0.7-1.1 us (a flow lookup that misses, the
  aggregate entry, a handshake slot: cold cache lines at ~100-200 ns each in this VM) and each RST
  `netprobe_tc_eg` ~0.4-0.75 us; an aggregate entry's attempts are announced by one security record
  per tick and CPU (~500 records/s read by the agent whatever the rate). Here the flood's source runs
  on the same node: of the two kfree_skb and cg_eg runs per SYN, one is the attacker's own (its RST
  dropped, its raw send), ~0.4% of a core at 10k pps.
EOF2
  fi
  if [[ -n ${R[flood_10000]:-} ]] && ! ge "$(cut -f6 <<<"${R[flood_10000]}")" 0.95; then
    any=1
    cat <<'EOF2'
- **iperf3 during a SYN flood.** The same transfer without a flood gives ~0.95 with the agent (the
  throughput rows above); the flood's own cost adds to it (~3.5% of a core at 10k pps: for the SYN a
  flow table lookup and its aggregate entry once the table is under pressure and a handshake slot;
  the same for the RST; two kfree_skb runs), and one 8 s transfer each way moves by several percent
  between runs (single pairs 0.80-1.24, medians of 3 0.88-1.11 at the same commit).
EOF2
  fi
  [[ $any == 1 ]] || echo "(none)"
}

{
  echo "# NetProbe benchmarks"
  echo
  echo "Generated by \`make bench\` (\`bash bench/run.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Machine: $(nproc) CPUs ($cpu), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)."
  echo "Build: \`$(basename "$BUILD")\` ($(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$BUILD/CMakeCache.txt" 2>/dev/null))."
  echo "Numbers from a shared 2-CPU VM move by a few percent between runs; ratios measured in the same run are the stable part."
  echo
  echo "## Summary"
  echo
  echo "| metric | value | target | verdict |"
  echo "|---|---|---|---|"
  for r in "${rows[@]}"; do IFS='|' read -r a b c d <<<"$r"; echo "| $a | $b | $c | $d |"; done
  if [[ ${#errors[@]} -gt 0 ]]; then
    echo
    echo "**Errors:** ${errors[*]}"
  fi
  cat <<EOF

## Method

**Datapath programs** (\`bench/bpf_prog_bench.cpp\`, \`np_bpf_prog_bench\`). Each program of the
datapath skeleton runs through \`BPF_PROG_TEST_RUN\` (\`bpf_prog_test_run_opts\`); the kernel reports
the average ns per run. The reference is \`bench/reference.bpf.c\` (one per-CPU array increment) of
the same program type, loaded in the same process. Reference and program alternate (ref, prog, ref,
prog, ...) for 15 rounds on one pinned CPU; the table shows the median of each and the ratio of the
medians. Frames: 64-byte Ethernet/IPv4/TCP and 84-byte Ethernet/IPv6/TCP, built by hand.
*steady*: the flow exists (the warm-up creates it), 200k runs per measurement. *first*: the flow is
deleted from user space before every run, so every run inserts it; single runs (repeat=1, which adds
the kernel's ~50 ns timer overhead to both sides; the reference side makes the same delete syscall).
Floor: ratio <= 5x, aim 3x (steady rows).

**Collector** (\`bench/collector_bench.cpp\`, Google Benchmark; Debian's library reports build type
"$gb_build", which only concerns the harness, not the measured code).
A real \`flow_stats\` map (datapath skeleton, \`max_entries\` 131072, \`BPF_F_NO_PREALLOC\` per-CPU hash)
filled from user space with 100k distinct IPv4/TCP keys, per-CPU values on every CPU.
*read*: \`readFlowMap\` (\`BPF_MAP_LOOKUP_BATCH\` 4096 at a time; get_next_key walks are gone: a walk
restarts when the kernel deletes the key it holds). *drain*: \`readFlowMap(take=true)\`
(lookup-and-delete of every entry; the agent reads with batch lookups and removes only idle flows, one
lookup-and-delete each); the map is refilled
with \`BPF_MAP_UPDATE_BATCH\` outside the timing. *render*: \`renderMetrics\` of a snapshot with 900
interfaces (8 interface series + 2 XDP series + 1 attached = 11 per interface), the fixed protocol,
malformed, map and agent families, and the top-20 talker series of 100k flows: ${series:-?} series in
total (counted from the output); also 4 interfaces + 100k flows (the realistic agent case).
*FlowDeltas*: the datapath source's per-entry baselines (\`FlowDeltaTracker::update\`) over 100k kernel
entries that all moved since the previous read. *FlowTable*: \`FlowTable::apply\` of 100k samples into an
empty table (Insert) and into a table that already holds those flows (Update, while a view holds the
previous records, as in the agent: every chunk of stored flows is copied); *FlowTableRecords* is a
quiet collection's apply (no samples, nothing moved in the interval before: the table looks for idle
flows and keeps the version the view publishes).
*FlowPlaces*: \`FlowDeltaTracker::markPlaces\` over 100k samples (which kernel entry of each 5-tuple
counts it). *TopTalkers*: the stage's run over the same 100k samples (the talker of
each sample, per-talker sums, the sticky top-20), once per collect interval. *FlowExport*: the flow
record stage (only with \`--ipfix-collector\` or \`--flow-log\`) over the same 100k samples of flows
already open (Update), and 100k flows ending at once (Emit: records built, no attribution).
*IpfixEncode*: those 100k records encoded as IPFIX biflow messages of at most 1400 bytes;
*FlowLogJson*: as flow log lines.

**Throughput** (\`bench/throughput.sh\`). Namespaces \`npb-tp-cli\` / \`npb-tp-srv\` joined by a veth pair
(198.18.0.1/30, 198.18.0.2/30); iperf3 client (CPU 0) -> server (CPU 1), 5 s per run after 1 s
omitted, receiver's rate. $TP_ROUNDS rounds of six runs: without the agent, with the agent
(\`--interface-filter=npbtp1\` inside the server namespace, otherwise its defaults: every feature on,
5 s collection) in its default modes, with \`--xdp-mode=off\`, with \`--xdp-mode=generic\`, and two
kernel baselines without the agent: the one-increment reference program (\`bench/reference.bpf.c\`)
on TC ingress and egress (clsact), and in generic XDP; each ratio is the configuration's median
over the median without the agent. Other work on the (shared) machine shows up as run-to-run noise.

**Agent RSS** (\`bench/rss_agent.sh\`). The real agent in namespace \`npb-rss-agt\` on \`npbrs1\`
(\`--flow-table-size=131072 --max-flows=100000 --collect-interval=1s\`). \`np_flowgen\` (\`bench/flowgen.cpp\`)
sends one 60-byte UDP packet for each of 100k distinct port pairs from \`npb-rss-gen\`, paced at
50k packets/s (AF_PACKET on the veth, nothing routed). Once \`netprobe_flows_tracked\` reaches 100k the
script waits two collections, scrapes \`/metrics\` twice and reads VmRSS/VmHWM from \`/proc/PID/status\`;
then it fetches \`/api/v1/flows?limit=10000\` once and reads them again. Kernel map memory is the sum of
\`memlock\` of the agent's BPF map fds. \`np_rss_bench\` (\`bench/rss_bench.cpp\`) replays the same
pipeline in one process with synthetic flows and prints the RSS after each stage, to show where the
memory goes: two collections in which all 100k flows moved (a heavier interval than the real agent's,
whose flows each send a packet or three), the second one's records built while the first view is
published.

**Stack monitor** (\`bench/stack_bench.sh\`, load from \`bench/stack_load.py\`). With
\`kernel.bpf_stats_enabled=1\` (restored afterwards) the agent runs in namespace \`npb-stk-agt\`
(\`--socket-netns=/run/netns/npb-stk-load --xdp-mode=off --collect-interval=250ms\`). In
\`npb-stk-load\` a Python generator (one accepting server process, two client processes) opens loopback
TCP connections and aborts them (SO_LINGER 0: RST, no TIME_WAIT), paced to 1000, 2000, 5000, 10000,
15000 and 20000 connections/s for 3 s each, then unpaced (at most 75000 connections). After each step the
script waits two collections and takes the deltas of
\`netprobe_bpf_missed_events_total{program="netprobe_sk_state"}\` and
\`netprobe_ringbuf_reserve_failures_total{ring="conn_events"}\`; the clean rate is the highest achieved
rate with both zero (misses are sporadic, not only at high rates: the steps that had any are listed).
ns/event is the kernel's \`run_time_ns / run_cnt\` of each stack program over the
whole run (\`bpftool prog show\`); tracepoints are global, so run_cnt includes events of other
namespaces, which the programs filter out early. The load generator, not the agent, limits the rate:
the unpaced row is the most this Python generator reaches on the machine.

**Series churn** (\`bench/series_churn.sh\`, load from \`bench/churn_load.py\`). Namespaces
\`npb-churn-cli\` / \`npb-churn-srv\` joined by a veth pair (198.18.5.1/30, 198.18.5.2/30). In
\`npb-churn-srv\`: the agent on \`npbch1\` (defaults: \`--top-talkers=20\`, \`--top-talkers-hold=5m\`,
\`--collect-interval=5s\`; metrics on 127.0.0.1), a Prometheus of its own (\`/usr/bin/prometheus\`,
temp TSDB, \`scrape_interval: 5s\`, over loopback, so the scrapes are no traffic of \`npbch1\`) and TCP
servers on ports 8080, 8081, 8443, 9000. From \`npb-churn-cli\`, 4 connections/s for $SERIES_CHURN_SECS s,
each bound to a random source port (32768-60999), to a random server port, with a random 1-64 KiB
answer. Then Prometheus's HTTP API gives the distinct series of the family with samples in the traffic
window (\`/api/v1/series\` with start/end; \`count(count_over_time(...))\` agrees) and the most series
one scrape carried. Budget: K + \`other\` = 21 series per family and scrape; target: at most twice that
over the window. The same script measures an agent from before issue 10 (\`NP_AGENT=...\`, family
\`netprobe_top_flow_*\`, one series per flow): 2399 distinct series for 2401 connections in 600 s,
114x the budget.

**Web UI at scale** (\`bench/ui_render.sh\`, \`bench/ui_render.cjs\`). Namespaces \`npb-ui-cli\` /
\`npb-ui-srv\` joined by a veth pair; 400 client addresses each send 3 UDP datagrams to 5 of 100 server
addresses: 2000 conversations, each its own edge of the host graph of 500 nodes. The real agent
watches \`npbui1\` (0.5 s collections). The UI (\`/ui/\`) is loaded 5 times, each in a fresh context
of Debian's Chromium (playwright-core, headless, 1400x900); *first render* is the page's
\`performance.now()\` when its data model and graph hold all 500 nodes and 2000 edges laid out and the
edge table is filled (polled on animation frames). *Long tasks*: the main thread's tasks over 50 ms
(PerformanceObserver) during 10 s of live updates from 2 s after the first render, per second.
*Chosen with the keyboard*: an edge table row focused and Enter pressed, until the details pane names
that edge (5 rows, the median). The page at that size: \`docs/images/ui-topology-2000.png\`.

**Start-up and restart** (\`bench/restart_bench.py\`). The agent in namespace \`npb-rst\` on a veth
pair inside it, listening on 127.0.0.1. Per round, twice: a cold start (spawn -> first 200 from
\`/metrics\`, polled every 20 ms); a scraper keeps a keep-alive connection with three scrapes served; the
agent gets SIGKILL (then SIGTERM) and a new one is spawned on the same port at once: spawn -> first 200.
The time is the agent's start-up (BPF load, verification and attach) since the listener binds on the
first try (SO_REUSEADDR; \`e2e_http\` checks that no restart fails with "port in use").
Most of it is the kernel verifying the datapath programs; the layer-3 device programs are a second
object loaded only when such a device is monitored (none here; since 9de3c2a: start-up was ~2.07 s
before, 0.75 s of it verifying them).

**ClickHouse sink** (\`bench/clickhouse_sink.sh\`, [docs/clickhouse.md](clickhouse.md)). Debian's
clickhouse-server (18.16) in namespace \`npb-chs-agt\` (own config and data directory, removed
afterwards). *records/s*: \`np_sink_bench\` offers 1M synthetic biflow records to a \`ClickHouseSink\`
as fast as its queue takes them; the clock stops when the sink reports all of them inserted (spooled,
sent, spool empty); server and sink share the 2 CPUs. *agent CPU*: \`np_flowgen\` sends 10k new
one-packet flows/s for 30 s into the agent's veth (\`--flow-idle-timeout=1s\`: one record per flow);
utime+stime of the agent over the load, without a sink (no flow-record stage) and with
\`--clickhouse\`; the difference per 10k records/s. *bytes on disk*: \`system.parts\` of
\`netprobe.flows\` after \`OPTIMIZE TABLE FINAL\` (18.16 has no column codecs; LowCardinality is not
used before 19.1).

**L7 capture** (\`bench/l7_http.sh\`, [docs/l7.md](l7.md)). \`np_l7_syscall_bench\` loads the capture
in its own process and times 200k 100-byte write(2)s (best of 5) to /dev/null, on a loopback TCP
connection carrying HTTP requests (each write captured) and on one carrying binary data (classified
as nothing after 4 syscalls, then skipped), without and with the programs; then 4 threads write
HTTP requests flat out for 2 s and a handler counts the records. nginx (1 worker, \`return 200\`)
in \`npb-l7-srv\`, wrk -t1 -c64 in \`npb-l7-cli\` for 8 s, without the agent then with \`--l7=on\`,
3 interleaved pairs, all on the same 2 CPUs: every request is 4 captured syscalls (nginx's read and
write, wrk's write and read) parsed by the agent. The same over HTTPS: nginx's TLS port (a
self-signed RSA-2048 certificate made by the bench), wrk's https URL, each pair in the same round;
the agent reads the plaintext at OpenSSL's SSL_read/SSL_write (uprobes on the libssl both map).
RSS: 10k connections each send one request and
stay open. \`np_l7_parse_bench\` feeds capture records built from the protocols' formats (the heads
the kernel copies: 512 bytes for Kafka, 4 KiB for AMQP) through the agent's connection tracker, one
connection, 200k messages, best of 5: a Kafka Produce v7 and a Fetch v11 exchange (librdkafka's
versions), a pika basic.publish (three writes) with its confirm, a RabbitMQ basic.deliver (one
write) with its ack, and a 1 MiB publication read in 64 KiB pieces.

**Security analytics** (\`bench/security_bench.py\`, [docs/security.md](security.md)). Cost: the
same BPF_PROG_TEST_RUN method on a second copy of the datapath loaded with \`np_enable_security=1\`
and \`np_mitigate=on\` (rows \`+sec\`; the XDP row measures the blocklist lookup, which only
runs with mitigation on). Latency: the agent (default thresholds) in namespace \`npb-sec-v\`, the
tools in \`npb-sec-a\` over a veth; each case 3 times, from the tool's start (wall clock) to the
event's \`detected_at\`. The 5-minute benign soak is \`make bench-benign\` (not part of this run).

## Where the cost goes

What dominates each missed (or only floor-level) target. These figures come from one-off
investigations made when the benchmarks were written (perf; variants of the programs and maps built
outside the tree), not from this run; each note is printed only while its row still misses.

$(notes)

## Packet path tracing

The cost of the trace check in the datapath programs (\`bpf/lib/trace.h\`; docs/topology.md), measured
with \`np_bpf_prog_bench\` (BPF_PROG_TEST_RUN, steady cases, median ns/packet of 15 rounds of 200k runs on
one pinned CPU, the reference program alongside), on the shared 2-CPU build machine (kernel 6.18) while
other builds ran. "before" is the same bench built against the datapath of the commit before tracing
(\`git show ec19a1e:bpf/progs/datapath.bpf.c\`); \`--trace=\` is the bench option added with it.

| program, frame | before (no check) | no trace (\`--trace=off\`, the check) | a trace of another flow (\`armed\`) | a trace of this flow (\`match\`) |
|---|---|---|---|---|
| netprobe_xdp ipv4/tcp 64B | 7 / 7 / 7 ns | 8 / 8 / 7 ns | 22 ns | 57 ns |
| netprobe_tc_in ipv4/tcp 64B | 59 / 57 / 57 ns | 58 / 57 / 57 ns | 65 ns | 98 ns |
| netprobe_tc_eg ipv4/tcp 64B | 58 / 57 / 61 ns | 58 / 58 / 58 ns | 66 ns | 98 ns |
| netprobe_tc_in ipv6/tcp 84B | 58 ns | 58 ns | 63 ns | 63 ns (an IPv4 trace: no match) |

With no trace the check (one load of \`np_trace_on\`, a branch not taken) is below what the kernel's
integer-ns figures resolve: before and after differ by no more than runs of the same binary do (57-61
ns). A trace of another flow costs the slot scan (4 array lookups, address compares: +6-8 ns at TC; XDP
also parses the frame for it: +15 ns); a packet of the traced flow pays its counters and device entry
(+40 ns at TC, +50 ns at XDP). Only the traced node's packets while a trace runs pay that, and the
netfilter and socket trace programs are not attached at all without a trace.

## Raw output

### Datapath programs
$(section "$LOGS/prog.log")

### Collector
$(section "$LOGS/collector.log")

### RSS: real agent
$(section "$LOGS/rss_agent.log")

### RSS: user-space pipeline stages
$(section "$LOGS/rss_pipeline.log")

### Throughput
$(section "$LOGS/throughput.log")

### Stack monitor
$(section "$LOGS/stack.log")

### Security analytics
$(section "$LOGS/security.log")

### Series churn
$(section "$LOGS/series_churn.log")

### Interface churn
$(section "$LOGS/churn.log")

### Web UI at 500 nodes / 2000 edges
$(section "$LOGS/ui.log")

### SYN floods: agent CPU
$(section "$LOGS/flood.log")

Where a flood packet's time goes in \`netprobe_tc_in\` (\`bench/bpf_flood_bench.cpp\`: 65,536 distinct
SYNs run once each with BPF_PROG_TEST_RUN, the security ring drained and \`flow_stats\` emptied every
256 as the agent's collection does; each configuration with one feature off, so the differences are
what the features cost per new flow; last, the defaults with the table under pressure, as in a sustained
flood: the attempts in one aggregate entry, announced by one security record per tick):
$(section "$LOGS/flood_prog.log")

### Flow export: ClickHouse sink
$(section "$LOGS/clickhouse.log")

$( if [[ -f $ROOT/docs/soak.md ]]; then echo "## Soak (make soak, not part of make bench; from docs/soak.md)"; \
   tail -n +2 "$ROOT/docs/soak.md"; fi )
EOF
} >"$DOC"
echo
echo "wrote $DOC"

# ------------------------------------------------------------------ leftovers
left=$( {
  ip netns list | awk '$1 ~ /^npb-/'
  ip -o link show type veth | awk -F': ' '$2 ~ /^npb/ {print $2}'
  bpftool prog show 2>/dev/null | grep -E 'np_bench' || true
  pgrep -af 'restart_bench.py|np_sink_bench|clickhouse-server --config-file=/tmp/npb-ch|np_flowgen|ui_render.cjs|np_bpf_prog_bench|np_bpf_flood_bench|np_collector_bench|stack_load.py|security_bench.py|churn_load.py|storage.tsdb.path=/tmp/npb-churn|netprobe-agent --interface-filter=npb(tp|rs|sec|ch|ui)|socket-netns=/run/netns/npb-stk' || true
} )
if [[ -n $left ]]; then
  echo "bench: left behind:" >&2
  echo "$left" >&2
  errors+=("leftovers")
fi
if [[ ${#errors[@]} -gt 0 ]]; then
  echo "bench: errors: ${errors[*]}" >&2
  exit 1
fi
