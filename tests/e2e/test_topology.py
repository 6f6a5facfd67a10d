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
import time
import unittest

from netprobe_e2e import AGENT, E2ETestCase, kernel_stats, log, require_tools, run, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("NETPROBE_BUILD_DIR") or os.path.join(REPO, "build")
UI_CHECK = os.path.join(os.path.dirname(__file__), "ui_check.cjs")
CHROMIUM = "/usr/bin/chromium"
MB = 1 << 20


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

    def agent(self):
        ifs = ",".join(v.host for v in self.clients + self.servers)
        return self.start_agent(f"--interface-filter={ifs}", "--collect-interval=500ms", "--xdp-mode=off",
                                "--socket-netns=own", netns=self.node)

    def iperf(self, client, server, nbytes: int, reverse: bool = False) -> int:
        args = ["iperf3", "-c", server.peer_ip, "-p", "5201", "-n", str(nbytes), "-J"]
        if reverse:
            args.append("-R")
        out = json.loads(run(args, netns=client.ns, timeout=60).stdout)
        self.assertNotIn("error", out, out.get("error"))
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
            # enough to tell the directions apart (a loaded machine discards up to half of
            # the 2 MiB from the sender's buffer at the end: see iperf())
            self.assertGreater(got, MB // 2, "iperf3 moved less than half a megabyte")
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
        agent = self.agent()
        agent.wait_collections(2)
        c, s = self.clients, self.servers
        self.iperf(c[0], s[0], 4 * MB)
        self.iperf(c[1], s[0], 1 * MB, reverse=True)
        self.iperf(c[2], s[1], 1 * MB)
        # a port scan (the agent's security analytics raise an event the page lists)
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-40", "--max-retries", "0", s[1].peer_ip], netns=c[2].ns, timeout=60)
        agent.wait_collections(2)
        out_dir = self.tmpdir()
        expect = {"edges": [[c[0].peer_ip, s[0].peer_ip], [c[1].peer_ip, s[0].peer_ip], [c[2].peer_ip, s[1].peer_ip]],
                  # made while the page is open: it must appear within two collections (1 s)
                  "new_edge": [c[2].peer_ip, s[0].peer_ip],
                  "event_src": c[2].peer_ip}
        page = subprocess.Popen(
            ["ip", "netns", "exec", self.node, "node", UI_CHECK, f"http://127.0.0.1:{agent.port}/ui/", out_dir,
             json.dumps(expect)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NODE_PATH": modules, "CHROMIUM": CHROMIUM})
        self.defer("ui_check", lambda: page.poll() is None and page.kill())
        # the page tells when it has the first graph; then the new connection is made
        line = page.stdout.readline()
        self.assertEqual(line.strip(), "READY", line + page.stderr.read() if page.poll() is not None else line)
        self.iperf(c[2], s[0], 1 * MB)
        stdout, stderr = page.communicate(timeout=120)
        log(f"ui_check: {stdout.strip()}")
        if stderr.strip():
            log(f"ui_check stderr: {stderr.strip()[:2000]}")
        self.assertEqual(page.returncode, 0, stdout + stderr)
        res = json.loads(stdout.strip().splitlines()[-1])
        self.assertEqual(res["console_errors"], [])
        self.assertTrue(res["edges_found"], res)
        # the new connection (an iperf3 run of ~0.3 s), two collections (1 s), the stream's diff (or one 1 s poll)
        self.assertLessEqual(res["new_edge_after_ms"], 4000, res)
        self.assertGreater(res["flows_listed"], 0, res)
        self.assertTrue(res["keyboard_selects"], res)
        self.assertEqual(res["heat_interfaces"], len(self.clients + self.servers), res)
        self.assertTrue(res["event_highlighted"], res)
        # the page follows the server-sent stream (a snapshot, then diffs) rather than polling
        self.assertGreaterEqual(res["stream"]["snapshots"], 1, res)
        self.assertGreaterEqual(res["stream"]["diffs"], 1, res)
        # keep the screenshots: the build's artifacts and the README's picture
        arts = os.path.join(BUILD, "test-artifacts")
        os.makedirs(arts, exist_ok=True)
        for f in os.listdir(out_dir):
            if f.endswith(".png"):
                shutil.copy(os.path.join(out_dir, f), arts)
        if os.environ.get("NETPROBE_UPDATE_SCREENSHOTS"):
            shutil.copy(os.path.join(out_dir, "topology.png"), os.path.join(REPO, "docs", "images", "ui-topology.png"))


if __name__ == "__main__":
    unittest.main()
