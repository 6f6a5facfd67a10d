"""Diagnosis rules (GET /api/v1/diagnosis, `netprobe diagnose`): each fault produced for
real in namespaces, each finding checked against a counter NetProbe did not write, and a
healthy baseline that produces none.

The agent runs in a "node" namespace with --socket-netns=own, so kernel drops and socket
events of the rest of the machine do not reach it; the client namespace is joined to it by
a veth.
"""

import json
import os
import subprocess
import time
import unittest

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

    def nstat(self, netns: str) -> dict:
        out = run(["nstat", "-az", "--json"], netns=netns).stdout
        return json.loads(out)["kernel"]

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

    def test_a_full_flow_table_is_netprobe_losing_data(self):
        agent = self.agent("--flow-table-size=16", "--security=off")
        run([PYTHON, "-c", "import socket,sys\nfor p in range(100):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           " s.sendto(b'x',(sys.argv[1],7300))", self.veth.host_ip], netns=self.veth.ns)
        f = self.finding(agent, "netprobe_data_loss", "flow_stats")
        m = agent.metrics()
        self.assertEqual(self.evidence(f, "lost"), m.get("netprobe_map_update_errors_total", map="flow_stats"))
        self.assertGreater(self.evidence(f, "lost"), 0)
        self.assertEqual(m.get("netprobe_diagnosis_findings", rule="netprobe_data_loss", severity="warning"), 1)


if __name__ == "__main__":
    unittest.main()
