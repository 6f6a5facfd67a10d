"""Kubernetes attribution end to end: the agent against tests/k8s/fake_apiserver.py
(HTTPS, kubeconfig with a bearer token), two "pods" that are network namespaces on a
bridge (like a bridge CNI on one node), a Service backed by one of them (EndpointSlice).
Checks the pod fields of /api/v1/flows and its namespace= filter, /api/v1/pods, the
netprobe_pod_* series, and that a deleted pod's series disappear; the cost classes from
the Nodes' topology.kubernetes.io/zone labels and pod CIDRs."""

import json
import os
import select
import ssl
import subprocess
import time
import unittest
import urllib.request

from netprobe_e2e import AGENT, PID, PYTHON, E2ETestCase, log, require_tools, run, wait_for

FAKE_APISERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "k8s", "fake_apiserver.py")
TOKEN = "e2e-token"
NODE = "node-e2e"
SUBNET = f"198.18.{PID % 250}"
IP_UI, IP_WEB = f"{SUBNET}.11", f"{SUBNET}.12"
CLUSTER_IP = f"{SUBNET}.200"
PORT = 8080

# Runs in the web pod's namespace: accepts connections on PORT, reads to EOF, answers, closes.
SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("LISTENING", flush=True)
while True:
    c, _ = s.accept()
    while c.recv(65536):
        pass
    c.sendall(b"ok" * 500)
    c.close()
"""

# Runs in the ui pod's namespace: one connection, sends 3000 bytes, reads the answer.
CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(b"x" * 3000); c.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
"""


def pod(ns: str, name: str, ip: str, rs: str, node: str = NODE) -> dict:
    h = rs.rsplit("-", 1)[1]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}",
                         "labels": {"pod-template-hash": h},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                              "uid": f"uid-{rs}", "controller": True}]},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "example:1"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "containerStatuses": [{"name": "app", "ready": True,
                                              "containerID": "containerd://" + name.encode().hex().ljust(64, "0")[:64]}]}}


class FakeApiServer:
    def __init__(self, tc: E2ETestCase):
        self.dir = tc.tmpdir()
        self.proc = tc.spawn([PYTHON, FAKE_APISERVER, "--dir", self.dir, "--token", TOKEN], stdout=subprocess.PIPE,
                             name="fake_apiserver")
        tc.defer("fake API server's stdout", self.proc.p.stdout.close)
        line = b""
        deadline = time.monotonic() + 60
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if not self.proc.running():
                raise AssertionError("fake API server exited (needs python3 and openssl)")
            r, _, _ = select.select([self.proc.p.stdout], [], [], 0.2)
            if r:
                b = os.read(self.proc.p.stdout.fileno(), 256)
                if not b:
                    break
                line += b
        if not line.startswith(b"READY "):
            raise AssertionError(f"fake API server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.ssl = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))

    def control(self, cmd: str, body: dict) -> dict:
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}/control/{cmd}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def get(self, path: str) -> dict:
        req = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
            return json.loads(r.read())

    def kubeconfig(self) -> str:
        path = os.path.join(self.dir, "kubeconfig")
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: e2e\n"
                    f"clusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:{self.port}\n"
                    "    certificate-authority: ca.crt\n"
                    "contexts:\n- name: e2e\n  context: {cluster: fake, user: u}\n"
                    f"users:\n- name: u\n  user:\n    token: {TOKEN}\n")
        return path


