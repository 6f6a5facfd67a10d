"""Socket layer, TCP health, drop reasons and netfilter hooks (issue #4), end to end.

The tracepoints are global, so every test points the agent's stack monitor at the
namespace its traffic runs in (--socket-netns=/run/netns/NAME) and runs the agent
itself in another namespace (its own scrapes are TCP connections too). Counters
are compared as deltas around the traffic, with exact expected values.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import unittest

from e2e_inspect import nstat_counters
from netprobe_e2e import PYTHON, E2ETestCase, log, netns_file, require_tools, run, wait_for

INTERVAL = "200ms"
STACK_FAMILIES = [
    "netprobe_tcp_connections_opened_total", "netprobe_tcp_connections_closed_total",
    "netprobe_tcp_connections_failed_total", "netprobe_tcp_connections_active", "netprobe_tcp_retransmits_total",
    "netprobe_tcp_resets_total", "netprobe_packet_drops_total",
]


# Runs inside the traffic namespace: N TCP connections to a local server (each sends
# `size` bytes and reads a reply), M connects to a closed port, K UDP datagrams to a
# closed port. Prints {"pid": ..., "port": ...}.
TRAFFIC = r"""
import json, os, socket, sys, threading
n, m, k, size = (int(a) for a in sys.argv[1:5])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
def serve():
    for _ in range(n):
        c, _ = srv.accept()
        got = 0
        while True:
            d = c.recv(65536)
            if not d: break
            got += len(d)
        c.sendall(b"r" * 100); c.close()
t = threading.Thread(target=serve); t.start()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"x" * size); s.shutdown(socket.SHUT_WR)
    while s.recv(65536): pass
    s.close()
t.join(); srv.close()
closed = socket.socket(); closed.bind(("127.0.0.1", 0)); cport = closed.getsockname()[1]; closed.close()
for _ in range(m):
    try: socket.create_connection(("127.0.0.1", cport), timeout=5)
    except ConnectionRefusedError: pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(k): u.sendto(b"z", ("127.0.0.1", cport))
