#!/usr/bin/env bash
# The L7 capture under load, against Debian's nginx and wrk (own instances, inside
# namespaces npb-l7-srv (nginx) and npb-l7-cli (wrk and the agent), removed afterwards).
#  1. np_l7_syscall_bench: ns the capture adds per syscall (non-socket fd, HTTP socket,
#     binary socket) and the ring's record rate.
#  2. nginx (1 worker, small responses) + wrk -t1 -c64 for SECS s, ROUNDS interleaved
#     pairs: without the agent, then with --l7=on; the median ratio of requests/s, and
#     wrk's p99 latency in both. Requests the agent counted vs wrk's (server side). The
#     same over HTTPS (nginx's TLS port, a self-signed certificate made here; the agent
#     sees the plaintext at OpenSSL's SSL_read/SSL_write in both processes).
#  3. Agent RSS with 10k concurrent keep-alive connections that each made a request.
# Usage: bench/l7_http.sh BUILD_BIN_DIR [ROUNDS=3] [SECS=8]
# Output: RESULT<TAB>name<TAB>value lines for bench/run.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BIN=${1:?usage: l7_http.sh BUILD_BIN_DIR [ROUNDS] [SECS]}
ROUNDS=${2:-3}
SECS=${3:-8}
NS_S=npb-l7-srv
NS_C=npb-l7-cli
np_require l7_http nginx wrk curl bpftool jq
[[ -x $BIN/np_l7_syscall_bench && -x $BIN/np_l7_parse_bench && -x $BIN/np_hook_ref ]] || { np_log "l7_http: build the bench targets"; exit 1; }

TMP=$(mktemp -d /tmp/npb-l7.XXXXXX)
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
trap 'np_cleanup; sysctl -qw kernel.bpf_stats_enabled="$stats_was"; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

# 1. Per-syscall cost, in-process (no agent); the parsers' cost per Kafka/AMQP message.
"$BIN/np_l7_syscall_bench"
"$BIN/np_l7_parse_bench"

np_make_pair "$NS_S" "$NS_C" npbl70 npbl71 198.18.7.1/30 198.18.7.2/30
mkdir -p "$TMP/ngx"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=npb-l7 \
  -keyout "$TMP/ngx/key.pem" -out "$TMP/ngx/cert.pem" >/dev/null 2>&1
cat >"$TMP/ngx/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
worker_rlimit_nofile 30000;
pid $TMP/ngx/nginx.pid;
error_log $TMP/ngx/error.log;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $TMP/ngx/body;
  proxy_temp_path $TMP/ngx/proxy;
  fastcgi_temp_path $TMP/ngx/fcgi;
  uwsgi_temp_path $TMP/ngx/uwsgi;
  scgi_temp_path $TMP/ngx/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
    listen 198.18.7.1:8080 backlog=4096;
    location / { return 200 "ok\n"; }
  }
  server {
    listen 198.18.7.1:8443 ssl backlog=4096;
    ssl_certificate $TMP/ngx/cert.pem;
    ssl_certificate_key $TMP/ngx/key.pem;
    location / { return 200 "ok\n"; }
  }
}
CONF
ip netns exec "$NS_S" nginx -c "$TMP/ngx/nginx.conf" >"$TMP/ngx/stdout" 2>&1 &
np_track_pid $!
for i in $(seq 50); do ip netns exec "$NS_C" curl -sf -o /dev/null http://198.18.7.1:8080/ && break; sleep 0.1; done

