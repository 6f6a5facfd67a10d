"""The cluster-wide topology from Prometheus (--topology-source=prometheus) and the Grafana
topology dashboard, against Debian's real Prometheus.

Two "nodes": network namespaces A and B joined by a veth, each with its own agent watching
its end. A real Prometheus (its own config and temporary data dir, 1 s scrapes, started and
stopped by PID here) in A scrapes both agents. UDP traffic both ways between the nodes: a
client in B to an echo server in A, and a client in A to an echo server in B.

Oracle: each client's own count of the datagrams it sent and got back, on the wire
(N x (14 + 20 + 8 + payload) bytes: the topology counts frames, Ethernet header included, as the
veth's own counters do). Both agents see every packet (one on
egress, the other on ingress), so an edge summed over the agents would be twice the client's
count; the cluster answer must equal one observation. Prometheus' increase() extrapolates to
the ends of its window, so the figures are compared within 5%. Each client first sends 3
datagrams and waits 4 s before the paced bulk: the edge's series then exists (at a tiny value)
before the bulk, so the bulk is fully inside increase() (a series' first sample is its
baseline). Then Prometheus is stopped: the same query answers with the node's own graph,
"source": "local" and the reason.

The dashboard (deploy/grafana/netprobe-topology-dashboard.json): it parses, every PromQL
expression in it is accepted by this Prometheus (its /api/v1/query, Grafana's variables
substituted), every netprobe_* metric it names is in a real agent's /metrics, and its Node
Graph queries' URL, asked of the agent, returns the frames with every field the panel's
columns select.
"""

import json
import os
import re
import subprocess
import time
import unittest
import urllib.parse

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, http_request, log, require_tools, run, wait_for, \
    wait_line
from test_flow_export import SERVER

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana",
                         "netprobe-topology-dashboard.json")
PORT_A, PORT_B = 7001, 7101  # the echo servers (UDP) in A and B

# argv: host, port, source port, datagrams, payload bytes, seconds. One socket (one 5-tuple):
# 3 datagrams 1.1 s apart, 2 s pause, then the datagrams paced evenly over the seconds; each echo
# awaited (0.5 s). Prints {"sent", "echoed", "size"}.
SENDER = r"""
import json, socket, sys, time
host, port, sport, n, size, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", sport))
s.settimeout(0.5)
s.connect((host, port))
sent = echoed = 0
def one():
    global sent, echoed
    s.send(b"p" * size)
    sent += 1
    try:
        s.recv(65536)
        echoed += 1
    except socket.timeout:
        pass
for _ in range(3):  # in three collections over 2 s or more: the edge is established, its series exists
    one()
    time.sleep(1.1)
time.sleep(2)
t0 = time.monotonic()
for i in range(n):
    delay = t0 + i * secs / n - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    one()
print(json.dumps({"sent": sent, "echoed": echoed, "size": size}), flush=True)
"""


class TopologyPrometheusTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(PROMETHEUS, PROMTOOL, PYTHON, "curl")

    def setUp(self) -> None:
        self.node_a = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node_a)  # host end in A, peer end in B
        self.node_b = self.veth.ns
        self.prom_port = free_port(self.node_a)

    def agent(self, ifname: str, netns: str, prom_host: str, *extra: str):
        return self.start_agent(f"--interface-filter={ifname}", "--collect-interval=500ms", "--security=off",
                                "--topology-source=prometheus", f"--prometheus-url=http://{prom_host}:{self.prom_port}",
                                *extra, netns=netns, address="0.0.0.0")

    def start_prometheus(self, targets: list[str]):
        work = self.tmpdir()
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: netprobe
    static_configs:
      - targets: {json.dumps(targets)}
