# Shared helpers of the benchmark scripts (sourced, not executed).
# Everything a script creates is named with its own prefix and registered for
# cleanup: network namespaces (which take their veths with them) and processes.
# Traffic never leaves those namespaces.

NP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NP_AGENT=${NP_AGENT:-$NP_ROOT/bin/netprobe-agent}

_np_pids=()
_np_netns=()
_np_dirs=()

np_log() { printf '%s\n' "$*" >&2; }

# np_require NAME TOOL...: exits (1) naming the first TOOL that is not installed.
np_require() {
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { np_log "$name: $tool not installed (make deps)"; exit 1; }
  done
}

# np_kill PID: SIGTERM, then SIGKILL after ~5 s. Only processes we started.
np_kill() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

np_cleanup() {
  local pid ns d
  for pid in "${_np_pids[@]}"; do np_kill "$pid"; done
  _np_pids=()
  for ns in "${_np_netns[@]}"; do
    ip netns pids "$ns" 2>/dev/null | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  _np_netns=()
  for d in "${_np_dirs[@]}"; do rm -rf "$d"; done
  _np_dirs=()
}

np_track_pid() { _np_pids+=("$1"); }

# np_untrack_pid PID (after stopping it ourselves)
np_untrack_pid() {
  local keep=() p
  for p in "${_np_pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  _np_pids=("${keep[@]}")
}

# np_make_pair NS_A NS_B IF_A IF_B ADDR_A ADDR_B (addresses with prefix, e.g. 198.18.0.1/30)
# Creates both namespaces and a veth pair directly inside them (nothing in the
# caller's namespace), loopback up in both.
np_make_pair() {
  local a=$1 b=$2 ia=$3 ib=$4 xa=$5 xb=$6 ns
  for ns in "$a" "$b"; do
    if ip netns list | awk -v n="$ns" '$1 == n {f=1} END {exit !f}'; then
      ip netns del "$ns"  # leftover of an earlier run that was killed with SIGKILL
    fi
    ip netns add "$ns"
    _np_netns+=("$ns")
    ip -n "$ns" link set lo up
  done
  ip link add "$ia" netns "$a" type veth peer name "$ib" netns "$b"
  ip -n "$a" addr add "$xa" dev "$ia"
  ip -n "$b" addr add "$xb" dev "$ib"
  ip -n "$a" link set "$ia" up
  ip -n "$b" link set "$ib" up
}

# np_free_port NS: a TCP port nobody listens on inside NS.
np_free_port() {
  local ns=$1 p
  for p in $(seq 19100 19199); do
    if ! ip netns exec "$ns" ss -Hltn "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
  done
  return 1
}

# np_start_agent NS LOG ARGS... : starts the agent inside NS (as a child of this
# shell, so it can be waited for); its PID is left in NP_AGENT_PID.
NP_AGENT_PID=
np_start_agent() {
  local ns=$1 log=$2 state=${NETPROBE_STATE_DIR:-}
  shift 2
  # A state directory of its own unless the caller gave one: the history store (and the
  # models restored from it) of other runs in /var/lib/netprobe must neither change what
  # is measured nor be left behind by a bench.
  if [[ -z $state ]]; then
    state=$(mktemp -d /tmp/npb-state.XXXXXX)
    _np_dirs+=("$state")
  fi
  NETPROBE_STATE_DIR=$state ip netns exec "$ns" "$NP_AGENT" "$@" >"$log" 2>&1 &
  NP_AGENT_PID=$!
  np_track_pid "$NP_AGENT_PID"
}

# np_wait_agent NS PORT IFACE PID LOG: until /metrics shows IFACE attached (20 s).
np_wait_agent() {
  local ns=$1 port=$2 iface=$3 pid=$4 log=$5 i
  for i in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      np_log "agent exited early:"; cat "$log" >&2; return 1
    fi
    if ip netns exec "$ns" curl -sf --max-time 1 "http://127.0.0.1:$port/metrics" 2>/dev/null |
        grep -q "^netprobe_interface_attached{interface=\"$iface\""; then
      return 0
    fi
    sleep 0.1
  done
  np_log "agent not attached to $iface after 20 s:"; cat "$log" >&2
  return 1
}

# np_metric NS PORT REGEX: value of the first /metrics sample matching REGEX.
np_metric() {
  ip netns exec "$1" curl -sf --max-time 5 "http://127.0.0.1:$2/metrics" | grep -E "$3" | head -1 | awk '{print $NF}'
}

# np_median VALUES...: median (mean of the middle two for an even count).
np_median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR==0) exit 1; if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

# np_proc_ticks PID: the process's CPU time so far (utime + stime), in clock ticks.
np_proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# np_bpf_by_prog PID: "name run_cnt run_time_ns" of each BPF program the process holds
# open, one line each and each program once (a program's fd and each of its links' fds
# all show its prog_id: counting per fd counted the netfilter program once per hook
# link, the TC programs twice). Needs kernel.bpf_stats_enabled=1 for the run figures.
np_bpf_by_prog() {
  local pid=$1 id
  for id in $(awk '/^prog_id:/ {print $2}' /proc/"$pid"/fdinfo/* 2>/dev/null | sort -u); do
    bpftool -j prog show id "$id" 2>/dev/null | jq -r '"\(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"' || true
  done
}

# np_bpf_ns FILE: the run time in all (ns) of an np_bpf_by_prog listing.
np_bpf_ns() { awk '{t += $3} END {printf "%d", t}' "$1"; }

# np_bpf_breakdown BEFORE AFTER SECONDS UNITS UNIT_NAME: where the BPF time went between two
# np_bpf_by_prog listings, to stderr: each program's runs per UNIT (a packet, a request),
# ns per run and share of a core, the largest first.
np_bpf_breakdown() {
  awk -v w="$3" -v r="$4" -v u="$5" 'NR == FNR {c[$1] = $2; t[$1] = $3; next}
    {dc = $2 - c[$1]; dt = $3 - t[$1]; if (dc > 0)
       printf "  %-24s %6.2f runs/%s %7.0f ns/run %5.2f%% of a core\n", $1, dc / (r > 0 ? r : 1), u, dt / dc, dt / 1e9 / w * 100}' \
    "$1" "$2" | sort -k6 -rn >&2
}
