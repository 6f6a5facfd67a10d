"""Application-layer capture (--l7=on), HTTP/2 and gRPC: nginx serving h2c and h2 over
TLS to h2load (nghttp2's load generator) and curl, and a gRPC server and client of
python3-grpcio (its C core: sendmsg/recvmsg with vectors). The agent's counts are
compared with the clients' own (h2load's status-code counts, curl's codes, the gRPC
client's per-method status codes) and nginx's access log, at both ends.

The servers run in the veth's peer namespace, the clients and the agent in a "node"
namespace; each check selects the test's own service (the peer address and port).
"""

import json
import os
import re
import subprocess
import time
import unittest

from grpc_echo import GRPC_CLIENT, GRPC_SERVER
from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for

# the http block's server ({ip}, {port}, {tls_port} filled in here; {d}: nginx's directory)
NGINX_SERVER = """
  server {{{{
    listen {ip}:{port} http2;
    listen {ip}:{tls_port} ssl http2;
    ssl_certificate {{d}}/cert.pem;
    ssl_certificate_key {{d}}/key.pem;
    location /items/ {{{{ return 200 "item\\n"; }}}}
    location /missing {{{{ return 404; }}}}
    location /err {{{{ return 503; }}}}
  }}}}
"""

def h2load_counts(out: str) -> tuple[int, dict[str, int]]:
    """h2load's own figures: requests done (answered: "succeeded" are only the 2xx/3xx ones,
    and none may have errored), and status codes by class."""
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  out)
    assert m, out
    assert m.group(6) == "0", out
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert c, out
    classes = {k: int(v) for k, v in zip(("2xx", "3xx", "4xx", "5xx"), c.groups()) if int(v)}
    return int(m.group(3)), classes


