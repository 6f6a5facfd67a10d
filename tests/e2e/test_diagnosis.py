"""Diagnosis rules (GET /api/v1/diagnosis, `netprobe diagnose`): each fault produced for
real in namespaces, each finding checked against a counter NetProbe did not write, and a
healthy baseline that produces none.

The agent runs in a "node" namespace with --socket-netns=own, so kernel drops and socket
events of the rest of the machine do not reach it; the client namespace is joined to it by
a veth.
"""

import json
import os
import re
import subprocess
import time
import unittest

from e2e_inspect import nstat_counters
from netprobe_e2e import AGENT, PYTHON, E2ETestCase, log, require_tools, run, wait_for

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")

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

# Healthy: UDP datagrams to a listener, TCP request/response on short connections.
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

# argv[2] connection attempts to argv[1]:argv[3]; prints how many were refused.
REFUSED = r"""
import socket, sys
refused = 0
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    try:
        s.connect((sys.argv[1], int(sys.argv[3])))
    except ConnectionRefusedError:
        refused += 1
    s.close()
print(refused)
"""

# A listener with backlog 1 that never accepts, then argv[2] concurrent connection attempts.
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


class DiagnosisTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(CLI, "nft", "nstat", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)

    def agent(self, *extra: str):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--socket-netns=own", *extra, netns=self.node)

    def findings(self, agent) -> list[dict]:
        d = agent.get_json("/api/v1/diagnosis")
        self.assertTrue(d["enabled"])
        return d["findings"]

    def finding(self, agent, rule: str, subject: str | None = None, timeout: float = 20) -> dict:
        def found():
            for f in self.findings(agent):
                if f["rule"] == rule and (subject is None or f["subject"] == subject):
                    return f
            return None
        f = wait_for(found, timeout, f"a {rule} finding ({subject})")
        log(f"finding: {json.dumps(f)[:400]}")
        return f

    def evidence(self, f: dict, name: str) -> float:
        return next(e["value"] for e in f["evidence"] if e["name"] == name)

    def servers(self):
        p = self.spawn([PYTHON, "-c", SERVERS, self.veth.host_ip], netns=self.node, stdout=subprocess.PIPE,
                       name="servers")
        line = p.p.stdout.readline()
        self.assertEqual(line.strip(), b"READY")
        return p

    @staticmethod
    def nstat(netns: str) -> dict:
        return nstat_counters(netns)

    def test_a_healthy_node_has_no_findings(self):
        self.servers()
        agent = self.agent()
        run([PYTHON, "-c", HEALTHY, self.veth.host_ip, "8"], netns=self.veth.ns, timeout=60)
        agent.wait_collections(3)
        self.assertEqual(self.findings(agent), [])
        out = run([CLI, f"--server=http://127.0.0.1:{agent.port}", "diagnose", "--exit-code"], check=False,
                  netns=self.node)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("No findings", out.stdout)

    def test_firewall_drops_are_a_finding_with_the_rules_own_count(self):
        self.servers()
        run(["nft", "add table inet npdiag"], netns=self.node)
        run(["nft", "add chain inet npdiag in { type filter hook input priority 0 ; }"], netns=self.node)
        run(["nft", "add rule inet npdiag in udp dport 7301 counter drop"], netns=self.node)
        agent = self.agent()
        run([PYTHON, "-c", "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           "for _ in range(150): s.sendto(b'x'*100,(sys.argv[1],7301))", self.veth.host_ip],
            netns=self.veth.ns)
        table = json.loads(run(["nft", "-j", "list", "table", "inet", "npdiag"], netns=self.node).stdout)
        dropped = next(x["counter"]["packets"] for r in table["nftables"] if "rule" in r
                       for x in r["rule"]["expr"] if "counter" in x)
        self.assertEqual(dropped, 150)

        def exact():
            f = self.finding(agent, "packet_drops", "NETFILTER_DROP")
            return f if self.evidence(f, "drops") == dropped else None
        f = wait_for(exact, 10, "the finding to count every dropped packet")
        self.assertIn("nft list ruleset", " ".join(f["fix"]))
        out = run([CLI, f"--server=http://127.0.0.1:{agent.port}", "diagnose", "--exit-code"], check=False,
                  netns=self.node)
        self.assertEqual(out.returncode, 4, out.stderr)
        self.assertIn("NETFILTER_DROP", out.stdout)
        self.assertIn("drops 150 packets", out.stdout)

    def test_listen_queue_overflow(self):
        before = self.nstat(self.node)
        lst = self.spawn([PYTHON, "-c", BACKLOG, self.veth.host_ip], netns=self.node, stdout=subprocess.PIPE,
                         name="listener")
        self.assertEqual(lst.p.stdout.readline().strip(), b"LISTENING")
        agent = self.agent()
        self.spawn([PYTHON, "-c", BURST, self.veth.host_ip, "40", "8"], netns=self.veth.ns, name="burst")
        f = self.finding(agent, "listen_overflow", "tcp", timeout=30)
        time.sleep(9)  # the burst is over (8 s): the finding's window holds all of it
        f = self.finding(agent, "listen_overflow", "tcp")
        after = self.nstat(self.node)
        overflows = after.get("TcpExtListenOverflows", 0) - before.get("TcpExtListenOverflows", 0)
        log(f"kernel: ListenOverflows +{overflows}; finding: {self.evidence(f, 'overflows')}")
        self.assertEqual(f["severity"], "critical")
        self.assertGreater(overflows, 0)
        # The finding's count is the kernel's (nstat reads the same namespace's counters).
        self.assertEqual(self.evidence(f, "overflows"), overflows)
        self.assertIn("somaxconn", " ".join(f["fix"]))
        # Which listener: its accept queue as the kernel reports it (ss, through the same
        # inet_diag, is the reference: Send-Q is a listener's backlog, Recv-Q its queue).
        ss = run(["ss", "-Hltn", "sport = :7304"], netns=self.node).stdout.split()
        log(f"ss: {ss}; finding: {f['title']} / {f['evidence']}")
        queues = [e for e in f["evidence"] if e["name"] == f"accept queue of {self.veth.host_ip}:7304"]
        self.assertEqual(len(queues), 1, f["evidence"])
        self.assertEqual(queues[0]["unit"], f"connections (backlog {ss[2]})")
        self.assertGreaterEqual(queues[0]["value"], int(ss[2]))
        self.assertTrue(f["title"].endswith(" on :7304"), f["title"])
        self.assertIn(f"raise the listen backlog of {self.veth.host_ip}:7304 (now {ss[2]};", f["fix"][0])

    def test_refused_connections_name_the_service(self):
        agent = self.agent()
        out = run([PYTHON, "-c", REFUSED, self.veth.peer_ip, "12", "7399"], netns=self.node)
        refused = int(out.stdout.strip())
        self.assertEqual(refused, 12)
        f = self.finding(agent, "connection_failures")
        self.assertEqual(f["subject"], f"{self.veth.peer_ip}:7399")
        self.assertEqual(self.evidence(f, "failed_connections"), refused)
        self.assertEqual(self.evidence(f, f"failed_to {self.veth.peer_ip}:7399"), refused)
        self.assertIn("RST", f["cause"])

    def test_a_smaller_mtu_on_the_path_is_a_path_mtu_finding(self):
        # client ns --veth (1500)-- node (forwards; the agent on this veth) --veth (MTU 1280)-- server ns.
        far = self.make_veth(host_ns=self.node)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"], netns=self.node)
        run(["ip", "link", "set", far.host, "mtu", "1280"], netns=self.node)
        run(["ip", "link", "set", far.peer, "mtu", "1280"], netns=far.ns)
        run(["ip", "route", "add", far.peer_ip, "via", self.veth.host_ip], netns=self.veth.ns)
        run(["ip", "route", "add", self.veth.peer_ip, "via", far.host_ip], netns=far.ns)
        agent = self.agent()
        before = self.nstat(self.veth.ns)
        # 12 datagrams of 1400 bytes with DF, ignoring the learnt path MTU (IP_PMTUDISC_PROBE):
        # each one too big for the 1280-byte link, each answered with fragmentation needed.
        run([PYTHON, "-c", "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           "s.setsockopt(socket.IPPROTO_IP, 10, 3)\n"
                           "for _ in range(12):\n s.sendto(b'x'*1372,(sys.argv[1],9))\n time.sleep(0.05)",
             far.peer_ip], netns=self.veth.ns)
        unreach = self.nstat(self.veth.ns).get("IcmpInDestUnreachs", 0) - before.get("IcmpInDestUnreachs", 0)
        self.assertEqual(unreach, 12)
        f = wait_for(lambda: (lambda f: f if self.evidence(f, "frag_needed") == unreach else None)(
            self.finding(agent, "path_mtu", "icmp")), 10, "the finding to count every message")
        log(f"client received {unreach} destination unreachable; finding {self.evidence(f, 'frag_needed')}")
        self.assertIn("mtu", " ".join(f["fix"]))

    def test_an_mtu_black_hole_is_critical(self):
        # node (the agent, the clients) --veth-- router --veth whose router end has MTU 1280--
        # server. The server's end says 1500, so its MSS (1460) does not protect the clients:
        # their full-size segments are too big for the router's link, which answers each with
        # ICMP fragmentation needed, and a firewall on the node drops those (nft input; TC
        # ingress sees them first). The clients never learn the path MTU and retransmit into
        # the hole. Oracles: the nft rule's own counter and the node's TcpRetransSegs (nstat).
        router = self.veth.ns
        far = self.make_veth(host_ns=router)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"], netns=router)
        run(["ip", "link", "set", far.host, "mtu", "1280"], netns=router)
        run(["ip", "route", "add", far.peer_ip, "via", self.veth.peer_ip], netns=self.node)
        run(["ip", "route", "add", self.veth.host_ip, "via", far.host_ip], netns=far.ns)
        srv = self.spawn([PYTHON, "-c", BACKLOG.replace("7304", "7310").replace("l.listen(1)", "l.listen(128)"),
                          far.peer_ip], netns=far.ns, stdout=subprocess.PIPE, name="sink")
        self.assertEqual(srv.p.stdout.readline().strip(), b"LISTENING")
        table = f"npmtu{os.getpid()}"
        run(["nft", "-f", "-"], netns=self.node, input=f"""
table ip {table} {{
  chain in {{ type filter hook input priority 0; policy accept;
    icmp type destination-unreachable icmp code frag-needed counter drop; }}
}}
""")
        self.defer(f"nft table {table}", lambda: run(["nft", "delete", "table", "ip", table], netns=self.node,
                                                     check=False))
        agent = self.agent()
        agent.wait_collections(2)
        before = self.nstat(self.node)
        # 30 connections, each handing 64 KiB to its socket, held for 10 s
        run([PYTHON, "-c", "import socket,sys,time\nss=[]\nfor _ in range(30):\n"
                           " s=socket.create_connection((sys.argv[1],7310),timeout=5); s.setblocking(False)\n"
                           " s.send(b'x'*65536); ss.append(s)\ntime.sleep(10)", far.peer_ip],
            netns=self.node, timeout=60)
        rules = json.loads(run(["nft", "-j", "list", "table", "ip", table], netns=self.node).stdout)
        dropped = next(x["counter"]["packets"] for r in rules["nftables"] if "rule" in r
                       for x in r["rule"]["expr"] if "counter" in x)
        retrans = self.nstat(self.node).get("TcpRetransSegs", 0) - before.get("TcpRetransSegs", 0)
        log(f"the node's firewall dropped {dropped} ICMP fragmentation needed; TcpRetransSegs {retrans}")
        self.assertGreaterEqual(retrans, 100)
        f = wait_for(lambda: (lambda f: f if f and f["severity"] == "critical" and
                              self.evidence(f, "frag_needed") == dropped and
                              self.evidence(f, "retransmits") == retrans else None)(
            next((f for f in self.findings(agent) if f["rule"] == "path_mtu"), None)),
            15, "a critical path_mtu finding with the firewall's and the kernel's counts")
        log(f"finding: {f['title']}; evidence {f['evidence']}")
        self.assertIn("black hole", f["title"])

    def test_a_full_flow_table_is_netprobe_losing_data(self):
        agent = self.agent("--flow-table-size=16", "--security=off")
        run([PYTHON, "-c", "import socket,sys\nfor p in range(100):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           " s.sendto(b'x',(sys.argv[1],7300))", self.veth.host_ip], netns=self.veth.ns)
        f = self.finding(agent, "netprobe_data_loss", "flow_stats")
        m = agent.metrics()
        self.assertEqual(self.evidence(f, "lost"), m.get("netprobe_map_update_errors_total", map="flow_stats"))
        self.assertGreater(self.evidence(f, "lost"), 0)
        self.assertEqual(m.get("netprobe_diagnosis_findings", rule="netprobe_data_loss", severity="warning"), 1)

    def test_an_l7_ring_too_small_for_a_burst_is_netprobe_losing_data(self):
        # The smallest L7 ring (one page) and wrk against nginx: the capture writes faster than
        # the agent drains a ring that small. Every request the agent missed must be accounted
        # for by a lost record (wrk's own count is the oracle for what happened).
        require_tools("nginx", "wrk")
        ip = self.veth.peer_ip
        server = "server {{ listen IP:8080; location / {{ return 200 'ok'; }} }}".replace("IP", ip)  # {d}-template
        self.start_nginx(self.veth.ns, server,
                         ["curl", "-s", "-o", "/dev/null", f"http://{ip}:8080/"], ready_netns=self.node)
        agent = self.agent("--l7=on", "--l7-ring-size=4KiB", "--security=off")
        agent.wait_collections(2)
        service = f"{ip}:8080"
        out = run(["wrk", "-t1", "-c4", "-d2s", f"http://{service}/x"], netns=self.node, timeout=30).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        f = self.finding(agent, "netprobe_data_loss", "l7_events ring")
        agent.wait_collections(2)
        m = agent.metrics()
        lost = m.get("netprobe_l7_capture_lost_total", where="ring_full")
        counted = {side: sum(s.value for s in m.find("netprobe_l7_requests_total", side=side, service=service))
                   for side in ("client", "server")}
        missed = sum(max(0, n - c) for c in counted.values())
        log(f"wrk {n} requests; agent counted {counted}, ring_full {lost}; finding {self.evidence(f, 'lost')}")
        self.assertGreater(lost, 0)
        self.assertGreater(missed, 0)  # requests were missed ...
        self.assertLessEqual(missed, lost)  # ... and each one is a lost record (of the request or its response)
        f = self.finding(agent, "netprobe_data_loss", "l7_events ring")
        self.assertEqual(self.evidence(f, "lost"), agent.metrics().get("netprobe_l7_capture_lost_total", where="ring_full"))
        self.assertIn("--l7-ring-size", " ".join(f["fix"]))

    # -- interface errors/drops ------------------------------------------------------------

    def kernel_tx_dropped(self, ifname: str, netns: str) -> int:
        """The kernel's own counter (ip -s -j link: rtnl_link_stats64), the oracle."""
        return json.loads(run(["ip", "-s", "-j", "link", "show", "dev", ifname], netns=netns).stdout)[0]["stats64"]["tx"]["dropped"]

    def test_a_veth_whose_peer_is_down_drops_what_it_sends(self):
        # The peer end of the watched veth goes down: the veth drops every packet it is given
        # (tx_dropped). A permanent neighbour entry sends the datagrams straight to the device
        # (no ARP queue in between).
        run(["ip", "link", "set", self.veth.peer, "down"], netns=self.veth.ns)
        run(["ip", "neigh", "replace", self.veth.peer_ip, "lladdr", self.veth.peer_mac, "dev", self.veth.host,
             "nud", "permanent"], netns=self.node)
        # no IPv6 on the node's end (its MLD/ND packets would be dropped too), and the counter
        # settled before the agent starts
        run(["sysctl", "-qw", f"net.ipv6.conf.{self.veth.host}.disable_ipv6=1"], netns=self.node)
        last = [self.kernel_tx_dropped(self.veth.host, self.node), time.monotonic()]

        def settled():
            now = self.kernel_tx_dropped(self.veth.host, self.node)
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return time.monotonic() - last[1] >= 2
        wait_for(settled, 20, "the veth's tx_dropped to settle", interval=0.2)
        before = self.kernel_tx_dropped(self.veth.host, self.node)
        agent = self.agent()
        agent.wait_collections(3)
        # nothing dropped while the agent took its first reading: its baseline is `before`
        self.assertEqual(self.kernel_tx_dropped(self.veth.host, self.node), before)
        out = run([PYTHON, "-c", "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nn=0\n"
                                 "for _ in range(60):\n s.sendto(b'x'*100,(sys.argv[1],9)); n+=1\nprint(n)",
                   self.veth.peer_ip], netns=self.node)
        self.assertEqual(int(out.stdout), 60)
        after = self.kernel_tx_dropped(self.veth.host, self.node)
        dropped = after - before
        self.assertGreaterEqual(dropped, 60)

        def exact():
            f = self.finding(agent, "interface_errors", self.veth.host)
            return f if self.evidence(f, "tx_dropped") == dropped else None
        f = wait_for(exact, 15, "the finding to count every packet the kernel dropped")
        log(f"kernel: tx_dropped +{dropped}; finding: {self.evidence(f, 'tx_dropped')} "
            f"({self.evidence(f, 'tx_dropped_rate'):.2f}/s over {self.evidence(f, 'window'):.1f} s)")
        self.assertEqual(f["severity"], "critical")  # nothing got through
        self.assertGreater(self.evidence(f, "window"), 0)
        self.assertAlmostEqual(self.evidence(f, "tx_dropped_rate"), dropped / self.evidence(f, "window"), places=6)
        self.assertIn("peer", f["cause"])
        self.assertIn(f"ip link show dev {self.veth.host}", " ".join(f["fix"]))
        self.assertIn(f"ip -s -s link show dev {self.veth.host}", f["query"])
        # The same counters in /api/v1/interfaces and /metrics, equal to the kernel's.
        ifs = {i["name"]: i for i in agent.get_json("/api/v1/interfaces")["interfaces"]}
        self.assertEqual(ifs[self.veth.host]["kernel"]["tx_dropped"], after)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_interface_drops_total", interface=self.veth.host, direction="tx"), after)
        out = run([CLI, f"--server=http://127.0.0.1:{agent.port}", "diagnose", "--exit-code"], check=False,
                  netns=self.node)
        self.assertEqual(out.returncode, 4, out.stderr)
        self.assertIn("interface_errors", out.stdout)
        self.assertIn(f"tx_dropped {dropped} packets", out.stdout)

    # -- one-way flows -------------------------------------------------------------------

    def routed(self, asymmetric: bool):
        """client ns C --veth-- node (forwards; the agent on both its veths) --veth-- server ns S;
        with asymmetric, a direct link C -- S that S's answers to C take, so the node sees the
        client's direction only. Returns (client ns, server ns, client ip, server ip, agent)."""
        far = self.make_veth(host_ns=self.node)
        c_ns, s_ns = self.veth.ns, far.ns
        c_ip, s_ip = self.veth.peer_ip, far.peer_ip
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=self.node)
        run(["ip", "route", "add", s_ip, "via", self.veth.host_ip], netns=c_ns)
        if asymmetric:
            direct = self.make_veth(ns=s_ns, host_ns=c_ns)  # host end in C, peer end in S
            run(["ip", "route", "add", c_ip, "via", direct.host_ip], netns=s_ns)
            # answers arrive on an interface C's route to S does not use: no reverse-path filter
            for ns, devs in ((c_ns, [self.veth.peer, direct.host]), (s_ns, [far.peer, direct.peer])):
                run(["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"] +
                    [f"net.ipv4.conf.{d}.rp_filter=0" for d in devs], netns=ns)
        else:
            run(["ip", "route", "add", c_ip, "via", far.host_ip], netns=s_ns)
        # the sender's own counts: what C emitted to S, what came back
        run(["nft", "-f", "-"], netns=c_ns, input=(
            "table inet npdiag_c {\n"
            " chain out { type filter hook output priority 0; ip daddr " + s_ip + " tcp dport 7400 counter;"
            " ip daddr " + s_ip + " udp dport 53 counter; }\n"
            " chain in { type filter hook input priority 0; ip saddr " + s_ip + " tcp sport 7400 counter;"
            " ip saddr " + s_ip + " udp sport 53 counter; }\n}\n"))
        self.spawn([PYTHON, "-c", ROUTED_SERVERS, s_ip], netns=s_ns, name="routed servers")
        agent = self.start_agent(f"--interface-filter={self.veth.host},{far.host}", "--collect-interval=500ms",
                                 "--socket-netns=own", netns=self.node)
        return c_ns, s_ns, c_ip, s_ip, agent

    def nft_counts(self, netns: str) -> dict:
        """{(chain, protocol): packets} of the test's counters in netns."""
        table = json.loads(run(["nft", "-j", "list", "table", "inet", "npdiag_c"], netns=netns).stdout)
        out = {}
        for r in table["nftables"]:
            if "rule" not in r:
                continue
            proto = next(x["match"]["left"]["payload"]["protocol"] for x in r["rule"]["expr"]
                         if "match" in x and x["match"]["left"].get("payload", {}).get("protocol") in ("tcp", "udp"))
            out[(r["rule"]["chain"], proto)] = next(x["counter"]["packets"] for x in r["rule"]["expr"] if "counter" in x)
        return out

    def converse(self, c_ns: str, s_ip: str):
        out = run([PYTHON, "-c", ROUTED_CLIENT, s_ip], netns=c_ns, timeout=60)
        log(f"client: {out.stdout.strip()}")
        self.assertEqual(out.stdout.split(), ["echoed", "12", "answers", "8"])

    def test_asymmetric_routing_is_a_one_way_flows_finding(self):
        c_ns, _, c_ip, s_ip, agent = self.routed(asymmetric=True)
        agent.wait_collections(2)
        self.converse(c_ns, s_ip)
        sent = self.nft_counts(c_ns)
        log(f"client nft counters: {sent}")
        # the answers came back (over the direct link): a working, asymmetric conversation
        self.assertGreater(sent[("in", "tcp")], 0)
        self.assertEqual(sent[("in", "udp")], 8)

        def exact(subject: str, count: int):
            def f():
                x = self.finding(agent, "one_way_flows", subject)
                return x if self.evidence(x, "packets_seen") == count else None
            return f
        tcp = wait_for(exact(f"tcp {c_ip} -> {s_ip}:7400", sent[("out", "tcp")]), 15,
                       "the TCP finding to count every segment the client sent")
        udp = wait_for(exact(f"udp {c_ip} -> {s_ip}:53", sent[("out", "udp")]), 15,
                       "the UDP finding to count every request the client sent")
        log(f"tcp: {tcp['title']}: {tcp['evidence']}")
        log(f"udp: {udp['title']}: {udp['evidence']}")
        self.assertIn("Asymmetric routing", tcp["title"])
        for f in (tcp, udp):
            self.assertEqual(self.evidence(f, "packets_back"), 0)
            self.assertEqual(self.evidence(f, "flows"), 1)
            self.assertGreaterEqual(self.evidence(f, "duration"), 5)
            self.assertIn(f"ip route get {c_ip} from {s_ip}", " ".join(f["fix"]))
            self.assertIn("rp_filter", " ".join(f["fix"]))
        out = run([CLI, f"--server=http://127.0.0.1:{agent.port}", "diagnose"], netns=self.node)
        self.assertIn(f"one_way_flows  tcp {c_ip} -> {s_ip}:7400", out.stdout)

    def test_symmetric_routing_has_no_one_way_flows(self):
        c_ns, _, _, s_ip, agent = self.routed(asymmetric=False)
        agent.wait_collections(2)
        self.converse(c_ns, s_ip)
        agent.wait_collections(4)
        # the node saw both directions of both conversations
        for q in ("src_port=7400", "dst_port=7400", "src_port=53", "dst_port=53"):
            self.assertGreater(agent.get_json(f"/api/v1/flows?{q}&limit=100")["returned"], 0, q)
        self.assertEqual(self.findings(agent), [])


# S: a TCP server that reads until the client closes (answering with its ACKs), and a
# request/response UDP service on port 53 that answers every datagram.
ROUTED_SERVERS = r"""
import socket, sys, threading
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 7400))
t.listen(8)
def serve(c):
    while c.recv(4096):
        c.sendall(b"ok")
    c.close()
def acc():
    while True:
        c, _ = t.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=acc, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 53))
while True:
    d, a = u.recvfrom(512)
    u.sendto(d, a)
"""

# C: one TCP connection carrying 12 requests 0.6 s apart (each answered), then 8 UDP
# requests 0.8 s apart from one socket (each answered); prints what came back.
ROUTED_CLIENT = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7400), timeout=5)
echoed = 0
for _ in range(12):
    c.sendall(b"request")
    if c.recv(16):
        echoed += 1
    time.sleep(0.6)
c.shutdown(socket.SHUT_WR)
c.recv(16)
c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
answers = 0
for i in range(8):
    u.sendto(b"query%d" % i, (sys.argv[1], 53))
    if u.recvfrom(512)[0] == b"query%d" % i:
        answers += 1
    time.sleep(0.8)
print("echoed", echoed, "answers", answers)
"""


if __name__ == "__main__":
    unittest.main()