""")
        self.assertEqual(run([PROMTOOL, "check", "config", cfg], check=False).returncode, 0)
        prom = self.spawn([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(work, 'data')}",
                           f"--web.listen-address=0.0.0.0:{self.prom_port}"], netns=self.node_a,
                          log_name="prometheus.log", name="prometheus")
        wait_for(lambda: prom.running() and http_request(self.prom_port, "/-/ready", netns=self.node_a)[0] == 200, 60,
                 "Prometheus to become ready")
        return prom

    def promql(self, expr: str) -> tuple[int, dict]:
        status, _, body = http_request(self.prom_port, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}),
                                       netns=self.node_a)
        return status, json.loads(body)

    def topology(self, agent, **params) -> dict:
        code, _, body = agent.request("/api/v1/topology?" + urllib.parse.urlencode(params))
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def test_cluster_graph_from_prometheus_once_per_edge_with_fallback_and_the_dashboard(self):
        v = self.veth
        a = self.agent(v.host, self.node_a, "127.0.0.1", "--l7=on")
        b = self.agent(v.peer, self.node_b, v.host_ip)
        prom = self.start_prometheus([f"127.0.0.1:{a.port}", f"{v.peer_ip}:{b.port}"])
        instances = sorted([f"127.0.0.1:{a.port}", f"{v.peer_ip}:{b.port}"])
        try:
            wait_for(lambda: len([r for r in self.promql('up{job="netprobe"} == 1')[1]["data"]["result"]]) == 2, 60,
                     "both agents up in Prometheus")
        except AssertionError as e:
            raise AssertionError(f"{e}\nprometheus log:\n{prom.output()[-3000:]}") from None

        servers = []
        for ns, ip, port in ((self.node_a, v.host_ip, PORT_A), (self.node_b, v.peer_ip, PORT_B)):
            s = self.spawn([PYTHON, "-c", SERVER, ip, str(port), "1", "1"], netns=ns, stdout=subprocess.PIPE,
                           name="server")
            wait_line(s, b"READY", 10)
            servers.append(s)
        # B -> A:7001 (600 datagrams of 400 B) and A -> B:7101 (300 of 700 B), 12 s each
        clients = [
            self.spawn([PYTHON, "-c", SENDER, v.host_ip, str(PORT_A), "23001", "600", "400", "12"], netns=self.node_b,
                       stdout=subprocess.PIPE, name="sender"),
            self.spawn([PYTHON, "-c", SENDER, v.peer_ip, str(PORT_B), "23002", "300", "700", "12"], netns=self.node_a,
                       stdout=subprocess.PIPE, name="sender"),
        ]
        counts = []
        for c in clients:
            self.assertEqual(c.wait(60), 0)
            counts.append(json.loads(c.p.stdout.read().decode().strip().splitlines()[-1]))
        log(f"client counts: {counts}")
        expected = {
            (v.peer_ip, v.host_ip, PORT_A): counts[0],
            (v.host_ip, v.peer_ip, PORT_B): counts[1],
        }
        time.sleep(15)  # the counters settled, and flat samples after them (increase() extrapolates)

        last = {}

        def cluster_edges():
            topo = self.topology(a, source="prometheus", window="5m", protocol="udp")
            last["topo"] = topo
            self.assertEqual(topo["source"], "prometheus", topo)
            edges = {(e["source"], e["target"], e["port"]): e for e in topo["edges"]}
            return edges if all(k in edges and edges[k]["observed_by"] == instances for k in expected) else None
        try:
            edges = wait_for(cluster_edges, 30, "both UDP edges in the cluster answer, seen by both agents", interval=1)
        except AssertionError:
            log(f"last answer: {json.dumps(last.get('topo'))[:3000]}")
            raise
        log(f"cluster answer from Prometheus: {json.dumps([edges[k] for k in expected])}")
        for key, c in expected.items():
            e = edges[key]
            ip_bytes = 14 + 20 + 8 + c["size"]  # the topology counts frames: Ethernet + IPv4 + UDP + payload
            self.assertWithin(e["bytes_out"], c["sent"] * ip_bytes, 0.05, f"{key} bytes to the server")
            self.assertWithin(e["bytes_in"], c["echoed"] * ip_bytes, 0.05, f"{key} bytes to the client")
            self.assertWithin(e["packets_out"], c["sent"], 0.05, f"{key} packets to the server")
            self.assertWithin(e["packets_in"], c["echoed"], 0.05, f"{key} packets to the client")
            self.assertEqual(e["transport"], "udp")
            # direction from the connection: no edge from the server to the client's port
            self.assertNotIn((key[1], key[0], 23001 if key[2] == PORT_A else 23002), edges)
        nodes = {n["id"]: n for n in last["topo"]["nodes"]}
        self.assertTrue(nodes[v.peer_ip]["client"] and nodes[v.peer_ip]["server"], nodes)
        self.assertEqual(nodes[v.host_ip]["kind"], "host")
        # segments over the cluster graph: the two hosts talk to each other (and no one
        # else), so they are one community, and grouped by segment nothing crosses segments
        self.assertEqual(nodes[v.peer_ip]["segment"], nodes[v.host_ip]["segment"])
        self.assertTrue(nodes[v.host_ip]["segment"].startswith("cluster:"), nodes)
        seg = self.topology(a, source="prometheus", window="5m", protocol="udp", group_by="segment")
        self.assertEqual((seg["source"], seg["group_by"], seg["edges"]), ("prometheus", "segment", []), seg)

        # the Node Graph frames of the cluster graph
        ng = self.topology(a, source="prometheus", window="5m", format="nodegraph")
        self.assertTrue(ng["nodes"] and ng["edges"], ng)
        for n in ng["nodes"]:
            self.assertLessEqual({"id", "title", "subTitle", "mainStat", "secondaryStat", "arc__ok", "arc__errors"},
                                 set(n), n)
            self.assertAlmostEqual(n["arc__ok"] + n["arc__errors"], 1.0, places=6)
        for e in ng["edges"]:
            self.assertLessEqual({"id", "source", "target", "mainStat", "secondaryStat"}, set(e), e)
        self.assertIn(f"{v.peer_ip}->{v.host_ip}:{PORT_A}/udp", {e["id"] for e in ng["edges"]})

        # every agent exports the edges it saw, each with its own series, and the budget's "other"
        m = b.metrics()
        self.assertGreater(m.get("netprobe_topology_edge_bytes_total", source=v.peer_ip, target=v.host_ip,
                                 port=str(PORT_A), transport="udp", direction="to_server"), 0)
        self.assertEqual(len(m.find("netprobe_topology_edge_bytes_total", source="other")), 2)
        metrics_text = a.request("/metrics")[2]
        p = run([PROMTOOL, "check", "metrics"], check=False, input=metrics_text)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        self.check_dashboard(a, metrics_text)

        # bad parameters for this source
        code, _, body = b.request("/api/v1/topology?source=prometheus&group_by=pod")
        self.assertEqual(code, 400, body)
        self.assertIn("group_by", body)

        # Prometheus away: this node's graph, and why; then not retried within 15 s
        self.assertEqual(prom.stop(), 0, prom.output()[-3000:])
        t0 = time.monotonic()
        topo = self.topology(a, source="prometheus", window="5m")
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(topo["source"], "local", topo)
        self.assertIn(f"prometheus http://127.0.0.1:{self.prom_port}", topo["fallback"])
        self.assertIn((v.peer_ip, v.host_ip, PORT_A), {(e["source"], e["target"], e["port"]) for e in topo["edges"]})
        log(f"fallback: {topo['fallback']}")
        again = self.topology(a, source="prometheus", window="5m")
        self.assertEqual(again["source"], "local")
        self.assertIn("not retried", again["fallback"])
        m = a.metrics()
        self.assertGreater(m.get("netprobe_topology_prometheus_queries_total", result="ok"), 0)
        self.assertGreaterEqual(m.get("netprobe_topology_prometheus_queries_total", result="error"), 1)
        self.assertGreaterEqual(m.get("netprobe_topology_prometheus_queries_total", result="skipped"), 1)
        for s in servers:
            s.stop()
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def check_dashboard(self, agent, metrics_text: str) -> None:
        with open(DASHBOARD) as f:
            dash = json.load(f)
        families = set()
        for line in metrics_text.splitlines():
            if line.startswith("# TYPE "):
                families.add(line.split()[2])
        subst = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s", "$instance": ".*"}

        def grafana(expr: str) -> str:
            for k, val in subst.items():
                expr = expr.replace(k, val)
            self.assertNotIn("$", expr, f"unsubstituted variable in {expr}")
            return expr

        exprs = []
        variables = {t["name"]: t for t in dash["templating"]["list"]}
        for t in variables.values():
            if t["type"] == "query":
                q = t["query"]["query"] if isinstance(t["query"], dict) else t["query"]
                m = re.fullmatch(r"label_values\((\w+), *\w+\)", q)
                self.assertIsNotNone(m, q)
                exprs.append(m.group(1))
        node_graphs = []
        for p in dash["panels"]:
            if p["type"] == "row":
                continue
            if p["type"] == "nodeGraph":
                node_graphs.append(p)
                continue
            for t in p["targets"]:
                exprs.append(grafana(t["expr"]))
        self.assertGreaterEqual(len(exprs), 10)
        for expr in exprs:
            status, res = self.promql(expr)
            self.assertEqual((status, res.get("status")), (200, "success"), f"{expr}: {res}")
            for name in set(re.findall(r"\bnetprobe_[a-z0-9_]+", expr)):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertTrue(name in families or base in families, f"{name} (in {expr}) is not in /metrics")
        log(f"dashboard: {len(exprs)} PromQL expressions accepted by Prometheus, their metrics in /metrics")

        # the Node Graph panel: two Infinity queries of the agent's nodegraph frames
        self.assertEqual(len(node_graphs), 1)
        values = {"agent": f"http://127.0.0.1:{agent.port}", "topology_source": "prometheus", "window": "5m",
                  "group_by": "workload"}
        for name in values:
            self.assertIn(name, variables)
        formats = set()
        for t in node_graphs[0]["targets"]:
            self.assertEqual((t["datasource"]["type"], t["type"], t["source"]),
                             ("yesoreyeram-infinity-datasource", "json", "url"))
            formats.add(t["format"])
            url = t["url"]
            params = {}
            for p in t["url_options"]["params"]:
                params[p["key"]] = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], p["value"])
            url = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], url)
            path = urllib.parse.urlsplit(url).path + "?" + urllib.parse.urlencode(params)
            code, _, body = agent.request(path)
            self.assertEqual(code, 200, f"{path}: {body}")
            rows = json.loads(body)[t["root_selector"]]
            self.assertTrue(rows, f"{path}: no {t['root_selector']}")
            for r in rows:
                for c in t["columns"]:
                    self.assertIn(c["selector"], r, f"{path}: {t['root_selector']} row without {c['selector']}")
        self.assertEqual(formats, {"node-graph-nodes", "node-graph-edges"})

    def test_bad_prometheus_flags_are_one_line_and_exit_2(self):
        for args in (["--topology-source=prometheus"], ["--topology-source=cluster"],
                     ["--topology-source=prometheus", "--prometheus-url=ftp://127.0.0.1:9090"],
                     ["--topology-source=prometheus", "--prometheus-url=http://127.0.0.1:9090?x=1"],
                     ["--prometheus-url=http://127.0.0.1:9090", "--prometheus-ca-file=/nonexistent/ca.crt"],
                     ["--topology-edge-series=1000001"]):
            p = run([AGENT] + args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
            out = (p.stderr + p.stdout).strip()
            self.assertEqual(len(out.splitlines()), 1, out)
            self.assertTrue("prometheus" in out or "topology" in out, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