print(json.dumps({"pid": os.getpid(), "port": port}))
"""


class StackTestCase(E2ETestCase):
    def agent_for(self, traffic_ns: str | None, *extra: str, agent_ns: str | None = None,
                  interval: str = INTERVAL):
        """Agent in its own namespace (default: a new empty one), counting traffic_ns."""
        if agent_ns is None:
            agent_ns = self.make_netns()
        args = [f"--collect-interval={interval}", "--xdp-mode=off"]
        args.append(f"--socket-netns={netns_file(traffic_ns)}" if traffic_ns else "--socket-netns=own")
        return self.start_agent(*args, *extra, netns=agent_ns)

    @staticmethod
    def value(m, name, **labels) -> float:
        return m.get_or(name, 0.0, **labels)

    def settle(self, agent, key=None, settle: int = 3, timeout: float = 30):
        """Metrics once key(metrics) (default: the stack families) stayed the same over
        `settle` collections. Netfilter counters of the agent's own namespace include
        its scrapes, so they are compared through a key that leaves those out."""
        return agent.wait_stable(STACK_FAMILIES, settle=settle, timeout=timeout, key=key)


class ConnectionLifecycle(StackTestCase):
    def test_n_connections_counted_exactly(self):
        ns = self.make_netns()
        agent = self.agent_for(ns)
        m0 = self.settle(agent)
        for f in ("connections", "retransmits", "resets", "tcp_probe", "drops", "netfilter"):
            self.assertEqual(m0.get("netprobe_stack_feature_enabled", feature=f), 1.0, f)

        n, failed, udp, size = 40, 7, 11, 20000
        out = run([PYTHON, "-c", TRAFFIC, str(n), str(failed), str(udp), str(size)], netns=ns, timeout=60)
        info = json.loads(out.stdout)
        m1 = self.settle(agent)

        def d(name, **labels):
            return self.value(m1, name, **labels) - self.value(m0, name, **labels)

        got = {
            "opened_active": d("netprobe_tcp_connections_opened_total", direction="active"),
            "opened_passive": d("netprobe_tcp_connections_opened_total", direction="passive"),
            "closed": d("netprobe_tcp_connections_closed_total"),
            "failed": d("netprobe_tcp_connections_failed_total"),
            "resets_sent": d("netprobe_tcp_resets_total", direction="sent"),
            "resets_received": d("netprobe_tcp_resets_total", direction="received"),
            "no_socket_drops": d("netprobe_packet_drops_total", reason="NO_SOCKET"),
        }
        missed = d("netprobe_bpf_missed_events_total", program="netprobe_sk_state")
        log(f"connection deltas: {got}; state-change events missed by the kernel's recursion guard: {missed}")
        # Both ends of each connection live in the namespace: N active + N passive opens,
        # 2N closes; each refused connect is one failure, one RST sent and received,
        # and one SYN dropped for NO_SOCKET; each UDP datagram one NO_SOCKET drop.
        want = {
            "opened_active": n, "opened_passive": n, "closed": 2 * n, "failed": failed,
            "resets_sent": failed, "resets_received": failed, "no_socket_drops": failed + udp,
        }
        if missed == 0:
            self.assertEqual(got, want)
            self.assertEqual(m1.get("netprobe_tcp_connections_active"), 0.0)
        else:
            # A state change in softirq while the program ran on the same CPU is not
            # delivered (counted in netprobe_bpf_missed_events_total): lifecycle
            # counters may be short by at most that many.
            for k_ in ("opened_active", "opened_passive", "closed", "failed"):
                self.assertLessEqual(want[k_] - got[k_], missed, k_)
                self.assertLessEqual(got[k_], want[k_], k_)
        self.assertEqual(m1.get("netprobe_ringbuf_reserve_failures_total", ring="conn_events"), 0.0)

        # The JSON API: 2N closed records on the server port, with the right owners.
        doc = agent.get_json(f"/api/v1/connections?state=closed&port={info['port']}&limit=1000")
        self.assertTrue(doc["enabled"])
        conns = doc["connections"]
        self.assertLessEqual(2 * n - len(conns), missed, json.dumps(conns[:3]))
        active = [c for c in conns if c["direction"] == "active"]
        passive = [c for c in conns if c["direction"] == "passive"]
        if missed == 0:
            self.assertEqual((len(active), len(passive)), (n, n))
        for c in active:
            self.assertEqual((c["pid"], c["comm"], c["dst_port"], c["state"], c["open"], c["failed"]),
                             (info["pid"], "python3", info["port"], "CLOSE", False, False))
            self.assertEqual(c["src_ip"], "127.0.0.1")
            self.assertGreaterEqual(c["bytes_sent"], size)  # bytes_acked counts the FIN too
            self.assertLessEqual(c["bytes_sent"], size + 2)
            self.assertIsNotNone(c["established"])
            self.assertIsNotNone(c["end"])
        for c in passive:
            # established in softirq: the owner is not known there
            self.assertIsNone(c["pid"])
            self.assertEqual(c["src_port"], info["port"])
            self.assertGreaterEqual(c["bytes_received"], size)
            self.assertLessEqual(c["bytes_received"], size + 1)
        failed_docs = agent.get_json("/api/v1/connections?state=closed&limit=1000")["connections"]
        n_failed = sum(1 for c in failed_docs if c["failed"] and c["direction"] == "active")
        self.assertLessEqual(failed - n_failed, missed)

        # bad parameters -> 400
        for q in ("state=maybe", "limit=0", "port=70000", "ip=nope", "bogus=1"):
            status, _, body = agent.request(f"/api/v1/connections?{q}")
            self.assertEqual(status, 400, f"{q}: {body}")

    def test_ipv6_connections(self):
        ns = self.make_netns()
        agent = self.agent_for(ns)
        m0 = self.settle(agent)
        n = 6
        code = ("import socket,threading,json\n"
                "srv=socket.socket(socket.AF_INET6);srv.bind(('::1',0));srv.listen(8);port=srv.getsockname()[1]\n"
                f"def serve():\n    for _ in range({n}):\n        c,_=srv.accept();c.recv(100);c.close()\n"
                "t=threading.Thread(target=serve);t.start()\n"
                f"for _ in range({n}):\n    s=socket.create_connection(('::1',port));s.sendall(b'v6');s.recv(1);s.close()\n"
                "t.join();print(port)\n")
        port = int(run([PYTHON, "-c", code], netns=ns).stdout)
        m1 = self.settle(agent)
        for direction in ("active", "passive"):
            self.assertEqual(self.value(m1, "netprobe_tcp_connections_opened_total", direction=direction) -
                             self.value(m0, "netprobe_tcp_connections_opened_total", direction=direction), n)
        conns = agent.get_json(f"/api/v1/connections?family=6&port={port}&limit=100")["connections"]
        self.assertEqual(len(conns), 2 * n)
        for c in conns:
            self.assertEqual((c["src_ip"], c["dst_ip"], c["ip_version"]), ("::1", "::1", 6))
            self.assertIn(port, (c["src_port"], c["dst_port"]))

    def test_socket_monitor_off(self):
        agent = self.start_agent(f"--collect-interval={INTERVAL}", "--socket-monitor=off",
                                 netns=self.make_netns())
        m = agent.wait_collections(2)
        self.assertEqual(m.series_count("netprobe_tcp_connections_closed_total"), 0)
        self.assertFalse(agent.get_json("/api/v1/connections")["enabled"])


# Runs inside the traffic namespace: holds `hold` connections open (both ends here)
# until killed, bounded to 300 s. Prints the server port once they are established.
HOLD = r"""
import socket, sys, time
hold = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(hold)
port = srv.getsockname()[1]
keep = []
for _ in range(hold):
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept(); keep += [c, a]
print(port, flush=True)
time.sleep(300)
"""

# Runs inside the traffic namespace: `procs` processes each open and abort (RST,
# no TIME_WAIT) `n` loopback connections as fast as they can.
BURST = r"""
import os, socket, struct, sys, threading
n, procs = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4096); port = srv.getsockname()[1]
def serve():
    while True:
        try: c, _ = srv.accept()
        except OSError: return
        c.close()