class L7Http2Test(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("nginx", "curl", "h2load", "openssl", PYTHON)
        if run([PYTHON, "-c", "import grpc"], check=False).returncode != 0:
            raise AssertionError("python3-grpcio is missing (scripts/setup-deps.sh installs it)")

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.ip = self.veth.peer_ip

    def agent(self):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--socket-netns=own", "--l7=on", netns=self.node)

    def nginx(self, port: int, tls_port: int) -> str:
        return self.start_nginx(self.veth.ns, NGINX_SERVER.format(ip=self.ip, port=port, tls_port=tls_port),
                                ["curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge",
                                 f"http://{self.ip}:{port}/items/0"], ready_netns=self.node)

    def by(self, agent, side: str, service: str, key: str = "status_class", protocol: str | None = None) -> dict:
        out: dict = {}
        for s in agent.metrics().find("netprobe_l7_requests_total", side=side, service=service):
            if protocol and s.labels["protocol"] != protocol:
                continue
            k = s.labels[key] if isinstance(key, str) else tuple(s.labels[x] for x in key)
            out[k] = out.get(k, 0) + s.value
        return out

    def settle(self, agent, service: str, total: int, side: str, key="status_class", timeout: float = 20) -> dict:
        """Waits until the agent counted `total` requests of service at side, then two more collections."""
        wait_for(lambda: sum(self.by(agent, side, service).values()) >= total or None, timeout,
                 f"{total} {side} requests of {service}")
        time.sleep(1.2)
        return self.by(agent, side, service, key)

    def assertCleanCapture(self, agent) -> None:
        m = agent.metrics()
        lost = m.find("netprobe_l7_capture_lost_total")
        self.assertEqual(sum(s.value for s in lost), 0, [(s.labels, s.value) for s in lost])
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="desync"), 0)
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="unmatched_response"), 0)

    def test_h2c_and_h2_over_tls_match_h2load_curl_and_the_access_log(self):
        d = self.nginx(8080, 8443)
        agent = self.agent()
        agent.wait_collections(2)
        # parser state of other processes' connections on this machine (the capture sees them all)
        held = agent.metrics().get("netprobe_l7_connections")
        service = f"{self.ip}:8080"

        # curl, one process and connection per request (curl 7.88 fails to reuse an h2c
        # connection for a second URL of its command line: exit 16)
        urls = ([f"http://{service}/items/{i}" for i in range(17)] + [f"http://{service}/missing"] * 4 +
                [f"http://{service}/err"] * 2)
        rows = [run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                     u], netns=self.node).stdout.split() for u in urls]
        self.assertEqual({v for _, v in rows}, {"2"})
        want: dict[str, int] = {}
        for code, _ in rows:
            want[code[0] + "xx"] = want.get(code[0] + "xx", 0) + 1
        self.assertEqual(want, {"2xx": 17, "4xx": 4, "5xx": 2})

        # h2load: 4 connections, 10 concurrent streams each, three URIs in turn
        out = run(["h2load", "-n", "3000", "-c", "4", "-m", "10", f"http://{service}/items/1",
                   f"http://{service}/missing", f"http://{service}/err"], netns=self.node, timeout=60).stdout
        ok, classes = h2load_counts(out)
        log(f"h2load h2c: {ok} done, {classes}")
        self.assertEqual(ok, 3000)
        for k, v in classes.items():
            want[k] = want.get(k, 0) + v
        total = sum(want.values())
        server = self.settle(agent, service, total, "server")
        client = self.settle(agent, service, total, "client")
        log(f"agent h2c: server {server}, client {client}; curl + h2load {want}")
        self.assertEqual(server, want)
        self.assertEqual(client, want)
        self.assertEqual(set(self.by(agent, "server", service, "protocol")), {"http2"})
        with open(os.path.join(d, "access.log")) as f:
            self.assertEqual(len(f.readlines()), total + 1)  # + the warm-up before the agent ran
        ep = agent.get_json(f"/api/v1/l7/endpoints?service={service}&side=server&protocol=http2")
        routes = {e["route"]: e for e in ep["endpoints"]}
        self.assertEqual(routes["/items/{id}"]["requests"], want["2xx"])  # only /items/ answers 200
        self.assertEqual(routes["/err"]["errors"], want["5xx"])
        # the recent-requests sample (the latest 1000 of every side): the filter selects
        # exactly its client-side 404s. Two reads: any captured request completing between
        # them (this machine's other processes, the harness's own API calls) moves the
        # sample's window, so the pair is read again until it agrees.
        def same_window():
            every = agent.get_json("/api/v1/l7/requests?limit=10000")["requests"]
            rq = agent.get_json(f"/api/v1/l7/requests?service={service}&side=client&status=client_error&limit=10000")
            n = sum(1 for r in every if r["side"] == "client" and r["status"] == 404)
            if rq["total"] != n:
                log(f"recent 404s: filter {rq['total']}, unfiltered {n}: read again")
                return None
            return rq
        rq = wait_for(same_window, 10, "the filtered and unfiltered samples to agree", interval=0.5)
        self.assertGreater(rq["total"], 0)
        self.assertTrue(all(r["path"] == "/missing" and r["status"] == 404 and r["protocol"] == "http2"
                            for r in rq["requests"]))
        self.assertCleanCapture(agent)

        # h2 over TLS (ALPN): nginx's and h2load's plaintext through the OpenSSL uprobes
        wait_for(lambda: agent.metrics().get_or("netprobe_l7_tls_libraries") >= 1, 20, "libssl to be probed")
        tls = f"{self.ip}:8443"
        out = run(["h2load", "-n", "600", "-c", "2", "-m", "10", f"https://{tls}/items/1", f"https://{tls}/missing"],
                  netns=self.node, timeout=60).stdout
        self.assertIn("Application protocol: h2", out)
        ok, classes = h2load_counts(out)
        log(f"h2load h2: {ok} done, {classes}")
        self.assertEqual((ok, classes), (600, {"2xx": 300, "4xx": 300}))
        self.assertEqual(self.settle(agent, tls, 600, "server"), classes)
        self.assertEqual(self.settle(agent, tls, 600, "client"), classes)
        self.assertEqual(set(self.by(agent, "client", tls, "protocol")), {"http2"})
        self.assertCleanCapture(agent)
        def released():
            now = agent.metrics().get("netprobe_l7_connections")
            if now > held:
                log(f"L7 parser state: {now} connections held, {held} before the test")
            return now <= held
        wait_for(released, 15, "parser state of closed connections released", interval=1)

    def test_grpc_calls_match_the_clients_status_codes(self):
        port = 50051
        srv = self.spawn([PYTHON, "-c", GRPC_SERVER, self.ip, str(port), "0.05"], netns=self.veth.ns,
                         stdout=subprocess.PIPE, name="grpc-server")
        self.assertEqual(srv.p.stdout.readline().strip(), b"READY")
        agent = self.agent()
        agent.wait_collections(2)
        out = run([PYTHON, "-c", GRPC_CLIENT, self.ip, str(port), "200"], netns=self.node, timeout=60).stdout
        rows = json.loads(out)
        want = {(m, c): n for m, c, n in rows}
        log(f"gRPC client: {want}")
        self.assertEqual(want, {("/np.Echo/Say", "OK"): 180, ("/np.Echo/Say", "NOT_FOUND"): 20,
                                ("/np.Echo/Slow", "OK"): 20, ("/np.Echo/Stream", "OK"): 5,
                                ("/np.Echo/Nope", "UNIMPLEMENTED"): 3})
        service = f"{self.ip}:{port}"
        total = sum(want.values())
        key = ("method", "status_class")
        server = self.settle(agent, service, total, "server", key)
        client = self.settle(agent, service, total, "client", key)
        log(f"agent: server {server}, client {client}")
        self.assertEqual(server, want)
        self.assertEqual(client, want)
        self.assertEqual(set(self.by(agent, "server", service, "protocol")), {"grpc"})

        # latency of Slow (the handler sleeps 50 ms) at both ends
        ep = agent.get_json(f"/api/v1/l7/endpoints?service={service}&protocol=grpc&method=/np.Echo/Slow")
        self.assertEqual({e["side"] for e in ep["endpoints"]}, {"client", "server"})
        for e in ep["endpoints"]:
            log(f"{e['side']} {e['route']}: p50 {e['p50_seconds']:.4f} p99 {e['p99_seconds']:.4f}")
            self.assertEqual((e["route"], e["requests"], e["errors"]), ("/np.Echo/Slow", 20, 0))
            self.assertGreaterEqual(e["p50_seconds"], 0.050)
            self.assertLessEqual(e["p50_seconds"], 0.060)
        # UNIMPLEMENTED is a server-side error, NOT_FOUND the caller's
        rq = agent.get_json(f"/api/v1/l7/requests?service={service}&side=server&status=error")
        self.assertEqual((rq["total"], {r["status_class"] for r in rq["requests"]}), (3, {"UNIMPLEMENTED"}))
        rq = agent.get_json(f"/api/v1/l7/requests?service={service}&side=client&status=NOT_FOUND&limit=1000")
        self.assertEqual(rq["total"], 20)
        self.assertTrue(all(r["method"] == "/np.Echo/Say" and r["outcome"] == "client_error" and r["status"] == 5
                            for r in rq["requests"]))
        self.assertCleanCapture(agent)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="method_overflow"), 0)


if __name__ == "__main__":
    unittest.main()
