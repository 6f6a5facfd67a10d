"""Service mesh awareness end to end, with the traffic plumbing of an Istio sidecar: two "pods"
(network namespaces on a bridge, served by tests/k8s/fake_apiserver.py with an istio-proxy
container in their spec) get the nft REDIRECT rules Istio's init container writes (outbound
TCP to :15001 except the proxy's uid 1337, inbound TCP to :15006), and tests/e2e/mesh_proxy.py
stands in for envoy (outbound: the original destination over TLS with an Istio SNI; inbound:
TLS terminated, plaintext to the app from 127.0.0.6). The client makes N HTTP requests.

Checked against the client's own count: with L7 capture (--l7=on; --l7-tls=off, as envoy's
statically linked BoringSSL is not probed) each request is counted once per side (the app's
sockets), the sidecars' legs (2 per request) are recognised and not counted; the pods show
mesh=istio; the ui -> web:8080 edge is a mesh edge whose bytes are TLS (the ClientHello
captured at TC): mTLS.

Not tested against a real mesh: envoy itself, Istio's ambient mode (ztunnel, HBONE on
15008), Linkerd's proxy (its redirect ports are recognised the same way)."""

import os
import select
import subprocess
import unittest

import test_k8s
from netprobe_e2e import PID, PYTHON, E2ETestCase, log, require_tools, run, wait_for

NODE = "node-e2e"
SUBNET = f"198.18.{(PID + 3) % 250}"
IP_UI, IP_WEB = f"{SUBNET}.41", f"{SUBNET}.42"
N = 20
HERE = os.path.dirname(os.path.abspath(__file__))

CLIENT = r"""
import sys, urllib.request
ok = 0
for i in range(int(sys.argv[2])):
    with urllib.request.urlopen(f"http://{sys.argv[1]}:8080/items/{i}", timeout=10) as r:
        r.read()
        ok += r.status == 200
print(ok)
"""

APP = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"item"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H)
print("LISTENING", flush=True)
s.serve_forever()
"""


def mesh_pod(ns: str, name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {"app": name},
                         "annotations": {"sidecar.istio.io/status": "{}"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "example:1"},
                                                      {"name": "istio-proxy", "image": "istio/proxyv2:1.22"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


class MeshTest(E2ETestCase):
    def setUp(self):
        require_tools("openssl", "nft", "setpriv")
        self.api = test_k8s.FakeApiServer(self)
        up = lambda res, obj: self.api.control("upsert", {"resource": res, "object": obj})
        up("pods", mesh_pod("frontend", "ui", IP_UI))
        up("pods", mesh_pod("shop", "web", IP_WEB))
        br = self.make_bridge()
        self.ns_ui, veth_ui = self.make_pod_netns(br, IP_UI)
        self.ns_web, veth_web = self.make_pod_netns(br, IP_WEB)
        for ns in (self.ns_ui, self.ns_web):
            run(["ip", "link", "set", "lo", "up"], netns=ns)
        # Istio's init container rules: the proxy's own traffic (uid 1337) is not redirected
        run(["nft", "-f", "-"], netns=self.ns_ui, input="""
table ip npmesh {
  chain output { type nat hook output priority -100; policy accept;
    meta skuid 1337 return
    ip daddr 127.0.0.0/8 return
    tcp dport 8080 redirect to :15001
  }
}
""")
        run(["nft", "-f", "-"], netns=self.ns_web, input="""