threading.Thread(target=serve, daemon=True).start()
linger = struct.pack("ii", 1, 0)
kids = []
for _ in range(procs):
    pid = os.fork()
    if pid == 0:
        for _ in range(n):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.connect(("127.0.0.1", port)); s.close()
        os._exit(0)
    kids.append(pid)
for k in kids: os.waitpid(k, 0)
"""


def agent_map_id(pid: int, name: str) -> int:
    """Id of the BPF map `name` held by process pid."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("map_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    for i in ids:
        if json.loads(run(["bpftool", "-j", "map", "show", "id", str(i)]).stdout).get("name") == name:
            return i
    raise AssertionError(f"agent {pid} holds no map {name}")


def add_to_percpu_counter(map_id: int, index: int, n: int) -> None:
    """Adds n to CPU 0's slot of a __u64 PERCPU_ARRAY element (bpftool 7.1 can only
    write the same value to every CPU): BPF_MAP_GET_FD_BY_ID, LOOKUP, UPDATE."""
    libc = ctypes.CDLL(None, use_errno=True)
    sys_bpf, get_fd, lookup, update = 321, 14, 1, 2  # x86_64

    def bpf(cmd, attr):
        r = libc.syscall(sys_bpf, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
        if r < 0:
            raise OSError(ctypes.get_errno(), f"bpf({cmd})")
        return r

    with open("/sys/devices/system/cpu/possible") as f:
        ncpu = max(int(part.split("-")[-1]) for part in f.read().strip().split(",")) + 1
    a = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(a, 0).value = map_id
    fd = bpf(get_fd, a)
    try:
        key = ctypes.c_uint32(index)
        vals = (ctypes.c_uint64 * ncpu)()
        a = (ctypes.c_uint8 * 128)()
        ctypes.c_uint32.from_buffer(a, 0).value = fd
        ctypes.c_uint64.from_buffer(a, 8).value = ctypes.addressof(key)
        ctypes.c_uint64.from_buffer(a, 16).value = ctypes.addressof(vals)
        bpf(lookup, a)
        vals[0] = (vals[0] + n) % (1 << 64)
        bpf(update, a)  # same attr: fd, key, value, flags 0 (BPF_ANY)
    finally:
        os.close(fd)


def kernel_tcp_sockets(ns: str) -> int:
    """TCP sockets of the namespace that a connection record can stand for: full sockets
    but listeners. Timewait mini-sockets are left out whatever state ss gives them: an
    orphan whose FIN was acknowledged becomes one in substate FIN-WAIT-2 for
    tcp_fin_timeout (60 s) - its FIN_WAIT2 -> CLOSE was seen, so it has no record. The
    burst leaves some now and then (an abort's RST that raced the server's close() is
    dropped), and counting them kept the gauge "below" the kernel for 60 s: that was the
    test's flakiness. ss -o shows every timewait socket, and only those, with
    timer:(timewait,...)."""
    out = run(["ss", "-Htano"], netns=ns).stdout
    return sum(1 for line in out.splitlines()
               if line.split() and line.split()[0] != "LISTEN" and "timer:(timewait" not in line)


class StaleRecords(StackTestCase):
    def test_missed_closes_reconciled_to_the_kernels_count(self):
        require_tools("ss", "bpftool")
        ns = self.make_netns()
        agent = self.agent_for(ns)
        self.settle(agent)
        hold = 10

        def gauges():
            m = agent.wait_collections(1)
            return (int(m.get("netprobe_tcp_connections_active")),
                    int(m.get("netprobe_tcp_connection_records_reconciled_total")),
                    int(m.get("netprobe_bpf_missed_events_total", program="netprobe_sk_state")), m)

        holder = self.spawn([PYTHON, "-c", HOLD, str(hold)], netns=ns, stdout=subprocess.PIPE)
        self.addCleanup(holder.p.stdout.close)
        hold_port = int(holder.p.stdout.readline())
        # 1. A burst of loopback connections: state changes the kernel's recursion guard
        # skips are counted as missed events; a missed CLOSE leaves a stale record.
        run([PYTHON, "-c", BURST, "3000", "2"], netns=ns, timeout=120)

        def converged():
            active, rec, missed, _ = gauges()
            kernel = kernel_tcp_sockets(ns)
            # a missed open (no record) can only make the gauge lower, by at most the misses
            return (active, rec, missed) if active <= kernel and kernel - active <= missed and \
                (missed > 0 or active == kernel) else None
        active, rec1, missed1 = wait_for(converged, 60, "the active gauge to match the kernel's sockets")
        log(f"after the burst: active {active}, kernel {kernel_tcp_sockets(ns)}, missed {missed1}, "
            f"records reconciled {rec1}")
        self.assertEqual(kernel_tcp_sockets(ns), 2 * hold)

        # 2. A missed CLOSE made on purpose: save the held connections' records, close
        # them, and put the records back together with the +1 each had added to the
        # tracked count - the kernel table then is exactly what a missed CLOSE leaves.
        conn_id = agent_map_id(agent.pid, "conn_table")
        counters_id = agent_map_id(agent.pid, "tcp_counters")
        saved = [e for e in json.loads(run(["bpftool", "-j", "map", "dump", "id", str(conn_id)]).stdout)
                 if hold_port in (e["formatted"]["value"]["sport"], e["formatted"]["value"]["dport"])]
        self.assertEqual(len(saved), 2 * hold)
        holder.stop()
        wait_for(lambda: kernel_tcp_sockets(ns) == 0 and gauges()[0] == 0, 30, "the held connections to close")
        for e in saved:
            run(["bpftool", "map", "update", "id", str(conn_id), "key", *e["key"], "value", *e["value"]])
        add_to_percpu_counter(counters_id, 7, len(saved))  # NP_TCP_TRACKED_DELTA

        planted = {tuple(e["key"]) for e in saved}

        def clean():
            active, rec, _, m = gauges()
            left = [e for e in json.loads(run(["bpftool", "-j", "map", "dump", "id", str(conn_id)]).stdout)
                    if tuple(e["key"]) in planted]
            return (active, rec, m) if active == 0 and not left else None
        active, rec2, m = wait_for(clean, 60, "the stale records to be reconciled")
        log(f"stale records reconciled: {rec2 - rec1} (planted {len(saved)}); active {active}")
        # every planted record, plus at most the stale records of missed closes of the burst
        self.assertGreaterEqual(rec2 - rec1, len(saved))
        self.assertLessEqual(rec2 - rec1, len(saved) + missed1)
        self.assertEqual(kernel_tcp_sockets(ns), 0)
        self.assertEqual(m.get("netprobe_tcp_connection_reconcile_failures_total"), 0.0)
        conns = agent.get_json(f"/api/v1/connections?state=open&port={hold_port}&limit=100")["connections"]
        self.assertEqual(conns, [])


class Drops(StackTestCase):
    def test_netfilter_drop_and_no_socket(self):
        require_tools("nft")
        ns = self.make_netns()
        run(["nft", "-f", "-"], netns=ns, input="""
table inet npdrop {
  chain input { type filter hook input priority 0; policy accept;
    udp dport 9 drop
  }
}
""")
        agent = self.agent_for(ns)
        m0 = self.settle(agent)
        k_nf, k_nosock = 25, 13
        code = ("import socket;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                f"for _ in range({k_nf}): u.sendto(b'd',('127.0.0.1',9))\n"
                f"for _ in range({k_nosock}): u.sendto(b'n',('127.0.0.1',19))\n")
        run([PYTHON, "-c", code], netns=ns)
        m1 = self.settle(agent)
        d_nf = self.value(m1, "netprobe_packet_drops_total", reason="NETFILTER_DROP") - \
            self.value(m0, "netprobe_packet_drops_total", reason="NETFILTER_DROP")
        d_ns = self.value(m1, "netprobe_packet_drops_total", reason="NO_SOCKET") - \
            self.value(m0, "netprobe_packet_drops_total", reason="NO_SOCKET")
        counters = json.loads(run(["nft", "-j", "list", "table", "inet", "npdrop"], netns=ns).stdout)
        log(f"drops: NETFILTER_DROP +{d_nf} (sent {k_nf}), NO_SOCKET +{d_ns} (sent {k_nosock})")
        self.assertEqual((d_nf, d_ns), (k_nf, k_nosock))
        # every reason label is a kernel name without the prefix
        for s in m1.find("netprobe_packet_drops_total"):
            self.assertFalse(s.labels["reason"].startswith("SKB_DROP_REASON_"))
        self.assertTrue(counters)
        # where: the top locations carry kernel function names
        locs = {(x.labels["reason"], x.labels["location"].split("+")[0]): x.value
                for x in m1.find("netprobe_packet_drop_locations_total")}
        log(f"drop locations: {locs}")
        self.assertLessEqual(len(m1.find("netprobe_packet_drop_locations_total")), 20)
        self.assertGreaterEqual(sum(v for (r, _), v in locs.items() if r == "NETFILTER_DROP"), k_nf)
        self.assertTrue(all(not loc.startswith("0x") for _, loc in locs), locs)

    def test_flood_of_5_tuples_over_the_flow_budget(self):
        """Drops of thousands of distinct 5-tuples in a burst: every one counted by reason
        (equal to the kernel's UdpNoPorts), and beyond each CPU's budget of new per-5-tuple
        entries per 100 ms not attributed to its 5-tuple but counted as such."""
        require_tools("nstat")
        ns = self.make_netns()
        # 2 s between reads: the budget is the 4096-entry table over 20 windows and the CPUs
        agent = self.agent_for(ns, interval="2s")
        m0 = agent.wait_stable(STACK_FAMILIES, settle=2, timeout=30)
        budget = self.value(m0, "netprobe_packet_drops_flow_budget")
        # the kernel's possible CPUs (what libbpf sizes per-CPU maps by), e.g. "0-1"
        with open("/sys/devices/system/cpu/possible") as f:
            cpus = sum(int(r.split("-")[-1]) - int(r.split("-")[0]) + 1 for r in f.read().strip().split(","))
        self.assertEqual(budget, max(4096 // 20 // cpus, 16))
        k = 3000
        nstat0 = nstat_counters(ns)
        code = ("import socket, time, json\nu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"t = time.monotonic()\nfor p in range({k}): u.sendto(b'x', ('127.0.0.1', 20000 + p))\n"
                "print(json.dumps({'seconds': time.monotonic() - t}))\n")
        seconds = json.loads(run([PYTHON, "-c", code], netns=ns).stdout)["seconds"]
        no_ports = nstat_counters(ns)["UdpNoPorts"] - nstat0["UdpNoPorts"]
        m1 = agent.wait_stable(STACK_FAMILIES, settle=2, timeout=30)
        d = lambda name, **l: self.value(m1, name, **l) - self.value(m0, name, **l)
        no_socket = d("netprobe_packet_drops_total", reason="NO_SOCKET")
        all_drops = sum(s.value for s in m1.find("netprobe_packet_drops_total")) - \
            sum(s.value for s in m0.find("netprobe_packet_drops_total"))
        unattributed = d("netprobe_packet_drops_unattributed_total")
        # at most the budget of every CPU in every window the burst touched was attributed
        allowed = budget * cpus * (seconds / 0.1 + 2)
        log(f"{k} datagrams in {seconds * 1000:.0f} ms: UdpNoPorts {no_ports}, NO_SOCKET {no_socket}, "
            f"unattributed {unattributed} (budget {budget}/CPU/100 ms, at most {allowed:.0f} attributed)")
        self.assertEqual(no_ports, k)
        self.assertEqual(no_socket, k)
        self.assertGreaterEqual(unattributed, k - allowed)
        self.assertLessEqual(unattributed, all_drops)
        self.assertEqual(d("netprobe_map_update_errors_total", map="drop_flows"), 0)

    def test_retransmits_match_nstat(self):
        require_tools("nft", "nstat")
        sender = self.make_netns()
        v = self.make_veth(host_ns=sender)  # sender <-> receiver (a new namespace)
        receiver = v.ns
        run(["nft", "-f", "-"], netns=receiver, input=f"""
table inet nploss {{
  chain input {{ type filter hook input priority 0; policy accept;
    ip saddr {v.host_ip} tcp dport 5201 numgen random mod 100 < 5 drop
  }}
}}
""")
        agent = self.agent_for(sender)

        def retrans_segs() -> int:
            out = run(["nstat", "-asz", "TcpRetransSegs"], netns=sender).stdout
            for line in out.splitlines():
                if line.startswith("TcpRetransSegs"):
                    return int(line.split()[1])
            return 0

        m0 = self.settle(agent)
        r0 = retrans_segs()
        server = self.spawn([PYTHON, "-c", (
            "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(('{v.peer_ip}',5201));s.listen(1);c,_=s.accept()\n"
            "while c.recv(1<<20): pass\n")], netns=receiver)
        wait_for(lambda: "5201" in run(["ss", "-ltn"], netns=receiver).stdout, 10, "receiver listening")
        run([PYTHON, "-c", (
            f"import socket;s=socket.create_connection(('{v.peer_ip}',5201))\n"
            "b=b'x'*65536\n"
            "for _ in range(300): s.sendall(b)\n"
            "s.shutdown(socket.SHUT_WR);s.recv(1);s.close()\n")], netns=sender, timeout=120)
        server.stop()
        m1 = self.settle(agent)
        r1 = retrans_segs()
        agent_d = self.value(m1, "netprobe_tcp_retransmits_total") - self.value(m0, "netprobe_tcp_retransmits_total")
        nstat_d = r1 - r0
        log(f"retransmits: agent +{agent_d}, nstat TcpRetransSegs +{nstat_d}")
        self.assertGreater(nstat_d, 0, "the random drop rule caused no retransmission")
        self.assertEqual(agent_d, nstat_d)
        self.assertGreater(m1.get("netprobe_tcp_rtt_seconds_count"), 0)
        self.assertGreater(m1.get("netprobe_tcp_cwnd_segments_count"), 0)


class RouterHooks(StackTestCase):
    def test_five_hooks_forwarded_vs_local(self):
        require_tools("ping")
        router = self.make_netns()
        # A <-> R <-> B, each host in a namespace of its own.
        host_a, host_b = self.make_netns(), self.make_netns()
        va = self.make_veth(ns=router, host_ns=host_a)
        vb = self.make_veth(ns=router, host_ns=host_b)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=router)
        run(["ip", "route", "add", f"{vb.host_ip}/32", "via", va.peer_ip], netns=host_a)
        run(["ip", "route", "add", f"{va.host_ip}/32", "via", vb.peer_ip], netns=host_b)
        # warm up ARP so the counted pings are all there is
        run(["ping", "-c", "1", "-W", "2", vb.host_ip], netns=host_a)
        run(["ping", "-c", "1", "-W", "2", va.peer_ip], netns=host_a)

        agent = self.agent_for(None, "--netfilter-hooks=all", agent_ns=router)  # inside the router: its own hooks
        hooks = ("prerouting", "input", "forward", "output", "postrouting")

        def icmp4(m) -> dict:
            return {h: (self.value(m, "netprobe_netfilter_packets_total", hook=h, family="ipv4", protocol="icmp"),
                        self.value(m, "netprobe_netfilter_bytes_total", hook=h, family="ipv4", protocol="icmp"))
                    for h in hooks}

        k = 20
        m0 = self.settle(agent, icmp4)
        run(["ping", "-c", str(k), "-i", "0.02", "-W", "2", vb.host_ip], netns=host_a)  # forwarded
        m1 = self.settle(agent, icmp4)
        run(["ping", "-c", str(k), "-i", "0.02", "-W", "2", va.peer_ip], netns=host_a)  # to the router
        m2 = self.settle(agent, icmp4)
        c0, c1, c2 = icmp4(m0), icmp4(m1), icmp4(m2)
        fwd = {h: c1[h][0] - c0[h][0] for h in hooks}
        local = {h: c2[h][0] - c1[h][0] for h in hooks}
        log(f"forwarded pings: {fwd}; pings to the router: {local}")
        # echo request + reply, each 84 bytes of IP
        self.assertEqual(fwd, {"prerouting": 2 * k, "input": 0, "forward": 2 * k, "output": 0,
                               "postrouting": 2 * k})
        self.assertEqual(local, {"prerouting": k, "input": k, "forward": 0, "output": k, "postrouting": k})
        self.assertEqual(c1["forward"][1] - c0["forward"][1], 2 * k * 84)
        self.assertEqual(m2.get("netprobe_stack_feature_enabled", feature="netfilter"), 1.0)

    def test_default_netfilter_hooks(self):
        """By default only input, forward and output are counted (one or two program runs per
        packet instead of up to four); the other hooks have no series, and their links are not
        there (the kernel's own list); --netfilter-hooks=none attaches nothing."""
        router = self.make_netns()
        agent = self.agent_for(None, agent_ns=router)
        m = agent.wait_collections(2)
        hooks = {s.labels["hook"] for s in m.find("netprobe_netfilter_packets_total")}
        self.assertEqual(hooks, {"input", "forward", "output"})
        links = json.loads(run(["bpftool", "-j", "link", "show"]).stdout or "[]")
        progs, _ = agent.bpf_ids()
        # bpftool 7.1 prints the netfilter link type (BPF_LINK_TYPE_NETFILTER = 10) as a number
        nf = [l for l in links if str(l.get("type")) in ("netfilter", "10") and l.get("prog_id") in progs]
        self.assertEqual(len(nf), 6, nf)  # 3 hooks x (ipv4, ipv6)
        agent.stop()
        agent = self.agent_for(None, "--netfilter-hooks=none", agent_ns=self.make_netns())
        m = agent.wait_collections(2)
        self.assertEqual(m.find("netprobe_netfilter_packets_total"), [])
        self.assertEqual(m.get("netprobe_stack_feature_enabled", feature="netfilter"), 0.0)

    def test_five_hooks_ipv6_forwarded_vs_local(self):
        require_tools("ping")
        router = self.make_netns()
        host_a, host_b = self.make_netns(), self.make_netns()
        va = self.make_veth(ns=router, host_ns=host_a)
        vb = self.make_veth(ns=router, host_ns=host_b)
        run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], netns=router)
        run(["ip", "-6", "route", "add", f"{vb.host_ip6}/128", "via", va.peer_ip6], netns=host_a)
        run(["ip", "-6", "route", "add", f"{va.host_ip6}/128", "via", vb.peer_ip6], netns=host_b)
        # Static neighbours: no neighbour discovery (ICMPv6 too) can run during the
        # counted pings, e.g. a probe of a STALE entry seconds later. MLD reports carry
        # a hop-by-hop header first, so they count as protocol "other", not "icmp".
        for where, addr, mac, dev in ((host_a, va.peer_ip6, va.peer_mac, va.host),
                                      (router, va.host_ip6, va.host_mac, va.peer),
                                      (host_b, vb.peer_ip6, vb.peer_mac, vb.host),
                                      (router, vb.host_ip6, vb.host_mac, vb.peer)):
            run(["ip", "-6", "neigh", "replace", addr, "lladdr", mac, "dev", dev, "nud", "permanent"], netns=where)
        run(["ping", "-6", "-c", "1", "-W", "2", vb.host_ip6], netns=host_a)  # the path works

        agent = self.agent_for(None, "--netfilter-hooks=all", agent_ns=router)
        hooks = ("prerouting", "input", "forward", "output", "postrouting")

        def icmp6(m) -> dict:
            return {h: (self.value(m, "netprobe_netfilter_packets_total", hook=h, family="ipv6", protocol="icmp"),
                        self.value(m, "netprobe_netfilter_bytes_total", hook=h, family="ipv6", protocol="icmp"))
                    for h in hooks}

        k = 20
        m0 = self.settle(agent, icmp6)
        run(["ping", "-6", "-c", str(k), "-i", "0.02", "-W", "2", vb.host_ip6], netns=host_a)  # forwarded
        m1 = self.settle(agent, icmp6)
        run(["ping", "-6", "-c", str(k), "-i", "0.02", "-W", "2", va.peer_ip6], netns=host_a)  # to the router
        m2 = self.settle(agent, icmp6)
        c0, c1, c2 = icmp6(m0), icmp6(m1), icmp6(m2)
        fwd = {h: c1[h][0] - c0[h][0] for h in hooks}
        local = {h: c2[h][0] - c1[h][0] for h in hooks}
        log(f"forwarded ICMPv6 echoes: {fwd}; echoes to the router: {local}")
        self.assertEqual(fwd, {"prerouting": 2 * k, "input": 0, "forward": 2 * k, "output": 0,
                               "postrouting": 2 * k})
        self.assertEqual(local, {"prerouting": k, "input": k, "forward": 0, "output": k, "postrouting": k})
        # echo request and reply: 40 (IPv6) + 8 (ICMPv6) + 56 (ping's payload) bytes each
        self.assertEqual(c1["forward"][1] - c0["forward"][1], 2 * k * 104)
        self.assertEqual(c2["input"][1] - c1["input"][1], k * 104)