class K8sTest(E2ETestCase):
    def setUp(self):
        require_tools("openssl")
        self.api = FakeApiServer(self)
        up = lambda res, obj: self.api.control("upsert", {"resource": res, "object": obj})
        up("pods", pod("frontend", "ui-7d9f8c6b5-abcde", IP_UI, "ui-7d9f8c6b5"))
        up("pods", pod("shop", "web-5f7c9d-xyz12", IP_WEB, "web-5f7c9d"))
        up("pods", pod("shop", "elsewhere-6b8d-q1w2e", f"{SUBNET}.13", "elsewhere-6b8d", node="node-other"))
        up("services", {"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "web", "namespace": "shop", "uid": "uid-svc-web"},
                        "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP],
                                 "ports": [{"name": "http", "port": PORT, "protocol": "TCP", "targetPort": PORT}]}})
        up("endpointslices", {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                              "metadata": {"name": "web-abc12", "namespace": "shop", "uid": "uid-es-web",
                                           "labels": {"kubernetes.io/service-name": "web"}},
                              "addressType": "IPv4",
                              "endpoints": [{"addresses": [IP_WEB], "conditions": {"ready": True}}],
                              "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]})
        br = self.make_bridge()
        self.ns_ui, self.veth_ui = self.make_pod_netns(br, IP_UI)
        self.ns_web, self.veth_web = self.make_pod_netns(br, IP_WEB)
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        env["NODE_NAME"] = NODE
        self.agent = self.start_agent(f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=300ms",
                                      f"--kubeconfig={self.api.kubeconfig()}", "--socket-monitor=off", env=env)

    def traffic(self) -> None:
        srv = self.spawn([PYTHON, "-c", SERVER, IP_WEB, str(PORT)], netns=self.ns_web, stdout=subprocess.PIPE,
                         name="web-server")
        self.defer("web server's stdout", srv.p.stdout.close)
        r, _, _ = select.select([srv.p.stdout], [], [], 30)
        self.assertTrue(r and srv.p.stdout.readline().startswith(b"LISTENING"), "test server did not start")
        for _ in range(3):
            out = run([PYTHON, "-c", CLIENT, IP_WEB, str(PORT)], netns=self.ns_ui).stdout.strip()
            self.assertEqual(out, "1000")

    def test_attribution(self):
        self.traffic()
        a = self.agent

        def attributed():
            fl = a.flows(src_ip=IP_UI, dst_ip=IP_WEB, dst_port=PORT, protocol="tcp")["flows"]
            return fl if fl and all(f.get("src_pod") for f in fl) else None

        flows = wait_for(attributed, 30, "flows ui -> web with pod fields")
        for f in flows:
            self.assertEqual(f["src_namespace"], "frontend")
            self.assertEqual(f["src_pod"], "ui-7d9f8c6b5-abcde")
            self.assertEqual(f["src_workload"], "ui")
            self.assertEqual(f["dst_namespace"], "shop")
            self.assertEqual(f["dst_pod"], "web-5f7c9d-xyz12")
            self.assertEqual(f["dst_workload"], "web")
            self.assertEqual(f["dst_service"], "web")
        # the reverse direction: the web pod answers (no Service on a source)
        back = a.flows(src_ip=IP_WEB, dst_ip=IP_UI, protocol="tcp")["flows"]
        self.assertTrue(back)
        for f in back:
            self.assertEqual((f["src_pod"], f["dst_pod"], f["src_workload"]), ("web-5f7c9d-xyz12", "ui-7d9f8c6b5-abcde", "web"))
            self.assertNotIn("dst_service", f)

        # namespace= matches either end; unknown namespaces match nothing
        ns_flows = a.flows(namespace="frontend", limit=1000)["flows"]
        self.assertTrue(ns_flows)
        for f in ns_flows:
            self.assertIn("frontend", (f.get("src_namespace"), f.get("dst_namespace")))
        self.assertEqual(a.flows(namespace="nowhere")["total"], 0)

        # pod= (NAME or NAMESPACE/NAME) matches either end's pod; `netprobe flows --pod` is it
        pod_flows = a.flows(pod="web-5f7c9d-xyz12", limit=1000)["flows"]
        self.assertTrue(pod_flows)
        for f in pod_flows:
            self.assertIn("web-5f7c9d-xyz12", (f.get("src_pod"), f.get("dst_pod")))
        self.assertEqual(len(a.flows(pod="shop/web-5f7c9d-xyz12", limit=1000)["flows"]), len(pod_flows))
        self.assertEqual(a.flows(pod="frontend/web-5f7c9d-xyz12")["total"], 0)  # another namespace's
        self.assertEqual(a.flows(pod="nope")["total"], 0)
        code, _, body = a.request("/api/v1/flows?pod=/web")
        self.assertEqual(code, 400, body)
        self.assertIn("pod", body)
        cli = os.path.join(os.path.dirname(AGENT), "netprobe")
        out = run([cli, f"--server=http://127.0.0.1:{a.port}", "-o", "json", "flows", "--pod", "shop/web-5f7c9d-xyz12",
                   "--limit", "1000"], check=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        cli_flows = json.loads(out.stdout)["flows"]
        self.assertTrue(cli_flows)
        for f in cli_flows:  # (flows may come and go between the two reads: each one is checked)
            self.assertIn(("shop", "web-5f7c9d-xyz12"), ((f.get("src_namespace"), f.get("src_pod")),
                                                         (f.get("dst_namespace"), f.get("dst_pod"))))
        bad = run([cli, f"--server=http://127.0.0.1:{a.port}", "flows", "--pod", "a/b/c"], check=False)
        self.assertEqual(bad.returncode, 2, bad.stderr)

        # /api/v1/pods: the two local pods (not the other node's), with their traffic
        doc = a.get_json("/api/v1/pods")
        self.assertTrue(doc["enabled"])
        self.assertTrue(doc["synced"])
        pods = {(p["namespace"], p["name"]): p for p in doc["pods"]}
        self.assertEqual(set(pods), {("frontend", "ui-7d9f8c6b5-abcde"), ("shop", "web-5f7c9d-xyz12")})
        ui, web = pods[("frontend", "ui-7d9f8c6b5-abcde")], pods[("shop", "web-5f7c9d-xyz12")]
        self.assertEqual(ui["ips"], [IP_UI])
        self.assertEqual((ui["workload"], ui["workload_kind"], ui["node"]), ("ui", "Deployment", NODE))
        self.assertEqual(ui["uid"], "uid-ui-7d9f8c6b5-abcde")
        # 3 x 3000 bytes of payload from ui, 3 x 1000 back (plus headers)
        self.assertGreater(ui["tx_bytes"], 9000)
        self.assertGreater(web["rx_bytes"], 9000)
        self.assertGreater(web["tx_bytes"], 3000)
        self.assertGreater(ui["rx_bytes"], 3000)
        self.assertEqual(ui["tx_packets"], web["rx_packets"])   # seen on both veths, counted once
        self.assertEqual(ui["tx_bytes"], web["rx_bytes"])

        # metrics: one series per local pod and direction
        m = a.metrics()
        self.assertGreater(m.get("netprobe_pod_tx_bytes_total", namespace="frontend", pod="ui-7d9f8c6b5-abcde"), 9000)
        self.assertGreater(m.get("netprobe_pod_rx_bytes_total", namespace="shop", pod="web-5f7c9d-xyz12"), 9000)
        self.assertGreater(m.get("netprobe_pod_rx_packets_total", namespace="frontend", pod="ui-7d9f8c6b5-abcde"), 0)
        self.assertEqual(m.find("netprobe_pod_tx_bytes_total", pod="elsewhere-6b8d-q1w2e"), [])
        self.assertEqual(len(m.find("netprobe_pod_tx_bytes_total")), 2)
        status, _, text = a.request("/metrics")
        p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), "promtool check metrics")

        # the ui pod goes away: its series and its /api/v1/pods entry go with it
        self.api.control("delete", {"resource": "pods", "uid": "uid-ui-7d9f8c6b5-abcde"})
        wait_for(lambda: not a.metrics().find("netprobe_pod_tx_bytes_total", pod="ui-7d9f8c6b5-abcde"), 30,
                 "the deleted pod's series to disappear")
        m = a.metrics()
        for name in ("netprobe_pod_rx_packets_total", "netprobe_pod_rx_bytes_total", "netprobe_pod_tx_packets_total",
                     "netprobe_pod_tx_bytes_total"):
            self.assertEqual(m.find(name, pod="ui-7d9f8c6b5-abcde"), [], name)
            self.assertEqual(len(m.find(name, pod="web-5f7c9d-xyz12")), 1, name)
        names = [p["name"] for p in a.get_json("/api/v1/pods")["pods"]]
        self.assertEqual(names, ["web-5f7c9d-xyz12"])
        fl = a.flows(src_ip=IP_UI, dst_ip=IP_WEB, dst_port=PORT)["flows"]
        self.assertTrue(fl)
        for f in fl:
            self.assertNotIn("src_pod", f)
            self.assertEqual(f["dst_pod"], "web-5f7c9d-xyz12")

    def test_cost_zones_from_node_labels(self):
        """Three Nodes: this one and node-peer in zone-a, node-other in zone-b, each with a
        /28 pod CIDR; two hosts on the bridge stand for pods of node-other and node-peer. The
        ui pod sends a known payload to each: /api/v1/cost puts the bytes to node-other's
        range in cross_zone and those to node-peer's in same_zone, with no --cost-config."""
        up = lambda obj: self.api.control("upsert", {"resource": "nodes", "object": obj})

        def node(name: str, zone: str, cidr: str, ip: str) -> dict:
            return {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"topology.kubernetes.io/zone": zone}},
                    "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                    "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}
        up(node(NODE, "zone-a", f"{SUBNET}.0/28", "198.19.250.1"))
        up(node("node-other", "zone-b", f"{SUBNET}.16/28", "198.19.250.2"))
        up(node("node-peer", "zone-a", f"{SUBNET}.32/28", "198.19.250.3"))
        far, near = f"{SUBNET}.20", f"{SUBNET}.40"
        br = run(["ip", "-o", "link", "show", self.veth_ui]).stdout.split("master ")[1].split()[0]
        for ip in (far, near):
            ns, _ = self.make_pod_netns(br, ip)
            srv = self.spawn([PYTHON, "-c", SERVER, ip, str(PORT)], netns=ns, stdout=subprocess.PIPE, name="server")
            self.defer("server's stdout", srv.p.stdout.close)
            r, _, _ = select.select([srv.p.stdout], [], [], 30)
            self.assertTrue(r and srv.p.stdout.readline().startswith(b"LISTENING"), "test server did not start")
        a = self.agent
        wait_for(lambda: a.get_json("/api/v1/cost").get("zone") == "zone-a", 30, "this node's zone from its label")
        sent = {}
        for ip, n in ((far, 2), (near, 3)):
            for _ in range(n):
                self.assertEqual(run([PYTHON, "-c", CLIENT, ip, str(PORT)], netns=self.ns_ui).stdout.strip(), "1000")
            sent[ip] = n * 3000

        def ui():
            doc = a.get_json("/api/v1/cost")
            e = next((x for x in doc["entities"] if x["entity"] == "frontend/ui"), None)
            ok = e and e["bytes_sent"]["cross_zone"] >= sent[far] and e["bytes_sent"]["same_zone"] >= sent[near]
            return (doc, e) if ok else None
        doc, e = wait_for(ui, 30, "the ui pod's bytes by zone class")
        log(f"cost of frontend/ui: sent {e['bytes_sent']} (payload {sent[far]} to zone-b, {sent[near]} to zone-a)")
        self.assertEqual(doc["zone_source"], "kubernetes")
        self.assertEqual(doc["cluster_nodes"], {"seen": 3, "with_zone": 3})
        # payload plus TCP/IP headers of a handful of packets per connection: well under 2x
        self.assertLess(e["bytes_sent"]["cross_zone"], 2 * sent[far])
        self.assertLess(e["bytes_sent"]["same_zone"], 2 * sent[near])
        self.assertEqual(e["bytes_sent"]["internet"], 0)
        self.assertEqual(e["bytes_sent"]["private"], 0)

    def test_kubernetes_off_and_on_without_config(self):
        """Without a configuration: auto runs without attribution, on refuses to start."""
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        a = self.start_agent(f"--interface-filter={self.veth_ui}", "--collect-interval=300ms", "--socket-monitor=off",
                             env=env)
        doc = a.get_json("/api/v1/pods")
        self.assertEqual((doc["enabled"], doc["pods"]), (False, []))
        self.assertEqual(a.metrics().find("netprobe_pod_tx_bytes_total"), [])
        self.assertIn("Kubernetes attribution off", a.output())
        p = subprocess.run([AGENT, "--k8s=on", f"--interface-filter={self.veth_ui}", "--socket-monitor=off"],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--k8s=on but no Kubernetes configuration", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)


if __name__ == "__main__":
    unittest.main()