table ip npmesh {
  chain prerouting { type nat hook prerouting priority -100; policy accept;
    tcp dport 8080 redirect to :15006
  }
}
""")
        d = self.tmpdir()
        os.chmod(d, 0o755)
        self.cert, self.key = os.path.join(d, "proxy.crt"), os.path.join(d, "proxy.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=web.shop.svc.cluster.local", "-keyout", self.key, "-out", self.cert],
                       check=True, capture_output=True)
        os.chmod(self.key, 0o644)
        self.serve(["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", PYTHON,
                    os.path.join(HERE, "mesh_proxy.py"), "--cert", self.cert, "--key", self.key], self.ns_ui, "ui-sidecar")
        self.serve(["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", PYTHON,
                    os.path.join(HERE, "mesh_proxy.py"), "--cert", self.cert, "--key", self.key], self.ns_web,
                   "web-sidecar")
        self.serve([PYTHON, "-c", APP], self.ns_web, "web-app")
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        env["NODE_NAME"] = NODE
        self.agent = self.start_agent(f"--interface-filter={veth_ui},{veth_web}", "--collect-interval=300ms",
                                      f"--kubeconfig={self.api.kubeconfig()}", "--l7=on", "--l7-tls=off", env=env)

    def serve(self, argv: list[str], ns: str, name: str) -> None:
        p = self.spawn(argv, netns=ns, stdout=subprocess.PIPE, name=name)
        self.defer(f"{name}'s stdout", p.p.stdout.close)
        r, _, _ = select.select([p.p.stdout], [], [], 30)
        self.assertTrue(r and p.p.stdout.readline().startswith(b"LISTENING"), f"{name} did not start")

    def http(self, m, side: str, service: str) -> int:
        # the capture is machine-wide: the test's own scrapes of the agent are HTTP too
        return int(sum(s.value for s in m.find("netprobe_l7_requests_total", protocol="http", side=side,
                                               service=service)))

    def test_sidecar_legs_counted_once_and_mtls_edge(self):
        a = self.agent
        pods = wait_for(lambda: (d := a.get_json("/api/v1/pods"))["synced"] and len(d["pods"]) == 2 and d, 30,
                        "the pods")
        self.assertEqual({p["name"]: p["mesh"] for p in pods["pods"]}, {"ui": "istio", "web": "istio"})
        self.assertEqual(a.metrics().get("netprobe_mesh_pods", mesh="istio"), 2)
        wait_for(lambda: a.metrics().get_or("netprobe_l7_capture_syscalls_total", 0) >= 0, 10, "the L7 capture")

        out = run([PYTHON, "-c", CLIENT, IP_WEB, str(N)], netns=self.ns_ui).stdout.strip()
        self.assertEqual(out, str(N))  # the oracle: the client's own count

        def counted():
            m = a.metrics()
            # client side: the ui app's socket (to web's pod IP); server side: web's app socket,
            # which the sidecar reaches over loopback (127.0.0.6 -> 127.0.0.1:8080)
            got = (self.http(m, "client", "shop/web"), self.http(m, "server", "127.0.0.1:8080"),
                   m.get_or("netprobe_l7_parse_events_total", 0, kind="mesh_proxy_leg"))
            return got if got == (N, N, 2 * N) else log(f"agent so far (client, server, sidecar legs): {got}")
        wait_for(counted, 30, "each request once per side, the sidecar legs apart", interval=0.5)
        m = a.metrics()
        # nothing else of this traffic: no series at the sidecar's ports or from its address
        for s in m.find("netprobe_l7_requests_total", protocol="http"):
            self.assertNotIn(":1500", s.labels["service"])
        log(f"{N} requests: client side {self.http(m, 'client', 'shop/web')}, "
            f"server side {self.http(m, 'server', '127.0.0.1:8080')}, "
            f"sidecar legs not counted {m.get('netprobe_l7_parse_events_total', kind='mesh_proxy_leg')}")

        def edge():
            doc = a.get_json("/api/v1/topology?group_by=pod&window=5m")
            return next((e for e in doc["edges"] if e["source"] == "frontend/ui" and e["target"] == "shop/web"
                         and e["port"] == 8080 and e.get("mtls")), None)
        e = wait_for(edge, 30, "the ui -> web:8080 edge as mTLS")
        self.assertEqual((e["mesh"], e["tls_conversations"], e["conversations"]), ("istio", 1, 1))
        nodes = {n["id"]: n for n in a.get_json("/api/v1/topology?group_by=pod&window=5m")["nodes"]}
        self.assertEqual((nodes["frontend/ui"]["mesh"], nodes["shop/web"]["mesh"]), ("istio", "istio"))
        log(f"edge ui -> web:8080: mesh {e['mesh']}, mtls {e['mtls']}, {e['bytes_out']} B out")


if __name__ == "__main__":
    unittest.main()
