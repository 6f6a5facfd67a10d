#!/usr/bin/env bash
# The ClickHouse sink on this machine, against Debian's clickhouse-server (own instance:
# config, data and port inside namespace npb-chs-agt, removed afterwards).
#  1. np_sink_bench: records/s the sink delivers (synthetic records, as fast as it takes them).
#  2. The real agent with ~RATE flow records/s: np_flowgen sends one UDP packet per flow
#     (RATE new flows/s for SECS s) from npb-chs-gen; with --flow-idle-timeout=1s each
#     flow becomes one record about a second later. Agent CPU (utime+stime from
#     /proc/PID/stat over the load) without a sink, then with --clickhouse: the
#     difference is the sink's cost (records, spool, inserts).
#  3. Bytes per record on disk: system.parts of netprobe.flows after OPTIMIZE FINAL
#     (compressed; 18.16 has no column codecs and no LowCardinality by default).
#
# Usage: bench/clickhouse_sink.sh BUILD_BIN_DIR [RATE=10000] [SECS=30]
# Output: RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BIN=${1:?usage: clickhouse_sink.sh BUILD_BIN_DIR [RATE] [SECS]}
RATE=${2:-10000}
SECS=${3:-30}
NS_G=npb-chs-gen
NS_A=npb-chs-agt
IF_G=npbch0
IF_A=npbch1
np_require clickhouse_sink clickhouse-server curl
[[ -x $BIN/np_flowgen && -x $BIN/np_sink_bench ]] || { np_log "clickhouse_sink: build the bench targets"; exit 1; }

TMP=$(mktemp -d /tmp/npb-ch.XXXXXX)
trap 'np_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

np_make_pair "$NS_G" "$NS_A" "$IF_G" "$IF_A" 198.18.2.1/30 198.18.2.2/30
mkdir -p "$TMP/ch"
cat >"$TMP/ch/config.xml" <<EOF
<yandex>
  <logger><level>warning</level><log>$TMP/ch/server.log</log><errorlog>$TMP/ch/error.log</errorlog><console>0</console></logger>
  <http_port>8123</http_port>
  <tcp_port>9000</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$TMP/ch/data/</path>
  <tmp_path>$TMP/ch/tmp/</tmp_path>
  <user_files_path>$TMP/ch/user_files/</user_files_path>
  <format_schema_path>$TMP/ch/format_schemas/</format_schema_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
EOF
ip netns exec "$NS_A" clickhouse-server --config-file="$TMP/ch/config.xml" >"$TMP/ch/stdout" 2>&1 &
np_track_pid $!
ch() { ip netns exec "$NS_A" curl -sf --max-time 60 "http://127.0.0.1:8123/" --data-binary "$1"; }
for i in $(seq 100); do ch "SELECT 1" >/dev/null 2>&1 && break; sleep 0.3; done
ch "SELECT 1" >/dev/null || { np_log "clickhouse-server did not start"; cat "$TMP/ch/stdout" >&2; exit 1; }
np_log "clickhouse-server $(ch 'SELECT version()')"

# 1. The sink alone.
ip netns exec "$NS_A" "$BIN/np_sink_bench" http://127.0.0.1:8123 "$TMP/spool-bench" 1000000 50000
ch "DROP DATABASE IF EXISTS netprobe" >/dev/null

# 2. The agent under RATE records/s, without and with the sink.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
MAC=$(ip netns exec "$NS_A" cat "/sys/class/net/$IF_A/address")
load() {  # load LABEL AGENT_ARGS...: prints "cpu_percent records"
  local label=$1 port log pid t0 c0 t1 c1 recs
  shift
  port=$(np_free_port "$NS_A")
  log=$TMP/agent-$label.log
  np_start_agent "$NS_A" "$log" --interface-filter="$IF_A" --metrics-port="$port" --collect-interval=1s \
    --flow-idle-timeout=1s --flow-table-size=131072 --security=off "$@"
  pid=$NP_AGENT_PID
  np_wait_agent "$NS_A" "$port" "$IF_A" "$pid" "$log"
  sleep 2
  t0=$(date +%s.%N); c0=$(ticks "$pid")
  ip netns exec "$NS_G" "$BIN/np_flowgen" --dev "$IF_G" --dst-mac "$MAC" --src 198.18.2.1 --dst 198.18.2.2 \
    --flows $((RATE * SECS)) --pps "$RATE" >&2
  sleep 3  # the last flows end (idle 1 s) and go out
  t1=$(date +%s.%N); c1=$(ticks "$pid")
  recs=$(ip netns exec "$NS_A" curl -sf "http://127.0.0.1:$port/metrics" |
    awk '/^netprobe_flow_export_records_total/ {s += $NF} END {print s + 0}')
  if [[ $label == clickhouse ]]; then
    for i in $(seq 300); do
      left=$(np_metric "$NS_A" "$port" '^netprobe_flow_sink_spool_batches')
      q=$(np_metric "$NS_A" "$port" '^netprobe_flow_sink_queue_records')
      [[ ${left%.*} -eq 0 && ${q%.*} -eq 0 ]] && break
      sleep 0.2
    done
  fi
  np_kill "$pid"; np_untrack_pid "$pid"
  awk -v c="$((c1 - c0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" -v r="$recs" \
    'BEGIN {printf "%.2f %d\n", 100 * c / hz / (t1 - t0), r}'
}
read -r cpu_none _ < <(load none)
read -r cpu_ch recs < <(load clickhouse --clickhouse=http://127.0.0.1:8123,flush=1s --state-dir="$TMP/state")
rows=$(ch "SELECT count() FROM netprobe.flows")
ch "OPTIMIZE TABLE netprobe.flows FINAL" >/dev/null || true
disk=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'netprobe' AND table = 'flows' AND active")
raw=$(ch "SELECT sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'netprobe' AND table = 'flows' AND active")
per_s=$(awk -v r="$recs" -v s="$SECS" 'BEGIN {printf "%.0f", r / s}')
extra=$(awk -v a="$cpu_ch" -v b="$cpu_none" -v r="$per_s" 'BEGIN {printf "%.2f", (a - b) * 10000 / (r > 0 ? r : 1)}')
np_log "agent CPU: ${cpu_none}% of a core without a sink, ${cpu_ch}% with --clickhouse at ~$per_s records/s ($recs records, $rows rows in netprobe.flows)"
np_log "on disk: $disk bytes for $rows rows = $(awk -v d="$disk" -v r="$rows" 'BEGIN {printf "%.1f", d / r}') bytes/record ($raw uncompressed)"
echo -e "RESULT\tch_agent_cpu_none\t$cpu_none"
echo -e "RESULT\tch_agent_cpu_sink\t$cpu_ch"
echo -e "RESULT\tch_records_per_second\t$per_s"
echo -e "RESULT\tch_sink_cpu_per_10k\t$extra"
echo -e "RESULT\tch_rows\t$rows"
echo -e "RESULT\tch_records\t$recs"
echo -e "RESULT\tch_disk_bytes_per_record\t$(awk -v d="$disk" -v r="$rows" 'BEGIN {printf "%.1f", d / r}')"
echo -e "RESULT\tch_raw_bytes_per_record\t$(awk -v d="$raw" -v r="$rows" 'BEGIN {printf "%.1f", d / r}')"