class Icmp(StackTestCase):
    def test_echo_and_unreachable_by_type_and_code(self):
        require_tools("ping")
        agent_ns = self.make_netns()
        v = self.make_veth(host_ns=agent_ns)  # agent_ns <-> peer namespace
        run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"], netns=agent_ns)
        agent = self.agent_for(None, agent_ns=agent_ns)  # attaches TC to the veth in its namespace

        def icmp(m) -> dict:
            return {(s.labels["family"], s.labels["type"], s.labels["code"], s.labels["direction"]): s.value
                    for s in m.find("netprobe_icmp_messages_total")}

        m0 = self.settle(agent, icmp)
        k, u = 15, 9
        run(["ping", "-c", str(k), "-i", "0.02", "-W", "2", v.host_ip], netns=v.ns)
        run(["ping", "-6", "-c", str(k), "-i", "0.02", "-W", "2", v.host_ip6], netns=v.ns)
        code = ("import socket,time\n"
                "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                f"for _ in range({u}): u.sendto(b'x',('{v.host_ip}',9)); time.sleep(0.01)\n")
        run([PYTHON, "-c", code], netns=v.ns)
        m1 = self.settle(agent, icmp)
        c0, c1 = icmp(m0), icmp(m1)
        delta = {key: c1.get(key, 0) - c0.get(key, 0) for key in c1}
        log(f"icmp deltas: { {k_: d for k_, d in delta.items() if d} }")
        want = {
            ("ipv4", "8", "0", "ingress"): k, ("ipv4", "0", "0", "egress"): k,       # echo
            ("ipv6", "128", "0", "ingress"): k, ("ipv6", "129", "0", "egress"): k,   # ICMPv6 echo
            ("ipv4", "3", "3", "egress"): u,                                        # port unreachable
        }
        for key, n in want.items():
            self.assertEqual(delta.get(key, 0), n, key)
        # the only other ICMP messages are IPv6 neighbour discovery (types 133-137)
        for key, d in delta.items():
            if key not in want and d:
                self.assertEqual(key[0], "ipv6", key)
                self.assertIn(int(key[1]), range(133, 138), key)

if __name__ == "__main__":
    unittest.main()
