"""Application-layer capture (--l7=on), HTTP/1.x: real servers (nginx, Python's
http.server) and clients (curl, wrk, Python) in namespaces; the agent's counts are
compared with the clients' own (curl's status codes and byte counts, wrk's request
count, nginx's access log).

The server runs in the veth's peer namespace, the clients and the agent in a "node"
namespace. The capture sees every process's syscalls on the machine, so each check
selects the test's own service (the peer address and port).
"""

import json
import os
import platform
import re
import signal
import subprocess
import time
import unittest

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, log, require_tools, run, wait_for

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")
BUILD = os.environ.get("NETPROBE_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
UI_L7 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui_l7.cjs")
CHROMIUM = "/usr/bin/chromium"

# the http block's server ({ip}, {port}, {tls_port} filled in here; {d}: nginx's directory)
NGINX_SERVER = """
  server {{{{
    listen {ip}:{port};
    listen {ip}:{tls_port} ssl;
    ssl_certificate {{d}}/cert.pem;
    ssl_certificate_key {{d}}/key.pem;
    location /items/ {{{{ return 200 "item\\n"; }}}}
    location /missing {{{{ return 404; }}}}
    location /err {{{{ return 503; }}}}
    location /static/ {{{{ root {{d}}/www; }}}}
  }}}}
"""

# HTTP/1.1 keep-alive server answering every GET after sleeping argv[3] seconds.
SLOW_SERVER = r"""
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(float(sys.argv[3]))
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("READY", flush=True)
s.serve_forever()
"""

# argv[3] GETs on one keep-alive connection; prints the statuses.
KEEPALIVE_CLIENT = r"""
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]))
out = []
for i in range(int(sys.argv[3])):
    c.request("GET", f"/slow/{i}")
    r = c.getresponse()
    r.read()
    out.append(r.status)
print(" ".join(map(str, out)))
"""

# Three pipelined requests in one send; reads until three responses arrived.
PIPELINE = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
req = "".join(f"GET /items/{i} HTTP/1.1\r\nHost: t\r\n\r\n" for i in range(3)).encode()
s.sendall(req)
data = b""
while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"item\n"):
    d = s.recv(65536)
    if not d:
        break
    data += d
print(data.count(b"HTTP/1.1 200"))
s.close()
"""

# A binary protocol on port 80: the server echoes, the client sends argv[3] frames.
BINARY_SERVER = r"""
import socket, sys, threading
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(8)
print("READY", flush=True)
def echo(c):
    while True:
        d = c.recv(4096)
        if not d:
            return
        c.sendall(d)
while True:
    c, _ = l.accept()
    threading.Thread(target=echo, args=(c,), daemon=True).start()
"""
BINARY_CLIENT = r"""
import os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
for i in range(int(sys.argv[3])):
    frame = b"\x00\x01" + os.urandom(30) + b"GET / HTTP/1.1\r\n\r\n"
    s.sendall(frame)
    got = b""
    while len(got) < len(frame):
        got += s.recv(4096)
s.close()
"""


# argv[3] GETs over HTTPS on one keep-alive connection (Python's ssl: SSL_read_ex /
# SSL_write_ex); prints the statuses.
HTTPS_CLIENT = r"""
import http.client, ssl, sys
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=ctx)
out = []
for i in range(int(sys.argv[3])):
    c.request("GET", f"/items/{i}" if i % 4 else "/missing")
    r = c.getresponse()
    r.read()
    out.append(r.status)
