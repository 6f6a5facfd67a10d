#!/usr/bin/env bash
# Resident memory of the real agent tracking 100k flows. Namespaces npb-rss-gen /
# npb-rss-agt, veth npbrs0 (198.18.1.1/30) <-> npbrs1 (198.18.1.2/30). The agent
# runs inside npb-rss-agt on npbrs1 (--flow-table-size=131072, --max-flows=FLOWS,
# --collect-interval=1s); np_flowgen sends one UDP packet per flow, FLOWS distinct
# source/destination port pairs, paced (PPS) from npb-rss-gen: the agent sees
# them at XDP + TC ingress; the kernel answers with rate-limited ICMP port
# unreachables (a handful of egress flows). Once netprobe_flows_tracked reaches
# FLOWS it scrapes /metrics twice and reads /proc/PID/status (VmRSS = steady
# state), then fetches /api/v1/flows?limit=10000 once and reads VmRSS/VmHWM again.
# Kernel map memory (not in RSS) is summed from the agent's BPF map fds.
#
# Usage: bench/rss_agent.sh FLOWGEN_BINARY [FLOWS=100000] [PPS=50000]
# Output: RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

FLOWGEN=${1:?usage: rss_agent.sh FLOWGEN_BINARY [FLOWS] [PPS]}
FLOWS=${2:-100000}
PPS=${3:-50000}
NS_G=npb-rss-gen
NS_A=npb-rss-agt
IF_G=npbrs0
IF_A=npbrs1

[[ -x $FLOWGEN ]] || { np_log "rss_agent: $FLOWGEN not built"; exit 1; }
[[ -x $NP_AGENT ]] || { np_log "rss_agent: $NP_AGENT not built"; exit 1; }

TMP=$(mktemp -d /tmp/npb-rss.XXXXXX)
trap 'np_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

np_make_pair "$NS_G" "$NS_A" "$IF_G" "$IF_A" 198.18.1.1/30 198.18.1.2/30
PORT=$(np_free_port "$NS_A")
LOG=$TMP/agent.log
# A state directory of its own: the history store (and the models restored from it) of
# earlier runs or other agents in /var/lib/netprobe would change what is measured.
NETPROBE_STATE_DIR=$TMP/state np_start_agent "$NS_A" "$LOG" --interface-filter="$IF_A" --metrics-port="$PORT" --collect-interval=1s \
  --flow-table-size=131072 --max-flows="$FLOWS"
PID=$NP_AGENT_PID
np_wait_agent "$NS_A" "$PORT" "$IF_A" "$PID" "$LOG"

status_kb() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$PID/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
rss_idle=$(status_kb VmRSS)
np_log "rss_agent: idle VmHWM $(status_kb VmHWM) kB"

MAC=$(ip netns exec "$NS_A" cat "/sys/class/net/$IF_A/address")
t0=$(date +%s.%N)
tracked=0
max_collect=0  # longest collection seen while the flows arrive (drain of up to 50k new flows)
for pass in 1 2 3; do
  # A later pass re-sends every flow: flows already tracked just get one more packet.
  ip netns exec "$NS_G" "$FLOWGEN" --dev "$IF_G" --dst-mac "$MAC" --src 198.18.1.1 --dst 198.18.1.2 \
    --flows "$FLOWS" --pps "$PPS" >&2
  for i in $(seq 50); do
    tracked=$(np_metric "$NS_A" "$PORT" '^netprobe_flows_tracked ' || echo 0)
    c=$(np_metric "$NS_A" "$PORT" '^netprobe_collect_duration_seconds ' || echo 0)
    max_collect=$(awk -v a="$max_collect" -v b="${c:-0}" 'BEGIN {print (b + 0 > a + 0) ? b : a}')
    [[ ${tracked%.*} -ge $FLOWS ]] && break
    sleep 0.2
  done
  [[ ${tracked%.*} -ge $FLOWS ]] && break
  np_log "rss_agent: pass $pass: $tracked flows tracked, sending again"
done
t1=$(date +%s.%N)
kill -0 "$PID" || { np_log "agent died:"; cat "$LOG" >&2; exit 1; }

sleep 2  # two more collections with every flow tracked
for i in 1 2; do ip netns exec "$NS_A" curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null; done
tracked=$(np_metric "$NS_A" "$PORT" '^netprobe_flows_tracked ')
map_err=$(np_metric "$NS_A" "$PORT" '^netprobe_map_update_errors_total\{map="flow_stats"\}')
collect_s=$(np_metric "$NS_A" "$PORT" '^netprobe_collect_duration_seconds ')
rss_flows=$(status_kb VmRSS)
hwm_flows=$(status_kb VmHWM)

api_bytes=$(ip netns exec "$NS_A" curl -sf "http://127.0.0.1:$PORT/api/v1/flows?limit=10000" | wc -c)
sleep 1.5
rss_api=$(status_kb VmRSS)
hwm_api=$(status_kb VmHWM)

# BPF map memory charged to the agent's maps (kernel memory, not part of RSS).
map_kb=0
for f in /proc/"$PID"/fdinfo/*; do
  m=$(awk '/^map_type:/ {t=1} /^memlock:/ && t {print $2}' "$f" 2>/dev/null || true)
  [[ -n $m ]] && map_kb=$(( map_kb + m / 1024 ))
done

echo "agent with $tracked flows tracked (generated $FLOWS flows in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s at $PPS/s; flow_stats insert errors: $map_err)"
echo "  longest collection while flows arrived: ${max_collect}s (last: ${collect_s}s)"
echo "  VmRSS idle (attached, no flows):       $(mib "$rss_idle") MiB"
echo "  VmRSS with flows (after 2 scrapes):     $(mib "$rss_flows") MiB   VmHWM $(mib "$hwm_flows") MiB"
echo "  after /api/v1/flows?limit=10000 (${api_bytes} B): VmRSS $(mib "$rss_api") MiB   VmHWM $(mib "$hwm_api") MiB"
echo "  BPF maps (kernel memory, memlock):      $(mib "$map_kb") MiB"
printf 'RESULT\trss_agent_flows\t%s\n' "$tracked"
printf 'RESULT\trss_agent_idle_mib\t%s\n' "$(mib "$rss_idle")"
printf 'RESULT\trss_agent_rss_mib\t%s\n' "$(mib "$rss_flows")"
printf 'RESULT\trss_agent_hwm_mib\t%s\n' "$(mib "$hwm_flows")"
printf 'RESULT\trss_agent_rss_after_api_mib\t%s\n' "$(mib "$rss_api")"
printf 'RESULT\trss_agent_hwm_after_api_mib\t%s\n' "$(mib "$hwm_api")"
printf 'RESULT\trss_agent_map_mib\t%s\n' "$(mib "$map_kb")"
printf 'RESULT\trss_agent_flow_insert_errors\t%s\n' "$map_err"
printf 'RESULT\trss_agent_max_collect_seconds\t%s\n' "$max_collect"
