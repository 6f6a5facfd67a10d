#!/usr/bin/env bash
# Series churn (issue 10): distinct series of the traffic-derived top-K family that a
# real Prometheus stores while short-lived TCP connections from random source ports
# come and go, against the per-scrape budget (K series + "other").
#
# Namespaces npb-churn-cli / npb-churn-srv, veth npbch0 (198.18.5.1/30) <->
# npbch1 (198.18.5.2/30). In npb-churn-srv: the agent on npbch1 (metrics on
# 127.0.0.1, default collect interval; K = NP_CHURN_TOP, default 20, the agent's
# default), a Prometheus of its own (/usr/bin/prometheus, temp TSDB, scrape_interval
# 5s, over loopback, so the scrapes are not traffic of npbch1) and
# bench/churn_load.py servers on four ports. From npb-churn-cli, RATE connections/s
# for SECONDS, each from a random source port (32768-60999) to a random server port,
# with a random 1-64 KiB answer. Then, over the traffic window, Prometheus's HTTP API
# gives the distinct series of the family (/api/v1/series with start/end; cross-check
# count(count_over_time(...))) and the most series one scrape carried.
# The family is netprobe_top_talker_bytes_rate, or netprobe_top_flow_bytes_rate for
# an agent from before issue 10 (NP_AGENT=/path/to/old/netprobe-agent measures it).
# Everything is removed on exit, also on failure or Ctrl-C.
#
# Usage: bench/series_churn.sh [SECONDS=600] [RATE=4]
# Output: a summary, and RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SECS=${1:-600}
RATE=${2:-4}
TOP=${NP_CHURN_TOP:-20}
NS_C=npb-churn-cli
NS_S=npb-churn-srv
IF_C=npbch0
IF_S=npbch1
IP_C=198.18.5.1
IP_S=198.18.5.2
SERVER_PORTS=8080,8081,8443,9000
SCRAPE=5
PROM=/usr/bin/prometheus
PY=/usr/bin/python3
LOAD=$NP_ROOT/bench/churn_load.py

np_require churn jq curl "$PROM" "$PY"
[[ -x $NP_AGENT ]] || { np_log "churn: $NP_AGENT not built"; exit 1; }

TMP=$(mktemp -d /tmp/npb-churn.XXXXXX)
trap 'np_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

np_make_pair "$NS_C" "$NS_S" "$IF_C" "$IF_S" "$IP_C/30" "$IP_S/30"

# The K flag: --top-talkers, or --top-flows for an agent from before issue 10.
help=$("$NP_AGENT" --help 2>&1 || true)  # (not piped into grep -q: SIGPIPE under pipefail)
if [[ $help == *"--top-talkers "* ]]; then top_flag=--top-talkers; else top_flag=--top-flows; fi
PORT=$(np_free_port "$NS_S")
np_start_agent "$NS_S" "$TMP/agent.log" --interface-filter="$IF_S" --metrics-address=127.0.0.1 \
  --metrics-port="$PORT" "$top_flag=$TOP"
AGENT_PID=$NP_AGENT_PID
np_wait_agent "$NS_S" "$PORT" "$IF_S" "$AGENT_PID" "$TMP/agent.log"
metrics=$(ip netns exec "$NS_S" curl -sf "http://127.0.0.1:$PORT/metrics" || true)
if [[ $metrics == *"# TYPE netprobe_top_talker_bytes_rate "* ]]; then
  FAMILY=netprobe_top_talker
else
  FAMILY=netprobe_top_flow
fi
BUDGET=$((TOP + 1))

# Prometheus, our own instance: own config, temp TSDB, loopback of npb-churn-srv.
PPORT=19290
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE}s
  scrape_timeout: ${SCRAPE}s
scrape_configs:
  - job_name: netprobe
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
ip netns exec "$NS_S" "$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
  --web.listen-address="127.0.0.1:$PPORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
np_track_pid "$PROM_PID"
api() {  # api PATH [curl -G data args...]
  local path=$1
  shift
  ip netns exec "$NS_S" curl -sfG --max-time 30 "http://127.0.0.1:$PPORT$path" "$@"
}
query() {  # query EXPR TIME: the first result's value (empty when none)
  api /api/v1/query --data-urlencode "query=$1" --data-urlencode "time=$2" | jq -r '.data.result[0].value[1] // empty'
}
up=
for i in $(seq 120); do  # 60 s: ready, and the agent scraped once
  kill -0 "$PROM_PID" 2>/dev/null || { np_log "churn: prometheus exited:"; cat "$TMP/prometheus.log" >&2; exit 1; }
  up=$(query 'up{job="netprobe"}' "$(date +%s)" 2>/dev/null || true)
  [[ $up == 1 ]] && break
  sleep 0.5