print(" ".join(map(str, out)))
"""


class L7HttpTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("nginx", "curl", "wrk", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.ip = self.veth.peer_ip

    def agent(self, *extra: str):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--socket-netns=own", "--l7=on", *extra, netns=self.node)

    def nginx(self, port: int = 8080, tls_port: int = 8443) -> str:
        def content(d: str) -> None:
            os.makedirs(os.path.join(d, "www", "static"), exist_ok=True)
            with open(os.path.join(d, "www", "static", "big.bin"), "wb") as f:
                f.write(os.urandom(200000))
        return self.start_nginx(self.veth.ns, NGINX_SERVER.format(ip=self.ip, port=port, tls_port=tls_port),
                                ["curl", "-s", "-o", "/dev/null", f"http://{self.ip}:{port}/items/0"],
                                ready_netns=self.node, prepare=content)

    def series(self, agent, name: str, side: str, service: str) -> dict:
        m = agent.metrics()
        out = {}
        for s in m.find(name, side=side, service=service):
            out[s.labels["status_class"]] = out.get(s.labels["status_class"], 0) + s.value
        return out

    def settle(self, agent, service: str, total: int, side: str = "server", timeout: float = 15) -> dict:
        """Waits until the agent counted `total` requests of service at side."""
        def done():
            c = self.series(agent, "netprobe_l7_requests_total", side, service)
            return c if sum(c.values()) >= total else None
        c = wait_for(done, timeout, f"{total} {side} requests of {service}")
        time.sleep(1.2)  # two more collections: nothing more may arrive
        return self.series(agent, "netprobe_l7_requests_total", side, service)

    def test_nginx_counts_match_curl_and_the_access_log(self):
        d = self.nginx()
        agent = self.agent()
        agent.wait_collections(2)
        # parser state of other processes' connections on this machine (the capture sees them all)
        held = agent.metrics().get("netprobe_l7_connections")
        service = f"{self.ip}:8080"
        urls = ([f"http://{service}/items/{i}" for i in range(37)] + [f"http://{service}/missing"] * 5 +
                [f"http://{service}/err"] * 3 + [f"http://{service}/static/big.bin"])
        fmt = "%{http_code} %{size_header} %{size_download} %{num_connects}\\n"
        args = ["curl", "-s", "-w", fmt]
        for u in urls:
            args += ["-o", "/dev/null", u]
        out = run(args, netns=self.node).stdout.split("\n")
        rows = [line.split() for line in out if line.strip()]
        self.assertEqual(len(rows), len(urls))
        want: dict[str, int] = {}
        client_bytes = 0
        for code, hdr, body, _ in rows:
            cls = code[0] + "xx"
            want[cls] = want.get(cls, 0) + 1
            client_bytes += int(hdr) + int(body)
        log(f"curl: {want}, {client_bytes} response bytes, connections: {sum(int(r[3]) for r in rows)}")
        self.assertEqual(want, {"2xx": 38, "4xx": 5, "5xx": 3})
        # The warm-up request of nginx() is in the access log and in the agent's counts
        # only if the agent ran then: it did not.
        server = self.settle(agent, service, len(urls))
        client = self.settle(agent, service, len(urls), side="client")
        self.assertEqual(server, want)
        self.assertEqual(client, want)
        with open(os.path.join(d, "access.log")) as f:
            logged = len(f.readlines())
        self.assertEqual(logged, len(urls) + 1)  # + the warm-up
        got = self.series(agent, "netprobe_l7_response_bytes_total", "client", service)
        self.assertEqual(sum(got.values()), client_bytes)

        ep = agent.get_json(f"/api/v1/l7/endpoints?service={service}&side=server")
        items = [e for e in ep["endpoints"] if e["route"] == "/items/{id}"]
        self.assertEqual(len(items), 1, ep)
        self.assertEqual(items[0]["requests"], 37)
        errs = [e for e in ep["endpoints"] if e["route"] == "/err"][0]
        self.assertEqual(errs["errors"], 3)
        self.assertEqual(errs["error_rate"], 1.0)
        rq = agent.get_json(f"/api/v1/l7/requests?service={service}&status=404&side=client")
        self.assertEqual(rq["total"], 5)
        self.assertTrue(all(r["path"] == "/missing" and r["server_port"] == 8080 for r in rq["requests"]))
        # The command line over the same API.
        server_url = f"--server=http://127.0.0.1:{agent.port}"
        out = run([CLI, server_url, "requests", f"--service={service}", "--status=404", "--side=client", "-o", "json"],
                  netns=self.node).stdout
        self.assertEqual(json.loads(out)["total"], 5)
        out = run([CLI, server_url, "routes", f"--service={service}", "--side=server"], netns=self.node).stdout
        log(out)
        self.assertIn("/items/{id}", out)
        self.assertIn("100.0%", next(line for line in out.splitlines() if "/err" in line))
        code, _, body = agent.request("/api/v1/l7/requests?status=abc")
        self.assertEqual(code, 400, body)
        self.assertIn("status", body)

        # wrk: its own count of completed requests; the server may also have answered
        # requests wrk abandoned when its time was up (at most one per connection).
        before = sum(self.series(agent, "netprobe_l7_requests_total", "server", service).values())
        out = run(["wrk", "-t1", "-c4", "-d2s", f"http://{service}/items/7"], netns=self.node, timeout=30).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        # a connection wrk reopened after an error may also have left a request behind
        socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        log(f"wrk: {n} requests, {socket_errors} socket errors")
        self.assertGreater(n, 100)
        lost = {}
        try:
            after = self.settle(agent, service, before + n)
        finally:
            lost = {s.labels["where"]: s.value for s in agent.metrics().find("netprobe_l7_capture_lost_total")}
            log(f"capture lost: {lost}")
        counted = sum(after.values()) - before
        log(f"agent counted {counted} server-side requests of wrk's {n}")
        self.assertEqual(sum(lost.values()), 0, lost)
        self.assertGreaterEqual(counted, n)
        self.assertLessEqual(counted, n + 4 + socket_errors)
        # wrk and curl exited, nginx closed its ends: no parser state left behind.
        # (Other processes on the machine may hold parser state too: the value is logged.)
        last = [0]

        def released():
            last[0] = agent.metrics().get("netprobe_l7_connections")
            return last[0] <= held
        try:
            wait_for(released, 15, "parser state of closed connections released")
        finally:
            log(f"connections with parser state: {last[0]} (before the test: {held})")

    def test_a_service_answering_503_is_an_http_errors_finding(self):
        # 12 requests nginx answers with 503 and 8 with 200 (curl's own status codes are the
        # oracle): 60% errors, a critical http_errors finding on the service, from the clients'
        # side (this node has them), naming the failing route.
        self.nginx()
        agent = self.agent()
        agent.wait_collections(2)
        service = f"{self.ip}:8080"
        urls = [f"http://{service}/err"] * 12 + [f"http://{service}/items/{i}" for i in range(8)]
        args = ["curl", "-s", "-w", "%{http_code}\\n"]
        for u in urls:
            args += ["-o", "/dev/null", u]
        codes = run(args, netns=self.node).stdout.split()
        self.assertEqual((codes.count("503"), codes.count("200")), (12, 8))

        def finding():
            d = agent.get_json("/api/v1/diagnosis")
            f = next((f for f in d["findings"] if f["rule"] == "http_errors" and f["subject"] == service), None)
            return f if f and {e["name"]: e["value"] for e in f["evidence"]}.get("requests") == 20 else None
        f = wait_for(finding, 15, "an http_errors finding for the service")
        ev = {e["name"]: e["value"] for e in f["evidence"]}
        log(f"finding: {f['title']}; evidence {ev}")
        self.assertEqual(f["severity"], "critical")
        self.assertEqual(ev["errors_5xx"], codes.count("503"))
        self.assertAlmostEqual(ev["ratio"], 0.6)
        self.assertIn("/err", json.dumps(f["evidence"]))

        # The web UI: the edge's details list its L7 endpoints as the API has them.
        require_tools(CHROMIUM, "node")
        modules = os.path.join(BUILD, "ui", "node_modules")
        edge_id = f"{self.veth.host_ip}->{self.ip}:8080/tcp"
        api = agent.get_json(f"/api/v1/l7/endpoints?service={service}&limit=20")["endpoints"]
        p = run(["ip", "netns", "exec", self.node, "node", UI_L7, f"http://127.0.0.1:{agent.port}/ui/", edge_id,
                 self.tmpdir()], check=False, timeout=120, env={**os.environ, "NODE_PATH": modules, "CHROMIUM": CHROMIUM})
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = json.loads(p.stdout.strip().splitlines()[-1])["rows"]
        log(f"the UI's L7 endpoints of {edge_id}: {rows}")
        want = sorted([e["side"], e["method"], e["route"], str(e["requests"]), str(e["errors"])] for e in api)
        self.assertEqual(sorted(r[:5] for r in rows), want)
        self.assertIn(["client", "GET", "/err", "12", "12"], [r[:5] for r in rows])

    def test_https_plaintext_from_openssl(self):
        """The default probe points: on x86-64, the internal functions SSL_read/SSL_read_ex
        and SSL_write/SSL_write_ex call (their entries are pushes the kernel emulates)."""
        agent = self.https_counts()
        if platform.machine() == "x86_64":
            self.assertRegex(agent.output(), r"probed: SSL_read/SSL_read_ex callee, SSL_write/SSL_write_ex callee")

    def test_https_plaintext_at_the_exported_entries(self):
        """--l7-tls=exported: the exported functions' entries (every call single-stepped)."""
        agent = self.https_counts("--l7-tls=exported")
        self.assertRegex(agent.output(), r"probed: SSL_read, SSL_read_ex, SSL_write, SSL_write_ex")

    def https_counts(self, *flags: str):
        """curl (SSL_read/SSL_write) and Python (the _ex calls) against nginx over TLS: the
        agent's counts at both ends equal the clients' own. Returns the agent."""
        self.nginx()
        agent = self.agent(*flags)
        agent.wait_collections(2)
        # parser state of other processes' connections on this machine (the capture sees them all)
        held = agent.metrics().get("netprobe_l7_connections")
        wait_for(lambda: agent.metrics().get_or("netprobe_l7_tls_libraries") >= 1, 20, "libssl to be probed")
        service = f"{self.ip}:8443"
        urls = [f"https://{service}/items/{i}" for i in range(9)] + [f"https://{service}/missing"] * 2
        args = ["curl", "-sk", "-w", "%{http_code}\\n"]
        for u in urls:
            args += ["-o", "/dev/null", u]
        codes = run(args, netns=self.node).stdout.split()
        self.assertEqual(codes, ["200"] * 9 + ["404"] * 2)
        out = run([PYTHON, "-c", HTTPS_CLIENT, self.ip, "8443", "12"], netns=self.node).stdout.split()
        want = {"2xx": out.count("200") + 9, "4xx": out.count("404") + 2}
        self.assertEqual(sum(want.values()), 23)
        self.assertEqual(self.settle(agent, service, 23), want)  # nginx: SSL_read / SSL_write
        self.assertEqual(self.settle(agent, service, 23, side="client"), want)  # curl: SSL_*, Python: SSL_*_ex
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_l7_capture_lost_total", where="tls_no_socket"), 0)
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="desync"), 0)
        rq = agent.get_json(f"/api/v1/l7/requests?service={service}&side=server&status=404")
        self.assertEqual(rq["total"], 2 + out.count("404"))
        # The clients are gone and nginx closed its ends: the close of a TLS connection
        # releases its parser state like a plaintext one's (none left to expire).
        wait_for(lambda: agent.metrics().get("netprobe_l7_connections") <= held, 15,
                 "parser state of closed connections released")
        return agent

    def test_latency_of_a_server_that_sleeps_50ms(self):
        port = 8081
        srv = self.spawn([PYTHON, "-c", SLOW_SERVER, self.ip, str(port), "0.05"], netns=self.veth.ns,
                         stdout=subprocess.PIPE, name="slow-server")
        self.assertEqual(srv.p.stdout.readline().strip(), b"READY")
        agent = self.agent()
        agent.wait_collections(2)
        out = run([PYTHON, "-c", KEEPALIVE_CLIENT, self.ip, str(port), "20"], netns=self.node).stdout.split()
        self.assertEqual(out, ["200"] * 20)
        service = f"{self.ip}:{port}"
        self.settle(agent, service, 20)
        self.settle(agent, service, 20, side="client")
        ep = agent.get_json(f"/api/v1/l7/endpoints?service={service}")
        for e in ep["endpoints"]:
            log(f"{e['side']} {e['route']}: p50 {e['p50_seconds']:.4f} p99 {e['p99_seconds']:.4f}")
            self.assertEqual(e["route"], "/slow/{id}")
            self.assertEqual(e["requests"], 20)
            self.assertGreaterEqual(e["p50_seconds"], 0.050)
            self.assertLessEqual(e["p50_seconds"], 0.055)
        self.assertEqual({e["side"] for e in ep["endpoints"]}, {"client", "server"})
        m = agent.metrics()
        b = m.get("netprobe_l7_request_duration_seconds_bucket", side="server", service=service, le="0.05")
        b2 = m.get("netprobe_l7_request_duration_seconds_bucket", side="server", service=service, le="0.1")
        self.assertEqual((b, b2), (0, 20))
        # The service map's edge carries the requests and their latency (the server's end:
        # its sleep puts every request in the 50-100 ms bucket; p50/p99 are interpolated
        # within it), and so does the QoS view of the same edge.
        def edge():
            doc = agent.get_json("/api/v1/topology?group_by=host&window=5m&protocol=http")
            e = [x for x in doc["edges"] if x["source"] == self.veth.host_ip and x["target"] == self.ip
                 and x["port"] == port]
            return (e[0], doc) if e and e[0].get("requests", 0) >= 20 else None
        e, doc = wait_for(edge, 15, "the edge's requests in /api/v1/topology")
        log(f"edge {e['source']} -> {e['target']}:{port}: {e['requests']} requests, {e['requests_per_second']:.3f}/s, "
            f"p50 {e['p50_seconds']:.4f} p99 {e['p99_seconds']:.4f}, window {doc['window_seconds']} s")
        self.assertEqual((e["protocol"], e["requests"], e["errors"], e["error_rate"]), ("http", 20, 0, 0))
        self.assertAlmostEqual(e["requests_per_second"], 20 / doc["window_seconds"], places=6)
        for q in ("p50_seconds", "p99_seconds"):
            self.assertGreaterEqual(e[q], 0.05)
            self.assertLessEqual(e[q], 0.1)
        q = agent.get_json("/api/v1/qos?group_by=host&window=5m")
        qe = next(x for x in q["edges"] if x["client"] == self.veth.host_ip and x["server"] == self.ip
                  and x["port"] == port)
        self.assertEqual((qe["l7"]["protocol"], qe["l7"]["requests"], qe["l7"]["errors"]), ("http", 20, 0))
        self.assertGreaterEqual(qe["l7"]["p50_seconds"], 0.05)

    def test_pipelined_requests_and_binary_data_on_port_80(self):
        self.nginx()
        srv = self.spawn([PYTHON, "-c", BINARY_SERVER, self.ip, "80"], netns=self.veth.ns, stdout=subprocess.PIPE,
                         name="binary-server")
        self.assertEqual(srv.p.stdout.readline().strip(), b"READY")
        agent = self.agent()
        agent.wait_collections(2)
        skipped0 = agent.metrics().get("netprobe_l7_capture_skipped_total")
        out = run([PYTHON, "-c", PIPELINE, self.ip, "8080"], netns=self.node).stdout.strip()
        self.assertEqual(out, "3")
        service = f"{self.ip}:8080"
        self.assertEqual(self.settle(agent, service, 3), {"2xx": 3})
        self.assertEqual(self.settle(agent, service, 3, side="client"), {"2xx": 3})
        run([PYTHON, "-c", BINARY_CLIENT, self.ip, "80", "50"], netns=self.node)
        agent.wait_collections(3)
        m = agent.metrics()
        self.assertEqual(m.find("netprobe_l7_requests_total", service=f"{self.ip}:80"), [])
        # Both ends inspected their first 4 data syscalls, then skipped the rest.
        self.assertGreaterEqual(m.get("netprobe_l7_capture_skipped_total") - skipped0, 2 * (2 * 50 - 4))
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="desync"), 0)


if __name__ == "__main__":
    unittest.main()
