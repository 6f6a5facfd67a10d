"""Bottlenecks and hotspots (GET /api/v1/bottlenecks): each finding produced for real in
namespaces and checked against a counter NetProbe did not write, and a healthy baseline
that produces only informational top_talker findings.

The agent runs in a "node" namespace (--socket-netns=own), so its netstat, conntrack and
qdisc readings are that namespace's; a client namespace is joined to it by a veth.

- listen overflow: a listener with backlog 1 that never accepts, a burst of connections;
  oracle: nstat's TcpExtListenOverflows delta of the node namespace.
- conntrack usage: nf_conntrack_max is read-only outside the initial namespace (this
  kernel), and the root namespace's sysctls are not ours to change, so the node's table is
  filled instead: UDP datagrams to distinct ports create ~78% of nf_conntrack_max entries
  (the limit applies per namespace; the UDP timeout is raised in the node so they stay),
  then 3000 more than the table holds; oracle: /proc/sys/net/netfilter/nf_conntrack_count
  and _max of the node, and the kernel's drop/early_drop statistics (conntrack -S).
- saturated link: a tbf shaper (20 Mbit/s) on the node's end of a veth and an iperf3 UDP
  stream at 60 Mbit/s through it; oracle: `tc -s -j qdisc show`'s drops, and the tbf's own
  limit for the standing queue.
- utilisation: a veth's speed is nominal (it says 10000), so its capacity is configured
  (--link-speed=IF=100M, as for a cloud NIC that reports none) and an iperf3 UDP stream at
  150 Mbit/s crosses it; oracle: iperf3's own sending rate (payload bits/s, framed).
- UDP socket buffers: a receiver with a small SO_RCVBUF that never reads; oracle: nstat's
  UdpRcvbufErrors of the node.
"""

import json
import math
import subprocess
import time
import unittest

from e2e_inspect import nstat_counters
from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for

# UDP sink + TCP echo on the node (healthy traffic), until killed.
SERVERS = r"""
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 7300))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 7302))
t.listen(64)
def echo(c):
    while True:
        d = c.recv(4096)
        if not d:
            return
        c.sendall(d)
def acc():
    while True:
        c, _ = t.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=acc, daemon=True).start()
print("READY", flush=True)
while True:
    u.recvfrom(65536)
"""

HEALTHY = r"""
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while time.monotonic() < end:
    u.sendto(b"x" * 200, (sys.argv[1], 7300))
    c = socket.create_connection((sys.argv[1], 7302))
    c.sendall(b"hello"); c.recv(16); c.close()
    time.sleep(0.05)
"""

BACKLOG = r"""
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 7304))
l.listen(1)
print("LISTENING", flush=True)
time.sleep(600)
"""

BURST = r"""
import socket, sys, time
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((sys.argv[1], 7304))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(float(sys.argv[3]))
"""

# argv[2] datagrams to distinct (source port, destination port) pairs of argv[1]: one
# conntrack entry each.
CONNTRACK_FILL = r"""
import socket, sys
want, n = int(sys.argv[2]), 0
while n < want:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for p in range(1, 65536):
        s.sendto(b"x", (sys.argv[1], p))
        n += 1
        if n >= want:
            break
    s.close()
print(n)
"""

# A UDP receiver with a small buffer that never reads.
SLOW_READER = r"""
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
u.bind((sys.argv[1], 7310))
print("READY", flush=True)
time.sleep(600)
"""
BLAST = r"""
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    u.sendto(b"y" * 1000, (sys.argv[1], 7310))
"""


class BottlenecksTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("nft", "nstat", "iperf3", "tc", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)

    def agent(self, *extra: str):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--socket-netns=own", *extra, netns=self.node)

    def doc(self, agent, query: str = "") -> dict:
        d = agent.get_json("/api/v1/bottlenecks" + query)
        self.assertTrue(d["enabled"])
        return d

    def finding(self, agent, kind: str, subject: str | None = None, timeout: float = 30, pred=None) -> dict:
        def found():
            for f in self.doc(agent, f"?kind={kind}")["findings"]:
                if f["kind"] == kind and (subject is None or f["subject"] == subject) and (pred is None or pred(f)):
                    return f
            return None
        f = wait_for(found, timeout, f"a {kind} finding ({subject})", interval=0.25)
        log(f"finding: {json.dumps(f)[:600]}")
        if kind not in ("top_talker", "listen_overflow") and f["severity"] != "info":
            self.in_diagnosis(agent, f)
        return f

    def in_diagnosis(self, agent, f: dict) -> None:
        """The fault is also a finding of /api/v1/diagnosis under the bottleneck's kind, with
        its subject, severity and evidence names (netprobe diagnose shows it)."""
        def listed():
            for d in agent.get_json("/api/v1/diagnosis")["findings"]:
                if d["rule"] == f["kind"] and d["subject"] == f["subject"] and d["severity"] == f["severity"]:
                    return d
            return None
        d = wait_for(listed, 10, f"the {f['kind']} finding in /api/v1/diagnosis", interval=0.25)
        self.assertEqual([e["name"] for e in d["evidence"]], [e["name"] for e in f["evidence"]])
        self.assertTrue(d["fix"], d)

    @staticmethod
    def evidence(f: dict, name: str) -> float:
        return next(e["value"] for e in f["evidence"] if e["name"] == name)

    @staticmethod
    def nstat(netns: str) -> dict:
        return nstat_counters(netns)

    def proc(self, netns: str, path: str) -> int:
        return int(run(["cat", path], netns=netns).stdout.strip())

    def root_qdisc(self, dev: str) -> dict:
        qs = json.loads(run(["tc", "-s", "-j", "qdisc", "show", "dev", dev], netns=self.node).stdout)
        return next(q for q in qs if q.get("root"))

    # ------------------------------------------------------------------------------

    def test_a_healthy_node_has_only_top_talkers(self):
        p = self.spawn([PYTHON, "-c", SERVERS, self.veth.host_ip], netns=self.node, stdout=subprocess.PIPE,
                       name="servers")
        self.assertEqual(p.p.stdout.readline().strip(), b"READY")
        self.spawn(["iperf3", "-s", "-B", self.veth.host_ip, "-p", "5211"], netns=self.node, log_name="iperf3-s.log")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :5211"], netns=self.node).stdout.strip(), 10, "iperf3 to listen")
        agent = self.agent()
        run([PYTHON, "-c", HEALTHY, self.veth.host_ip, "6"], netns=self.veth.ns, timeout=60)
        out = json.loads(run(["iperf3", "-c", self.veth.host_ip, "-p", "5211", "-n", "8M", "-J"], netns=self.veth.ns,
                             timeout=120).stdout)
        received = out["end"]["sum_received"]["bytes"]
        agent.wait_collections(4)
        d = self.doc(agent)
        log(f"baseline findings: {[(f['kind'], f['severity'], f['subject']) for f in d['findings']]}")
        for f in d["findings"]:
            self.assertEqual((f["kind"], f["severity"]), ("top_talker", "info"), f["title"])
        top = wait_for(lambda: next((f for f in self.doc(agent)["findings"]
                                     if f["subject"].endswith(f"{self.veth.host_ip}:5211")), None),
                       10, "the iperf3 edge as a top talker")
        # the edge carries what iperf3's server read (and the headers, and the ACKs)
        self.assertGreaterEqual(self.evidence(top, "bytes"), received)
        self.assertEqual(top["rank"], 1)
        # metrics: every kind x severity, all zero but the top talkers
        m = agent.metrics()
        for s in m.samples:
            if s.name == "netprobe_bottleneck_findings" and s.labels["kind"] != "top_talker":
                self.assertEqual(s.value, 0, s.labels)
        self.assertEqual(len([s for s in m.samples if s.name == "netprobe_bottleneck_findings"]), 27)
        # the conntrack table of the node (empty: nothing uses it)
        self.assertTrue(d["conntrack"]["available"])
        self.assertEqual(d["conntrack"]["entries"], self.proc(self.node, "/proc/sys/net/netfilter/nf_conntrack_count"))
        # the API's errors and the endpoint listing
        status, _, body = agent.request("/api/v1/bottlenecks?window=5m")
        self.assertEqual(status, 400)
        self.assertIn('"window"', json.loads(body)["error"])
        status, _, body = agent.request("/api/v1/bottlenecks?kind=nope")
        self.assertEqual(status, 400)
        self.assertIn('"kind"', json.loads(body)["error"])
        self.assertEqual(agent.request("/api/v1/bottlenecks", method="POST")[0], 405)
        self.assertIn("/api/v1/bottlenecks", agent.request("/")[2])

    def test_listen_overflow_counts_the_kernels_overflows(self):
        before = self.nstat(self.node)
        lst = self.spawn([PYTHON, "-c", BACKLOG, self.veth.host_ip], netns=self.node, stdout=subprocess.PIPE,
                         name="listener")
        self.assertEqual(lst.p.stdout.readline().strip(), b"LISTENING")
        agent = self.agent()
        self.spawn([PYTHON, "-c", BURST, self.veth.host_ip, "40", "8"], netns=self.veth.ns, name="burst")
        self.finding(agent, "listen_overflow", "tcp")
        time.sleep(9)  # the burst is over (8 s): the window holds all of it
        after = self.nstat(self.node)
        overflows = after.get("TcpExtListenOverflows", 0) - before.get("TcpExtListenOverflows", 0)
        drops = after.get("TcpExtListenDrops", 0) - before.get("TcpExtListenDrops", 0)
        f = self.finding(agent, "listen_overflow", "tcp",
                         pred=lambda f: self.evidence(f, "overflows") == overflows, timeout=10)
        log(f"kernel: ListenOverflows +{overflows}, ListenDrops +{drops}; finding: {self.evidence(f, 'overflows')}")
        self.assertGreaterEqual(overflows, 5)
        self.assertEqual(self.evidence(f, "listen_drops"), drops)
        self.assertIn("sysctl -w net.core.somaxconn=4096", f["fix"])
        self.assertIn(f["severity"], ("warning", "critical"))

    def test_conntrack_usage_against_the_namespaces_table(self):
        ct = "/proc/sys/net/netfilter"
        limit = self.proc(self.node, f"{ct}/nf_conntrack_max")
        want = math.ceil(limit * 0.78)
        if want > 600_000:
            self.skipTest(f"nf_conntrack_max is {limit}: filling 78% would take too long")
        # a second veth the agent does not watch carries the datagrams
        fill = self.make_veth(host_ns=self.node)
        run(["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600"], netns=self.node)
        # the test's own requests to the agent (curl on loopback) stay out of the table
        run(["nft", "-f", "-"], netns=self.node, input="""
table ip npbn {
  chain raw_out { type filter hook output priority raw; policy accept; oif lo notrack; }
  chain raw_pre { type filter hook prerouting priority raw; policy accept; iif lo notrack; }
  chain out { type filter hook output priority 0; policy accept; ct state new counter accept; }
}
""")
        self.defer("nft table npbn", lambda: run(["nft", "delete", "table", "ip", "npbn"], netns=self.node,
                                                 check=False))
        agent = self.agent()
        sent = int(run([PYTHON, "-c", CONNTRACK_FILL, fill.peer_ip, str(want)], netns=self.node, timeout=300)
                   .stdout.strip())
        self.assertEqual(sent, want)
        count = self.proc(self.node, f"{ct}/nf_conntrack_count")
        log(f"conntrack: {count} entries of {limit} after {sent} datagrams")

        def settled():
            f = self.finding(agent, "conntrack_usage", "conntrack", timeout=20)
            now = self.proc(self.node, f"{ct}/nf_conntrack_count")
            return f if self.evidence(f, "entries") == now else None
        f = wait_for(settled, 20, "the finding's entries to equal nf_conntrack_count")
        count = self.proc(self.node, f"{ct}/nf_conntrack_count")
        log(f"finding: entries {self.evidence(f, 'entries')} max {self.evidence(f, 'max')}; /proc: {count} of {limit}")
        self.assertEqual(self.evidence(f, "max"), limit)
        self.assertGreaterEqual(count, want)  # every datagram made an entry
        self.assertAlmostEqual(self.evidence(f, "usage"), count / limit, places=9)
        self.assertEqual(f["severity"], "warning")  # 78% of the max: warning from 75%, critical from 90%
        self.assertEqual(self.evidence(f, "drops"), 0)
        self.assertIn(f"sysctl -w net.netfilter.nf_conntrack_max={limit * 2}", f["fix"][0])
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_conntrack_entries_limit"), limit)
        self.assertEqual(m.get("netprobe_bottleneck_findings", kind="conntrack_usage", severity="warning"), 1)

        # Past the limit: the table is full and each new datagram's entry takes the place of an
        # unconfirmed one (early_drop; UDP entries without a reply are never assured). The
        # oracle: the kernel's own statistics over ctnetlink (conntrack -S, conntrack-tools).
        more = limit - count + 3000
        sent = int(run([PYTHON, "-c", CONNTRACK_FILL, fill.peer_ip, str(more)], netns=self.node, timeout=300)
                   .stdout.strip())
        self.assertEqual(sent, more)

        def kernel_stats():
            tot = {"drop": 0, "early_drop": 0}
            for line in run(["conntrack", "-S"], netns=self.node).stdout.splitlines():
                for k, v in (x.split("=") for x in line.split() if "=" in x):
                    if k in tot:
                        tot[k] += int(v)
            return tot
        ks = kernel_stats()
        self.assertGreater(ks["early_drop"] + ks["drop"], 0, ks)

        # critical, with the kernel's counts (also in /api/v1/diagnosis: finding() checks)
        f = self.finding(agent, "conntrack_usage", "conntrack", timeout=20, pred=lambda f: (
            f["severity"] == "critical" and (self.evidence(f, "drops"), self.evidence(f, "early_drops")) ==
            (ks["drop"], ks["early_drop"])))
        log(f"full: conntrack -S {ks}, /proc {self.proc(self.node, f'{ct}/nf_conntrack_count')} of {limit}; "
            f"finding {f['title']}")
        # full (an entry may have left since: evicted to make room, or a flow of the node ended)
        self.assertGreaterEqual(self.evidence(f, "entries"), limit - 16)

    def test_saturated_link_qdisc_drops_and_standing_queue(self):
        # The node forwards a client's UDP stream to a server through a tbf shaper on its link
        # to the server. Forwarded: no sending socket holds packets back (a local sender's
        # socket buffer would fill before the shaper's queue, and nothing would be dropped).
        client, server = self.veth, self.make_veth(host_ns=self.node)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=self.node)
        run(["ip", "route", "add", f"{server.peer_ip}/32", "via", client.host_ip], netns=client.ns)
        run(["ip", "route", "add", f"{client.peer_ip}/32", "via", server.host_ip], netns=server.ns)
        dev = server.host
        run(["tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "20mbit", "burst", "32kbit", "latency", "50ms"],
            netns=self.node)
        self.defer(f"tbf on {dev}", lambda: run(["tc", "qdisc", "del", "dev", dev, "root"], netns=self.node,
                                                 check=False))
        tbf = self.root_qdisc(dev)
        # the queue's limit in bytes, from tc's own figures: rate x latency + burst
        limit = tbf["options"]["rate"] * tbf["options"]["lat"] / 1e6 + tbf["options"]["burst"]
        self.spawn(["iperf3", "-s", "-B", server.peer_ip, "-p", "5212"], netns=server.ns, log_name="iperf3-s.log")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :5212"], netns=server.ns).stdout.strip(), 10, "iperf3 to listen")
        agent = self.start_agent(f"--interface-filter={dev}", "--collect-interval=500ms", "--socket-netns=own",
                                 netns=self.node)
        wait_for(lambda: self.doc(agent)["links"]["read"], 10, "the links task's first reading")
        drops0, sent0 = tbf["drops"], tbf["packets"]
        stream = self.spawn(["iperf3", "-c", server.peer_ip, "-p", "5212", "-u", "-b", "60M", "-l", "1400", "-t", "20"],
                            netns=client.ns, log_name="iperf3-c.log")
        # while the stream runs: a standing queue, up to the shaper's limit
        f = self.finding(agent, "qdisc_backlog", dev, timeout=30)
        during = self.root_qdisc(dev)
        log(f"tc during the stream: backlog {during['backlog']} bytes {during['qlen']} packets, limit {limit:.0f}; "
            f"finding: max {self.evidence(f, 'max_backlog_bytes')} mean {self.evidence(f, 'mean_backlog_bytes'):.0f}")
        self.assertLessEqual(self.evidence(f, "max_backlog_bytes"), limit)
        self.assertGreaterEqual(self.evidence(f, "max_backlog_bytes"), limit / 2)
        self.assertGreaterEqual(during["backlog"], limit / 2)
        self.assertIn(f"tc qdisc replace dev {dev} root fq_codel   # keeps the standing queue near 5 ms", f["fix"])
        # the sender behind it (the talker view's last interval, offered before the qdisc)
        talker = f"talker {client.peer_ip} -> {server.peer_ip} port 5212"
        self.assertGreater(self.evidence(f, talker), 20e6 / 8)
        self.assertEqual(stream.wait(60), 0, stream.output())
        # after it: the drops the agent counts are tc's (its task reads every 5 s)
        after = self.root_qdisc(dev)
        tc_drops, tc_sent = after["drops"] - drops0, after["packets"] - sent0

        def exact():
            f = self.finding(agent, "qdisc_drops", dev, timeout=10)
            return f if self.evidence(f, "drops") == tc_drops else None
        f = wait_for(exact, 20, "the finding's drops to equal tc's")
        log(f"tc: {tc_drops} drops, {tc_sent} sent; finding: {self.evidence(f, 'drops')} drops, "
            f"{self.evidence(f, 'sent')} sent, ratio {self.evidence(f, 'drop_ratio'):.4f}")
        self.assertGreater(tc_drops, 1000)
        # packets the qdisc sent: the stream's plus the odd ARP exchange between tc's reading
        # before the agent started and the agent's first
        self.assertLessEqual(abs(self.evidence(f, "sent") - tc_sent), 3)
        self.assertEqual(f["severity"], "critical")  # about two thirds of 60 Mbit/s dropped
        self.assertIn("tbf", f["title"])
        self.assertTrue(any(x.startswith(f"tc qdisc change dev {dev} root tbf rate") for x in f["fix"]), f["fix"])
        crit = self.doc(agent, "?kind=qdisc_drops,qdisc_backlog&severity=critical")["findings"]
        self.assertEqual([x["kind"] for x in crit], ["qdisc_drops"])

    def test_utilisation_against_a_configured_link_speed(self):
        dev = self.veth.host
        self.spawn(["iperf3", "-s", "-B", self.veth.host_ip, "-p", "5214"], netns=self.node, log_name="iperf3-s.log")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :5214"], netns=self.node).stdout.strip(), 10, "iperf3 to listen")
        # the stream first, then the agent: its window (from its first reading) lies inside the stream
        payload = 1400
        stream = self.spawn(["iperf3", "-c", self.veth.host_ip, "-p", "5214", "-u", "-b", "150M", "-l", str(payload),
                             "-t", "25", "-J"], netns=self.veth.ns, log_name="iperf3-util.json")
        time.sleep(3)
        agent = self.agent(f"--link-speed={dev}=100M,np-absent0=1G")
        f = self.finding(agent, "interface_utilisation", dev, timeout=20,
                         pred=lambda f: self.doc(agent)["window_seconds"] >= 8)
        doc = self.doc(agent)
        self.assertEqual(stream.wait(60), 0, stream.output())
        sent = json.loads(stream.output())["end"]["sum"]
        # on the wire: payload + UDP 8 + IPv4 20 + Ethernet 14 bytes per datagram
        framed_bps = sent["bits_per_second"] * (payload + 42) / payload
        ingress = self.evidence(f, "ingress_rate")
        log(f"iperf3 sent {sent['bits_per_second'] / 1e6:.2f} Mbit/s of payload ({framed_bps / 1e6:.2f} framed); "
            f"agent: ingress {ingress / 1e6:.2f} Mbit/s, utilisation {self.evidence(f, 'ingress_utilisation'):.3f} "
            f"over {doc['window_seconds']:.1f} s")
        self.assertLess(abs(ingress - framed_bps) / framed_bps, 0.05)
        self.assertAlmostEqual(self.evidence(f, "ingress_utilisation"), ingress / 100e6, places=6)
        self.assertEqual(self.evidence(f, "speed"), 100e6)
        self.assertEqual(f["severity"], "critical")
        self.assertIn("(configured)", f["title"])
        self.assertIn("(ingress)", f["title"])
        self.assertIn("--link-speed", f["explanation"])
        load = next(i for i in doc["interfaces"] if i["interface"] == dev)
        self.assertEqual((load["speed_mbps"], load["speed_source"]), (100, "configured"))
        # a configured name the namespace does not have: said once, no finding, no failure
        self.assertIn("--link-speed: no link named np-absent0", agent.output())

    def test_udp_receive_buffer_overflow(self):
        p = self.spawn([PYTHON, "-c", SLOW_READER, self.veth.host_ip], netns=self.node, stdout=subprocess.PIPE,
                       name="slow reader")
        self.assertEqual(p.p.stdout.readline().strip(), b"READY")
        before = self.nstat(self.node)
        agent = self.agent()
        run([PYTHON, "-c", BLAST, self.veth.host_ip, "500"], netns=self.veth.ns)
        time.sleep(1)
        errors = self.nstat(self.node).get("UdpRcvbufErrors", 0) - before.get("UdpRcvbufErrors", 0)
        f = self.finding(agent, "socket_buffer_pressure", "udp",
                         pred=lambda f: self.evidence(f, "UdpRcvbufErrors") == errors, timeout=15)
        log(f"kernel: UdpRcvbufErrors +{errors}; finding {self.evidence(f, 'drops')}")
        self.assertGreater(errors, 400)
        self.assertEqual(self.evidence(f, "drops"), errors)


if __name__ == "__main__":
    unittest.main()