done
[[ $up == 1 ]] || { np_log "churn: prometheus does not scrape the agent:"; cat "$TMP/prometheus.log" >&2; exit 1; }

ip netns exec "$NS_S" "$PY" "$LOAD" server "$IP_S" "$SERVER_PORTS" >"$TMP/server.log" 2>&1 &
np_track_pid $!
for i in $(seq 50); do
  [[ $(ip netns exec "$NS_S" ss -Hltn "src $IP_S" | wc -l) -ge 4 ]] && break
  sleep 0.1
done

np_log "churn: ${FAMILY}_* ($top_flag=$TOP), $RATE connections/s for $SECS s to $IP_S:{$SERVER_PORTS}, Prometheus scraping every ${SCRAPE}s"
T0=$(date +%s)
load=$(ip netns exec "$NS_C" "$PY" "$LOAD" client "$IP_S" "$SERVER_PORTS" "$RATE" "$SECS")
sleep $((2 * SCRAPE + 1))  # the last collection of the traffic is scraped
T1=$(date +%s)
kill -0 "$AGENT_PID" || { np_log "churn: agent died:"; cat "$TMP/agent.log" >&2; exit 1; }
W=$((T1 - T0))

distinct_of() {  # distinct series of a metric with samples in [T0, T1]
  api /api/v1/series --data-urlencode "match[]=$1" --data-urlencode "start=$T0" --data-urlencode "end=$T1" |
    jq '.data | length'
}
distinct=$(distinct_of "${FAMILY}_bytes_rate")
distinct_pkts=$(distinct_of "${FAMILY}_packets_rate")
cross=$(query "count(count_over_time(${FAMILY}_bytes_rate[${W}s]))" "$T1")
max_scrape=$(query "max_over_time(count(${FAMILY}_bytes_rate)[${W}s:${SCRAPE}s])" "$T1")
scrapes=$(query "count_over_time(up{job=\"netprobe\"}[${W}s])" "$T1")
conns=$(jq -r .connections <<<"$load")
failed=$(jq -r .failed <<<"$load")
ratio=$(awk -v a="$distinct" -v b="$BUDGET" 'BEGIN {printf "%.2f", a / b}')
if [[ $distinct -le $((2 * BUDGET)) ]]; then verdict=PASS; else verdict=MISS; fi

echo "series churn: ${FAMILY}_bytes_rate, $top_flag=$TOP (budget per scrape: $BUDGET = $TOP + other)"
echo "  traffic: $conns short-lived TCP connections ($failed failed) from random source ports to $IP_S:{$SERVER_PORTS} in $SECS s"
echo "  Prometheus: $scrapes scrapes (every ${SCRAPE}s) over a ${W} s window"
echo "  distinct series in the window: bytes_rate $distinct (count_over_time: $cross), packets_rate $distinct_pkts"
echo "  most series in one scrape: $max_scrape"
echo "  the series (labels; at most 30):"
api /api/v1/series --data-urlencode "match[]=${FAMILY}_bytes_rate" --data-urlencode "start=$T0" \
  --data-urlencode "end=$T1" | jq -r '.data[] | del(.__name__, .job, .instance) | to_entries |
    map("\(.key)=\(.value)") | join(" ")' | sort | head -30 | sed 's/^/    /'
echo "  distinct / budget = ${ratio}x (target <= 2x): $verdict"
printf 'RESULT\tseries_churn_family\t%s\n' "$FAMILY"
printf 'RESULT\tseries_churn_seconds\t%s\n' "$SECS"
printf 'RESULT\tseries_churn_connections\t%s\n' "$conns"
printf 'RESULT\tseries_churn_top\t%s\n' "$TOP"
printf 'RESULT\tseries_churn_budget\t%s\n' "$BUDGET"
printf 'RESULT\tseries_churn_distinct\t%s\n' "$distinct"
printf 'RESULT\tseries_churn_distinct_packets\t%s\n' "$distinct_pkts"
printf 'RESULT\tseries_churn_max_per_scrape\t%s\n' "$max_scrape"
printf 'RESULT\tseries_churn_scrapes\t%s\n' "$scrapes"
printf 'RESULT\tseries_churn_ratio\t%s\n' "$ratio"
printf 'RESULT\tseries_churn_verdict\t%s\n' "$verdict"
