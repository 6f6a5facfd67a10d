"""Topology (GET /api/v1/topology) and the web UI (/ui/) against known traffic.

A "node" namespace routes between three client namespaces and two server namespaces,
each on its own veth; the agent in the node namespace watches the five host ends. The
clients run iperf3 against the servers' iperf3 (fixed byte counts, some reversed), so
the expected edges - which client talks to which server, in which direction - are known,
and each edge's bytes are checked against the veths' own counters: a client's host veth
receives exactly what the client sent (its edges' bytes_out) and transmits what it
received (bytes_in). Offloads are off on every veth so the kernel counts wire frames,
as the datapath does. Every packet crosses two watched veths; it must count once.

The UI test drives Debian's Chromium with playwright-core (tests/e2e/ui_check.cjs,
from the build's ui/node_modules) against the same agent: the page's data model shows
the expected nodes and edges, a new connection appears within two collections, clicking
an edge lists its flows, the edge table is keyboard-operable, and the console stays
clean. Screenshots are kept under build/test-artifacts/ and docs/images/.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

from netprobe_e2e import AGENT, E2ETestCase, kernel_stats, log, require_tools, run, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("NETPROBE_BUILD_DIR") or os.path.join(REPO, "build")
UI_CHECK = os.path.join(os.path.dirname(__file__), "ui_check.cjs")
CHROMIUM = "/usr/bin/chromium"
MB = 1 << 20
# a TCP sink: reads each connection to its end
SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept()
    while c.recv(65536):
        pass
    c.close()
"""
# a TCP client: the wall-clock time just before connect() (its SYN), then 64 KiB
CLIENT = """
import json, socket, sys, time
t0 = time.time()
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(b"x" * 65536)
c.close()
print(json.dumps({"t0": t0}))
"""


class TopologyTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("iperf3", "ethtool")

    def setUp(self) -> None:
        self.node = self.make_netns()
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=self.node)
        self.clients = [self.endpoint() for _ in range(3)]
        self.servers = [self.endpoint() for _ in range(2)]
        for s in self.servers:
            self.spawn(["iperf3", "-s", "-B", s.peer_ip, "-p", "5201"], netns=s.ns, name="iperf3-server")
        for s in self.servers:
            wait_for(lambda s=s: run(["ss", "-Hltn", "sport = :5201"], netns=s.ns).stdout.strip(), 10,
                     "iperf3 to listen")

    def endpoint(self):
        v = self.make_veth(host_ns=self.node)
        run(["ip", "route", "add", "default", "via", v.host_ip], netns=v.ns)
        for ifname, ns in ((v.host, self.node), (v.peer, v.ns)):
            run(["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"], netns=ns, check=False)
        return v

    def agent(self, *extra):
        ifs = ",".join(v.host for v in self.clients + self.servers)
        return self.start_agent(f"--interface-filter={ifs}", "--collect-interval=500ms", "--xdp-mode=off",
                                *(extra or ("--socket-netns=own",)), netns=self.node)

    def iperf(self, client, server, nbytes: int, reverse: bool = False, report: dict | None = None) -> int:
        args = ["iperf3", "-c", server.peer_ip, "-p", "5201", "-n", str(nbytes), "-J"]
        if reverse:
            args.append("-R")
        out = json.loads(run(args, netns=client.ns, timeout=60).stdout)
        self.assertNotIn("error", out, out.get("error"))
        if report is not None:
            report.update(out)
        # What the receiving end read: iperf3's server closes the data connection when
        # the control connection says the test ended, and the sender's kernel discards
        # what was still queued in its send buffer (a loaded machine: a third of it), so
        # the nominal size is not what crossed the wire.
        return int(out["end"]["sum_received"]["bytes"])

    def topology(self, agent, **params) -> dict:
        q = "&".join(f"{k}={v}" for k, v in {"window": "15m", **params}.items())
        return agent.get_json(f"/api/v1/topology?{q}")

    def test_edges_directions_and_bytes_match_the_veths(self):
        agent = self.agent()
        agent.wait_collections(2)
        before = {v.host: kernel_stats(v.host, self.node) for v in self.clients + self.servers}
        c, s = self.clients, self.servers
        pairs = [(c[0], s[0], False), (c[1], s[0], True), (c[2], s[1], False), (c[0], s[1], True)]
        received = [self.iperf(client, server, 2 * MB, rev) for client, server, rev in pairs]
        log(f"iperf3 received: {received}")
        agent.wait_collections(3)
        after = {v.host: kernel_stats(v.host, self.node) for v in self.clients + self.servers}

        topo = self.topology(agent)
        ours = {v.peer_ip for v in self.clients + self.servers}
        edges = {(e["source"], e["target"], e["port"]): e for e in topo["edges"]
                 if e["source"] in ours or e["target"] in ours}
        want = {(cl.peer_ip, sv.peer_ip, 5201) for cl, sv, _ in pairs}
        log(f"edges: {sorted(edges)}")
        self.assertEqual(set(edges), want)
        for e in edges.values():
            self.assertEqual((e["transport"], e["conversations"]), ("tcp", 1))  # iperf3's connections: one conversation
        for (cl, sv, rev), got in zip(pairs, received):
            e = edges[(cl.peer_ip, sv.peer_ip, 5201)]
            heavy, light = ("bytes_in", "bytes_out") if rev else ("bytes_out", "bytes_in")
            # enough to tell the directions apart (a loaded machine discards much of the
            # 2 MiB from the sender's buffer at the end, see iperf(): CI once saw 472856 B
            # arrive; the ACKs of even 128 KiB are far below a tenth of it)
            self.assertGreater(got, MB // 8, "iperf3 moved less than 128 KiB")
            self.assertGreater(e[heavy], got, e)  # the payload the receiver read, plus headers
            self.assertLess(e[light], e[heavy] / 10, e)
        for v in self.clients:
            d = {k: after[v.host][k] - before[v.host][k] for k in after[v.host]}
            mine = [e for e in edges.values() if e["source"] == v.peer_ip]
            out, inn = sum(e["bytes_out"] for e in mine), sum(e["bytes_in"] for e in mine)
            log(f"client {v.peer_ip}: edges out {out} B / in {inn} B; its host veth rx {d['rx_bytes']} B / "
                f"tx {d['tx_bytes']} B")
            # the veth also counts ARP and IPv6 control frames, which no conversation carries
            self.assertWithin(out, d["rx_bytes"], 0.01, f"{v.peer_ip} bytes sent")
            self.assertWithin(inn, d["tx_bytes"], 0.01, f"{v.peer_ip} bytes received")
            self.assertLessEqual(out, d["rx_bytes"])
            self.assertLessEqual(inn, d["tx_bytes"])
        for v in self.servers:
            d = {k: after[v.host][k] - before[v.host][k] for k in after[v.host]}
            mine = [e for e in edges.values() if e["target"] == v.peer_ip]
            self.assertWithin(sum(e["bytes_out"] for e in mine), d["tx_bytes"], 0.01, f"{v.peer_ip} bytes received")
            self.assertWithin(sum(e["bytes_in"] for e in mine), d["rx_bytes"], 0.01, f"{v.peer_ip} bytes sent")

        # The command line over the same API
        cli = [os.path.join(os.path.dirname(AGENT), "netprobe"), f"--server=http://127.0.0.1:{agent.port}"]
        doc = json.loads(run([*cli, "topology", "--window=15m", "-o", "json"], netns=self.node).stdout)
        self.assertTrue({(e["source"], e["target"], e["port"]) for e in doc["edges"]} >= want)
        table = run([*cli, "topology", "--window=15m"], netns=self.node).stdout
        log(table)
        self.assertTrue(all(a in table and b in table for a, b, _ in want))

        # Grouping and filters; the Node Graph frames; bad parameters
        ng = self.topology(agent, format="nodegraph")
        self.assertTrue({(e["source"], e["target"]) for e in ng["edges"]} >= {(a, b) for a, b, _ in want})
        self.assertTrue(all({"id", "title", "mainStat", "arc__ok", "arc__errors"} <= set(n) for n in ng["nodes"]))
        self.assertEqual(self.topology(agent, protocol="udp")["edges"], [])
        code, _, body = agent.request("/api/v1/topology?group_by=rack")
        self.assertEqual(code, 400, body)
        self.assertIn("group_by", body)

    def test_ui_in_chromium(self):
        require_tools(CHROMIUM, "node", "nmap")
        modules = os.path.join(BUILD, "ui", "node_modules")
        self.assertTrue(os.path.isdir(os.path.join(modules, "playwright-core")), f"{modules}: build first")
        # Sockets of every namespace (the clients' and servers' connections are in theirs; the
        # page lists them by address and port, which are this process's own); intervals of 1 s
        # and the shortest learning (16 intervals) so that the anomaly models judge within the test.
        agent = self.agent("--socket-netns=all", "--series-step=1s", "--anomaly-learning=16")
        agent.wait_collections(2)
        c, s = self.clients, self.servers
        # s[1] is busy for 22 s of 1 s intervals (UDP, 200 kbit/s): its behaviour profile learns
        # (16 intervals) while the other transfers run
        udp = self.spawn(["iperf3", "-c", s[1].peer_ip, "-p", "5201", "-u", "-b", "200k", "-t", "22"], netns=c[2].ns,
                         name="iperf3-udp")
        first = {}
        self.iperf(c[0], s[0], 4 * MB, report=first)
        self.iperf(c[1], s[0], 1 * MB, reverse=True)
        udp.wait(timeout=60)
        # a port scan after the learning (the agent's security analytics raise an event the page
        # lists; the servers' RSTs are new ports that s[1] "served": a behaviour anomaly of s[1])
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-40", "--max-retries", "0", s[1].peer_ip], netns=c[2].ns, timeout=60)
        self.iperf(c[2], s[1], 1 * MB)
        agent.wait_collections(2)
        anomaly = wait_for(lambda: next((a for a in agent.get_json("/api/v1/anomalies?scope=entity")["events"]
                                         if a["subject"] == s[1].peer_ip), None), 15, f"an anomaly of {s[1].peer_ip}")
        log(f"anomaly: {anomaly['summary']}")
        # a listener for the new connection made while the page is open
        self.spawn([sys.executable, "-c", SINK, s[0].peer_ip, "7000"], netns=s[0].ns, name="sink")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :7000"], netns=s[0].ns).stdout.strip(), 10, "the sink to listen")
        out_dir = self.tmpdir()
        expect = {"edges": [[c[0].peer_ip, s[0].peer_ip], [c[1].peer_ip, s[0].peer_ip], [c[2].peer_ip, s[1].peer_ip]],
                  # the client's own data connection of the first edge (iperf3's report)
                  "edge_client_ports": [first["start"]["connected"][0]["local_port"]],
                  # made while the page is open: it must appear within two collections
                  "new_edge": [c[2].peer_ip, s[0].peer_ip],
                  "event_src": c[2].peer_ip,
                  "keyboard_node": s[1].peer_ip,
                  "anomaly_subject": s[1].peer_ip,
                  # each step changes the controls named; the page must then show the API's answer
                  "filters": [{"name": "udp", "set": {"protocol": "udp"}},
                              {"name": "segments", "set": {"protocol": "", "group_by": "segment"}},
                              {"name": "service", "set": {"group_by": "service", "window": "1m"}},
                              {"name": "no-such-namespace", "set": {"group_by": "host", "namespace": "nosuchns"}},
                              {"name": "all", "set": {"namespace": "", "window": "5m"}}]}
        page = subprocess.Popen(
            ["ip", "netns", "exec", self.node, "node", UI_CHECK, f"http://127.0.0.1:{agent.port}/ui/", out_dir,
             json.dumps(expect)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NODE_PATH": modules, "CHROMIUM": CHROMIUM})
        self.defer("ui_check", lambda: page.poll() is None and page.kill())
        # the page tells when it has the first graph; then the new connection is made and the
        # page told the wall-clock time just before its first packet (the SYN of connect())
        line = page.stdout.readline()
        self.assertEqual(line.strip(), "READY", line + page.stderr.read() if page.poll() is not None else line)
        sent = json.loads(run([sys.executable, "-c", CLIENT, s[0].peer_ip, "7000"], netns=c[2].ns).stdout)
        stdout, stderr = page.communicate(input=f"{sent['t0'] * 1000:.0f}\n", timeout=180)
        log(f"ui_check: {stdout.strip()}")
        if stderr.strip():
            log(f"ui_check stderr: {stderr.strip()[:2000]}")
        self.assertEqual(page.returncode, 0, stdout + stderr)
        res = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual(res["console_errors"], [])
        self.assertTrue(res["edges_found"], res)
        # From the new connection's first packet to the page drawing its edge: the flow is read
        # at the next collection (<= 500 ms), the topology view of that collection published,
        # and, at most, the next one (two collections: 1000 ms); then the UI's latency: with
        # the stream, the diff's push and the page's render (budget 500 ms on this shared
        # 2-CPU machine); without it, the page's 1 s poll (plus the same 500 ms).
        # Measured: 462 and 482 ms through the stream (two runs, the machine shared with builds).
        budget = 2 * 500 + (500 if res["new_edge_via"] == "stream" else 1000 + 500)
        log(f"new edge drawn {res['new_edge_after_ms']} ms after its first packet (via {res['new_edge_via']}, "
            f"budget {budget} ms)")
        self.assertGreaterEqual(res["new_edge_after_ms"], 0, res)
        self.assertLessEqual(res["new_edge_after_ms"], budget, res)
        self.assertGreater(res["flows_listed"], 0, res)
        self.assertGreater(res["edge_details"]["connections"], 0, res)
        # the edge's new_boundary_edge event (the /30s are distinct subnets of the node)
        self.assertTrue(any(e.startswith("event:") for e in res["edge_details"]["events"]), res)
        self.assertTrue(res["keyboard_selects"], res)
        self.assertTrue(res["keyboard_node_selects"], res)
        self.assertIn(f"anomaly:{anomaly['id']}", res["node_details"]["events"], res)
        self.assertIn(s[1].peer_ip, res["anomaly_badged"], res)
        self.assertEqual(res["heat_interfaces"], len(self.clients + self.servers), res)
        self.assertTrue(res["event_highlighted"], res)
        # the page follows the server-sent stream (a snapshot, then diffs) rather than polling
        self.assertGreaterEqual(res["stream"]["snapshots"], 1, res)
        self.assertGreaterEqual(res["stream"]["diffs"], 1, res)
        # the filters (each step equals the API's answer; here what those answers must be)
        fl = res["filters"]
        log(f"filters: { {k: (len(v['edges']), v['node_kinds']) for k, v in fl.items()} }")
        self.assertIn(f"{c[2].peer_ip}>{s[1].peer_ip}:5201/udp", fl["udp"]["edges"])
        self.assertTrue(all(e.endswith("/udp") for e in fl["udp"]["edges"]), fl["udp"])
        self.assertEqual(fl["segments"]["node_kinds"], ["segment"])
        self.assertGreater(len(fl["segments"]["edges"]), 0)
        self.assertGreater(len(fl["service"]["edges"]), 0)
        self.assertEqual(fl["no-such-namespace"]["edges"], [])
        self.assertIn(f"{c[0].peer_ip}>{s[0].peer_ip}:5201/tcp", fl["all"]["edges"])
        # keep the screenshots: the build's artifacts and the README's picture
        arts = os.path.join(BUILD, "test-artifacts")
        os.makedirs(arts, exist_ok=True)
        for f in os.listdir(out_dir):
            if f.endswith(".png"):
                shutil.copy(os.path.join(out_dir, f), arts)
        if os.environ.get("NETPROBE_UPDATE_SCREENSHOTS"):
            shutil.copy(os.path.join(out_dir, "topology.png"), os.path.join(REPO, "docs", "images", "ui-topology.png"))

    def test_dns_named_remote_end(self):
        # With --l7=on the DNS answers the agent's namespace receives name the addresses they
        # resolve: dnsmasq (own records, no upstream) in one endpoint namespace answers
        # web.np.test with a server's address; dig asks it from the agent's namespace, then
        # iperf3 there talks to that address. The oracle is dig's own answer.
        require_tools("dnsmasq", "dig")
        dns, server, other = self.clients[0], self.servers[0], self.servers[1]
        d = self.tmpdir()
        self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
                    f"--listen-address={dns.peer_ip}", "--bind-interfaces", "--port=53", "--user=root",
                    f"--pid-file={d}/dnsmasq.pid", "--log-facility=-", "--local=/np.test/",
                    f"--address=/web.np.test/{server.peer_ip}", "--local-ttl=120"],
                   netns=dns.ns, name="dnsmasq", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: run(["dig", f"@{dns.peer_ip}", "+time=1", "+tries=1", "web.np.test"], netns=self.node,
                             check=False).returncode == 0, 10, "dnsmasq to answer")
        agent = self.agent("--socket-netns=own", "--l7=on")
        agent.wait_collections(2)
        answer = run(["dig", f"@{dns.peer_ip}", "+time=2", "+tries=1", "+short", "web.np.test", "A"],
                     netns=self.node).stdout.split()
        self.assertEqual(answer, [server.peer_ip])  # dig's own answer
        for v in (server, other):
            out = json.loads(run(["iperf3", "-c", v.peer_ip, "-p", "5201", "-n", str(256 * 1024), "-J"],
                                 netns=self.node, timeout=60).stdout)
            self.assertNotIn("error", out, out.get("error"))

        def nodes():
            topo = self.topology(agent)
            served = {e["target"] for e in topo["edges"] if e["port"] == 5201}
            return {n["id"]: n for n in topo["nodes"] if n["id"] in served}

        got = wait_for(lambda: (n := nodes()) and server.peer_ip in n and other.peer_ip in n and
                       n[server.peer_ip]["name"] == "web.np.test" and n, 10, "the server's node named by DNS")
        log(f"named: {got[server.peer_ip]}; unnamed: {got[other.peer_ip]}")
        self.assertEqual(got[server.peer_ip]["kind"], "host")
        self.assertEqual(got[server.peer_ip]["ips"], [server.peer_ip])
        self.assertEqual(got[other.peer_ip]["name"], other.peer_ip)  # no answer named it
        # the DNS edge itself (the agent's namespace -> dnsmasq:53/udp) is there too, with its L7 protocol
        topo = self.topology(agent)
        self.assertTrue(any(e["target"] == dns.peer_ip and e["port"] == 53 and e.get("protocol") == "dns"
                            for e in topo["edges"]), topo["edges"])


if __name__ == "__main__":
    unittest.main()