wrk_run() {  # [URL] - prints "requests_per_second p99_ms requests"
  local out
  out=$(ip netns exec "$NS_C" wrk -t1 -c64 -d"${SECS}s" --latency "${1:-http://198.18.7.1:8080/}")
  echo "$out" >&2
  awk '/Requests\/sec/ {rps = $2}
       $1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; p99 = v}
       /requests in/ {n = $1}
       END {printf "%s %s %s\n", rps, p99, n}' <<<"$out"
}
# The agent's own CPU: its process time during each run with it; the run time of its BPF
# programs in one more run (round 1) with kernel.bpf_stats_enabled on, which times every
# program run and so costs throughput itself: never on during the runs the ratio uses.
hz=$(getconf CLK_TCK)
ratios=() p99_off=() p99_on=() counted_ok=1 proc_us=() bpf_line=""
tls_ratios=() tls_p99_off=() tls_p99_on=() tls_counted_ok=1
TLS_URL=https://198.18.7.1:8443/
served() {  # PORT SERVICE: the agent's server-side request count for SERVICE
  ip netns exec "$NS_C" curl -sf "http://127.0.0.1:$1/metrics" |
    awk -v svc="service=\"$2\"" '/^netprobe_l7_requests_total\{/ && /side="server"/ && index($0, svc) {s += $NF} END {print s + 0}'
}
for r in $(seq "$ROUNDS"); do
  read -r rps0 lat0 _ < <(wrk_run)
  read -r trps0 tlat0 _ < <(wrk_run "$TLS_URL")
  port=$(np_free_port "$NS_C")
  np_start_agent "$NS_C" "$TMP/agent-$r.log" --interface-filter=npbl71 --metrics-port="$port" --collect-interval=1s --l7=on
  pid=$NP_AGENT_PID
  np_wait_agent "$NS_C" "$port" npbl71 "$pid" "$TMP/agent-$r.log"
  before=$(served "$port" 198.18.7.1:8080)
  t0=$(np_proc_ticks "$pid")
  read -r rps1 lat1 n1 < <(wrk_run)
  t1=$(np_proc_ticks "$pid")
  p_us=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$n1" 'BEGIN {printf "%.2f", t / hz / n * 1e6}')
  proc_us+=("$p_us")
  sleep 2.5
  after=$(served "$port" 198.18.7.1:8080)
  lost=$(ip netns exec "$NS_C" curl -sf "http://127.0.0.1:$port/metrics" |
    awk '/^netprobe_l7_capture_lost_total/ {s += $NF} END {print s + 0}')
  if [[ $r == 1 ]]; then
    sysctl -qw kernel.bpf_stats_enabled=1
    np_bpf_by_prog "$pid" >"$TMP/progs0"
    s0=$(date +%s.%N)
    read -r rps2 _ n2 < <(wrk_run)
    s1=$(date +%s.%N)
    np_bpf_by_prog "$pid" >"$TMP/progs1"
    sysctl -qw kernel.bpf_stats_enabled="$stats_was"
    wall=$(awk -v a="$s0" -v b="$s1" 'BEGIN {print b - a}')
    b0=$(np_bpf_ns "$TMP/progs0"); b1=$(np_bpf_ns "$TMP/progs1")
    np_log "the agent's BPF programs during wrk's $n2 requests ($rps2 req/s with bpf_stats on):"
    np_bpf_breakdown "$TMP/progs0" "$TMP/progs1" "$wall" "$n2" request
    bpf_line=$(awk -v b="$((b1 - b0))" -v n="$n2" 'BEGIN {printf "%.2f", b / 1e3 / n}')
  fi
  # HTTPS with the agent: its TLS probes are attached at its start (nginx runs; wrk maps
  # the same libssl, whose probes cover every process that maps it).
  tbefore=$(served "$port" 198.18.7.1:8443)
  read -r trps1 tlat1 tn1 < <(wrk_run "$TLS_URL")
  sleep 2.5
  tafter=$(served "$port" 198.18.7.1:8443)
  tcounted=$((tafter - tbefore))
  np_log "round $r HTTPS: without $trps0 req/s (p99 $tlat0 ms), with --l7=on $trps1 req/s (p99 $tlat1 ms); wrk $tn1 requests, agent counted $tcounted (server side)"
  (( tcounted >= tn1 && tcounted <= tn1 + 64 )) || tls_counted_ok=0
  tls_ratios+=("$(awk -v a="$trps1" -v b="$trps0" 'BEGIN {printf "%.3f", a / b}')")
  tls_p99_off+=("$tlat0"); tls_p99_on+=("$tlat1")
  np_kill "$pid"; np_untrack_pid "$pid"
  counted=$((after - before))
  np_log "round $r: without $rps0 req/s (p99 $lat0 ms), with --l7=on $rps1 req/s (p99 $lat1 ms); wrk $n1 requests, agent counted $counted (server side), lost $lost; agent process $p_us us per request"
  (( counted >= n1 && counted <= n1 + 64 )) || counted_ok=0
  ratios+=("$(awk -v a="$rps1" -v b="$rps0" 'BEGIN {printf "%.3f", a / b}')")
  p99_off+=("$lat0"); p99_on+=("$lat1")
done
# Baselines: empty programs at the capture's hook, no agent (np_hook_ref: the raw sys_exit
# tracepoint, which makes every syscall of the machine take the traced slow path and run a
# program; and the socket tracepoints sock_send_length/sock_recv_length, Linux 6.3+, which
# fire for socket I/O only): the floor of any capture at that hook on this machine. And the
# agent with --l7=off (its other features, in their defaults): the share of the ratio above
# that is not the L7 capture's. At least 5 rounds of the four (single runs on this
# machine move by 20%), the order rotating, each run after a 2 s pause.
ref_modes=(none sys_exit sock l7off)
declare -A ref_runs=()
for r in $(seq "$(( ROUNDS > 5 ? ROUNDS : 5 ))"); do
  for i in 0 1 2 3; do
    mode=${ref_modes[$(( (i + r) % 4 ))]}
    ref=""
    case $mode in
      sys_exit|sock)
        coproc REF { exec "$BIN/np_hook_ref" "$mode"; }
        ref=$REF_PID
        np_track_pid "$ref"
        if ! read -r -t 10 line <&"${REF[0]}" || [[ $line != attached ]]; then
          np_log "np_hook_ref $mode did not attach (skipped)"
          np_kill "$ref"; np_untrack_pid "$ref"
          continue
        fi ;;
      l7off)
        port=$(np_free_port "$NS_C")
        np_start_agent "$NS_C" "$TMP/agent-l7off-$r.log" --interface-filter=npbl71 --metrics-port="$port" --collect-interval=1s --l7=off
        ref=$NP_AGENT_PID
        np_wait_agent "$NS_C" "$port" npbl71 "$ref" "$TMP/agent-l7off-$r.log" ;;
    esac
    sleep 2
    read -r rps _ < <(wrk_run)
    ref_runs[$mode]+="$rps "
    if [[ -n $ref ]]; then np_kill "$ref"; np_untrack_pid "$ref"; fi
  done
done
for mode in sys_exit sock l7off; do
  read -r -a a <<<"${ref_runs[none]:-}"
  read -r -a b <<<"${ref_runs[$mode]:-}"
  (( ${#a[@]} && ${#b[@]} )) || continue
  np_log "baseline $mode: without ${a[*]} req/s, with ${b[*]} req/s"
  echo -e "RESULT\tl7_hook_ref_${mode}_ratio\t$(awk -v a="$(np_median "${a[@]}")" -v b="$(np_median "${b[@]}")" 'BEGIN {printf "%.3f", b / a}')"
done

echo -e "RESULT\tl7_wrk_ratio\t$(np_median "${ratios[@]}")"
echo -e "RESULT\tl7_wrk_p99_off_ms\t$(np_median "${p99_off[@]}")"
echo -e "RESULT\tl7_wrk_p99_on_ms\t$(np_median "${p99_on[@]}")"
echo -e "RESULT\tl7_wrk_counted_exact\t$counted_ok"
echo -e "RESULT\tl7_agent_us\t$(np_median "${proc_us[@]}")\t$bpf_line"
echo -e "RESULT\tl7_wrk_tls_ratio\t$(np_median "${tls_ratios[@]}")"
echo -e "RESULT\tl7_wrk_tls_p99_off_ms\t$(np_median "${tls_p99_off[@]}")"
echo -e "RESULT\tl7_wrk_tls_p99_on_ms\t$(np_median "${tls_p99_on[@]}")"
echo -e "RESULT\tl7_wrk_tls_counted_exact\t$tls_counted_ok"

# 3. RSS with 10k keep-alive connections, each with one answered request.
port=$(np_free_port "$NS_C")
np_start_agent "$NS_C" "$TMP/agent-rss.log" --interface-filter=npbl71 --metrics-port="$port" --collect-interval=1s --l7=on
pid=$NP_AGENT_PID
np_wait_agent "$NS_C" "$port" npbl71 "$pid" "$TMP/agent-rss.log"
sleep 2
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
ip netns exec "$NS_C" /usr/bin/python3 - <<'PY' &
import resource, selectors, socket, time
resource.setrlimit(resource.RLIMIT_NOFILE, (15000, 15000))
socks = []
for i in range(10000):
    s = socket.create_connection(("198.18.7.1", 8080))
    s.sendall(b"GET /k/%d HTTP/1.1\r\nHost: b\r\n\r\n" % i)
    socks.append(s)
for s in socks:
    d = b""
    while not d.endswith(b"ok\n"):
        d += s.recv(4096)
print("10000 connections answered", flush=True)
time.sleep(20)
PY
holder=$!
np_track_pid "$holder"
sleep 15
conns=$(np_metric "$NS_C" "$port" '^netprobe_l7_connections ')
rss1=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
np_log "agent RSS: $((rss0 / 1024)) MiB before, $((rss1 / 1024)) MiB with ${conns:-?} L7 connections tracked"
echo -e "RESULT\tl7_rss_10k_mib\t$(awk -v a="$rss1" 'BEGIN {printf "%.1f", a / 1024}')"
echo -e "RESULT\tl7_rss_10k_delta_mib\t$(awk -v a="$rss1" -v b="$rss0" 'BEGIN {printf "%.1f", (a - b) / 1024}')"
echo -e "RESULT\tl7_rss_connections\t${conns:-0}"
np_kill "$holder"; np_untrack_pid "$holder"
np_kill "$pid"; np_untrack_pid "$pid"
