"""`netprobe mcp` with the MCP SDK's own client (@modelcontextprotocol/sdk from npm, pinned
in tests/e2e/mcp/package-lock.json) against a real agent: the client spawns the server
over stdio (StdioClientTransport) and connects to `netprobe mcp --listen` over
Streamable HTTP (StreamableHTTPClientTransport), lists the tools and calls them; each
tool result must be the document the agent's API gives for the same query (fetched by
the client right before and right after the call). Invalid arguments are JSON-RPC
errors -32602; a stopped agent is a result with isError; TLS and basic auth toward the
agent work as for the other subcommands.

Topology: the agent on the host end of a veth (its API on loopback); a client namespace
sends 300 UDP datagrams to a sink on the host end, holds a TCP connection, and nmap
scans the host end's ports (a port scan event, and many flows for truncation).
"""

import http.client
import json
import os
import re
import subprocess
import time
import unittest

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, log, require_tools, run, wait_for
from test_http import Pki, htpasswd
from test_netprobe_cli import CLIENT, SINK, _listening

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")
MCP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcp")
CLIENT_MJS = os.path.join(MCP_DIR, "client.mjs")

# Every tool of the catalogue (docs/mcp.md): the client must list exactly these.
TOOLS = ["list_interfaces", "list_flows", "list_connections", "list_containers", "list_pods", "list_events",
         "get_intel", "get_diagnosis", "list_l7_endpoints", "list_l7_requests", "list_dns_names", "get_topology",
         "get_qos", "get_bottlenecks", "get_forecast", "get_anomalies", "list_history_series", "get_history",
         "get_cost", "get_policies", "get_responses"]


def install_sdk() -> None:
    """npm ci in tests/e2e/mcp when node_modules is missing or older than the lock file
    (as tests/deploy/run.sh does): a fresh clone installs the pinned SDK here."""
    require_tools("node", "npm")
    stamp = os.path.join(MCP_DIR, "node_modules", ".package-lock.json")
    lock = os.path.join(MCP_DIR, "package-lock.json")
    if not os.path.exists(stamp) or os.path.getmtime(lock) > os.path.getmtime(stamp):
        log("npm ci in tests/e2e/mcp")
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=MCP_DIR, timeout=600)


def text_of(result: dict) -> str:
    return result["content"][0]["text"]


class McpTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(CLI, "node", "npm", "nmap", "openssl", "htpasswd")
        install_sdk()

    def setUp(self) -> None:
        self.veth = self.make_veth()
        self.sink = self.spawn([PYTHON, "-c", SINK, self.veth.host_ip], stdout=subprocess.PIPE, name="sink")
        wait_for(lambda: self.sink.running() and _listening(7102), 10, "the sink to listen")

    # -- helpers ------------------------------------------------------------------------

    def sdk(self, plan: dict, timeout: float = 180) -> dict:
        """Runs client.mjs with plan; returns what it printed."""
        path = os.path.join(self.tmpdir(), "plan.json")
        with open(path, "w") as f:
            json.dump(plan, f)
        p = run(["node", CLIENT_MJS, path], check=False, timeout=timeout, cwd=MCP_DIR)
        if p.stderr.strip():
            log(f"client.mjs stderr: {p.stderr.strip()[-3000:]}")
        lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
        self.assertTrue(lines, f"client.mjs printed nothing (rc {p.returncode}): {p.stdout!r} {p.stderr[-2000:]!r}")
        out = json.loads(lines[-1])
        self.assertNotIn("fatal", out, f"client.mjs failed: {out.get('fatal')}\nstderr: {p.stderr[-3000:]}")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return out

    def stdio_plan(self, server: str, calls: list, *extra: str) -> dict:
        return {"transport": "stdio", "command": CLI, "args": [f"--server={server}", *extra, "mcp"],
                "api": server, "calls": calls}

    def start_http_mcp(self, server: str, *mcp_opts: str, global_opts: tuple = ()) -> tuple[int, object]:
        port = free_port()
        proc = self.spawn([CLI, f"--server={server}", *global_opts, "mcp", f"--listen=127.0.0.1:{port}", *mcp_opts],
                          log_name="mcp-http.log", name="netprobe-mcp")
        wait_for(lambda: _listening(port) or not proc.running(), 10, "netprobe mcp --listen to listen")
        self.assertTrue(proc.running(), proc.output())
        return port, proc

    def assertSameAsApi(self, call: dict, key=None) -> dict:
        """The tool's document equals the API's answer fetched just before or just after it."""
        self.assertNotIn("error", call, call)
        self.assertFalse(call["result"].get("isError"), call["result"])
        self.assertEqual(len(call["result"]["content"]), 1,
                         f"{call['tool']} {call['arguments']} truncated: {call['result']['content'][-1]['text']}")
        got = json.loads(text_of(call["result"]))
        self.assertEqual(call["before"]["status"], 200, call["before"])
        api = [json.loads(call["before"]["text"]), json.loads(call["after"]["text"])]
        proj = key or (lambda d: d)
        self.assertIn(proj(got), [proj(a) for a in api],
                      f"{call['tool']} {call['arguments']}: the tool's document is neither API answer")
        return got

    def traffic(self, agent) -> int:
        """The UDP burst, a held TCP connection, a port scan; returns the TCP client port."""
        client = self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip], netns=self.veth.ns, stdout=subprocess.PIPE,
                            name="client")
        wait_for(lambda: agent.flows(port=7102)["total"] > 0 and agent.flows(port=41000)["total"] > 0, 20,
                 "the flows to appear")
        line = client.p.stdout.readline().decode()
        self.assertTrue(line.startswith("CONNECTED"), line)
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-300", "--max-rate", "2000", self.veth.host_ip],
            netns=self.veth.ns, timeout=120)
        wait_for(lambda: agent.get_json("/api/v1/events?type=port_scan")["events"], 20, "the scan to be an event")
        time.sleep(2.5)  # collections after the burst and the scan: their counters final
        return int(line.split()[1])

    # -- tests ------------------------------------------------------------------------------

    def test_sdk_client_over_stdio_and_http_gets_the_apis_data(self):
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=1s",
                                 "--security-set=scan.vertical_ports=20")
        server = f"http://127.0.0.1:{agent.port}"
        cport = self.traffic(agent)

        compared = [
            {"tool": "list_interfaces", "arguments": {}, "api": "/api/v1/interfaces"},
            {"tool": "list_flows", "arguments": {"port": 41000}, "api": "/api/v1/flows?port=41000"},
            {"tool": "list_flows", "arguments": {"ip": self.veth.peer_ip, "protocol": "udp", "sort": "packets",
                                                 "limit": 5},
             "api": f"/api/v1/flows?ip={self.veth.peer_ip}&protocol=udp&sort=packets&limit=5"},
            {"tool": "list_connections", "arguments": {"port": cport, "state": "open"},
             "api": f"/api/v1/connections?port={cport}&state=open"},
            {"tool": "list_events", "arguments": {"type": ["port_scan"], "limit": 5},
             "api": "/api/v1/events?type=port_scan&limit=5"},
            {"tool": "get_topology", "arguments": {"window": "1m", "limit": 20},
             "api": "/api/v1/topology?window=1m&limit=20"},
            {"tool": "get_diagnosis", "arguments": {}, "api": "/api/v1/diagnosis"},
            {"tool": "get_bottlenecks", "arguments": {"severity": "info"}, "api": "/api/v1/bottlenecks?severity=info"},
        ]
        every = [{"tool": t, "arguments": {"series": "iface/x/rx_bytes_rate"} if t == "get_history" else {}}
                 for t in TOOLS]
        invalid = [
            {"tool": "list_flows", "arguments": {"port": 70000}},
            {"tool": "list_events", "arguments": {"type": ["no_such_type"]}},
            {"tool": "get_history", "arguments": {}},
            {"tool": "no_such_tool", "arguments": {}},
        ]
        for attempt in (1, 2):  # the documents move every collection: one retry
            out = self.sdk(self.stdio_plan(server, compared + every + invalid))
            try:
                self.check_session(out, stdio=True)
                for c in out["calls"][:len(compared)]:
                    self.assertSameAsApi(c)
                break
            except AssertionError as e:
                if attempt == 2:
                    raise
                log(f"retrying after: {str(e)[:500]}")
        calls = out["calls"]
        # What the data says (the API is the oracle of the comparison above; this is the traffic).
        flows = json.loads(text_of(calls[1]["result"]))["flows"]
        udp = [f for f in flows if f["protocol"] == "udp" and f["src_port"] == 41000]
        self.assertEqual(len(udp), 1, flows)
        self.assertEqual(udp[0]["packets"], 300)
        self.assertEqual(udp[0]["dst_port"], 7101)
        self.assertIn(self.veth.host, text_of(calls[0]["result"]))
        conns = json.loads(text_of(calls[3]["result"]))["connections"]
        self.assertTrue(any(c["src_port"] == cport or c["dst_port"] == cport for c in conns), conns)
        events = json.loads(text_of(calls[4]["result"]))["events"]
        self.assertTrue(events and events[0]["type"] == "port_scan" and events[0]["src_ip"] == self.veth.peer_ip,
                        events)
        # Every tool answers (its endpoint exists, its default query is accepted).
        for c in calls[len(compared):len(compared) + len(every)]:
            self.assertNotIn("error", c, c)
            self.assertFalse(c["result"]["isError"], c)
            json.loads(text_of(c["result"]))
        # Invalid arguments and an unknown tool: JSON-RPC -32602 naming the problem.
        bad = calls[len(compared) + len(every):]
        for c, says in zip(bad, ["argument \"port\"", "argument \"type\"", "\"series\" is required",
                                 "Unknown tool: no_such_tool"]):
            self.assertEqual(c.get("error", {}).get("code"), -32602, c)
            self.assertIn(says, c["error"]["message"])

        # Streamable HTTP: the same tools, a session, its end.
        port, proc = self.start_http_mcp(server)
        url = f"http://127.0.0.1:{port}/mcp"
        for attempt in (1, 2):
            out = self.sdk({"transport": "http", "url": url, "api": server, "calls": compared[:5],
                            "terminate": True})
            try:
                self.check_session(out, stdio=False)
                for c in out["calls"]:
                    self.assertSameAsApi(c)
                break
            except AssertionError as e:
                if attempt == 2:
                    raise
                log(f"retrying after: {str(e)[:500]}")
        self.assertRegex(out["session_id"], r"^[0-9a-f]{32}$")
        self.assertIsNone(out["terminated_session"])
        self.assertEqual(out["after_terminate"]["code"], 404, out["after_terminate"])  # the SDK's HTTP status
        self.assertIn("Session not found", out["after_terminate"]["message"])
        self.raw_http_checks(port)

        # Large results: truncated to --max-result-bytes, with a note; the kept flows are the API's first.
        small_port, _ = self.start_http_mcp(server, "--max-result-bytes=2048")
        out = self.sdk({"transport": "http", "url": f"http://127.0.0.1:{small_port}/mcp", "api": server,
                        "calls": [{"tool": "list_flows", "arguments": {"limit": 500, "sort": "bytes"},
                                   "api": "/api/v1/flows?limit=500&sort=bytes"}]})
        c = out["calls"][0]
        self.assertFalse(c["result"]["isError"], c)
        content = c["result"]["content"]
        self.assertEqual(len(content), 2, content)
        self.assertLessEqual(len(content[0]["text"].encode()), 2048)
        doc = json.loads(content[0]["text"])
        kept = len(doc["flows"])
        self.assertGreater(doc["total"], kept)
        m = re.search(r"/flows kept (\d+) of (\d+) items", content[1]["text"])
        self.assertTrue(m, content[1]["text"])
        self.assertEqual(int(m.group(1)), kept)
        api = [json.loads(c["before"]["text"])["flows"], json.loads(c["after"]["text"])["flows"]]
        key = lambda fl: [(f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["protocol"]) for f in fl]
        self.assertIn(key(doc["flows"]), [key(a[:kept]) for a in api])
        log(f"truncated: {content[1]['text']}")

        # The raw stdio stream: only protocol messages on stdout, bad input answered, EOF ends it.
        self.raw_stdio_checks(server)

        # The agent stops: tool calls are results with isError (not protocol errors), both transports.
        agent.stop()
        out = self.sdk(self.stdio_plan(server, [{"tool": "list_interfaces", "arguments": {}}]))
        r = out["calls"][0]["result"]
        self.assertTrue(r["isError"], r)
        self.assertIn(f"cannot reach the agent at {server}", text_of(r))
        out = self.sdk({"transport": "http", "url": url, "api": server,
                        "calls": [{"tool": "get_diagnosis", "arguments": {}}]})
        self.assertTrue(out["calls"][0]["result"]["isError"], out["calls"][0])
        self.assertIn("cannot reach the agent", text_of(out["calls"][0]["result"]))
        self.assertTrue(proc.running(), proc.output())
        self.assertEqual(proc.stop(), 0, proc.output())  # SIGTERM: a clean exit
        self.assertIn("serving MCP (Streamable HTTP) on " + url, proc.output())

    def check_session(self, out: dict, stdio: bool) -> None:
        self.assertEqual(out["server"]["name"], "netprobe")
        self.assertIn("tools", out["capabilities"])
        self.assertTrue(out["instructions"])
        if not stdio:
            # The SDK asks for its latest version (newer than ours): the answer is 2025-06-18.
            self.assertEqual(out["protocol_version"], "2025-06-18")
        self.assertEqual(sorted(t["name"] for t in out["tools"]), sorted(TOOLS))
        for t in out["tools"]:
            self.assertEqual(t["inputSchema"]["type"], "object")
            self.assertTrue(t["annotations"]["readOnlyHint"])
        self.assertNotIn("transport_errors", out)

    def raw_http_checks(self, port: int) -> None:
        def req(method: str, body: bytes | None = None, headers: dict | None = None):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request(method, "/mcp", body=body, headers={"Content-Type": "application/json", **(headers or {})})
                r = c.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
            finally:
                c.close()

        ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
        self.assertEqual(req("GET")[0], 405)
        status, _, body = req("POST", ping)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"]["code"], -32600)
        self.assertEqual(req("POST", ping, {"Mcp-Session-Id": "f" * 32})[0], 404)
        self.assertEqual(req("POST", b"x" * (2 * 1024 * 1024))[0], 413)
        init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                           "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                                      "clientInfo": {"name": "raw", "version": "0"}}}).encode()
        status, headers, body = req("POST", init)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["result"]["protocolVersion"], "2024-11-05")
        sid = headers["mcp-session-id"]
        status, _, body = req("POST", b"{not json", {"Mcp-Session-Id": sid})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"]["code"], -32700)
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        self.assertEqual(req("POST", note, {"Mcp-Session-Id": sid})[0], 202)
        self.assertEqual(req("POST", ping, {"Mcp-Session-Id": sid, "Origin": "http://attacker.example"})[0], 403)
        self.assertEqual(req("DELETE", None, {"Mcp-Session-Id": sid})[0], 200)
        self.assertEqual(req("POST", ping, {"Mcp-Session-Id": sid})[0], 404)

    def raw_stdio_checks(self, server: str) -> None:
        lines = [
            '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26",'
            '"capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}',
            '{"jsonrpc":"2.0","method":"notifications/initialized"}',
            "this is not json",
            '{"jsonrpc":"2.0","id":2,"method":"nope"}',
            '[1,2]',
            '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_flows","arguments":{"port":41000}}}',
            "x" * (2 * 1024 * 1024),
            '{"jsonrpc":"2.0","id":4,"method":"ping"}',
        ]
        p = run([CLI, f"--server={server}", "mcp"], input="\n".join(lines) + "\n", check=False, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = [json.loads(x) for x in p.stdout.splitlines()]  # every stdout line is JSON
        self.assertEqual(len(out), 7, p.stdout[:3000])
        for m in out:
            for x in m if isinstance(m, list) else [m]:
                self.assertEqual(x["jsonrpc"], "2.0", x)
        self.assertEqual(out[0]["result"]["protocolVersion"], "2025-03-26")
        self.assertEqual(out[1]["error"]["code"], -32700)
        self.assertEqual(out[2]["error"]["code"], -32601)
        self.assertEqual([x["error"]["code"] for x in out[3]], [-32600, -32600])
        self.assertFalse(out[4]["result"]["isError"])
        self.assertEqual(out[5]["error"]["code"], -32700)
        self.assertIn("longer than", out[5]["error"]["message"])
        self.assertEqual(out[6], {"jsonrpc": "2.0", "id": 4, "result": {}})
        self.assertIn("netprobe mcp: info: serving MCP on stdin/stdout", p.stderr)

    def test_tls_and_basic_auth_toward_the_agent(self):
        d = self.tmpdir()
        pki = Pki(d)
        web = os.path.join(d, "web.yml")
        with open(web, "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {pki.path('server.crt')}\n  key_file: {pki.path('server.key')}\n"
                    f"basic_auth_users:\n  ops: {htpasswd('ops', 's3cret')}\n")
        port = free_port()
        agent = self.spawn([AGENT, f"--interface-filter={self.veth.host}", f"--web-config-file={web}",
                            f"--metrics-port={port}", "--metrics-address=127.0.0.1", f"--state-dir={self.tmpdir()}"],
                           log_name="agent-tls.log", name="netprobe-agent")
        server = f"https://127.0.0.1:{port}"
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("s3cret\n")
        bad = os.path.join(d, "bad")
        with open(bad, "w") as f:
            f.write("wrong\n")
        tls = [f"--ca-file={pki.path('ca.crt')}", "--user=ops"]
        call = [{"tool": "list_interfaces", "arguments": {}}]

        def attached():
            out = self.sdk(self.stdio_plan(server, call, *tls, f"--password-file={pw}"))
            r = out["calls"][0]["result"]
            return not r["isError"] and self.veth.host in text_of(r)

        wait_for(lambda: attached() or not agent.running(), 40, "the TLS agent's interfaces through MCP", interval=1)
        self.assertTrue(agent.running(), agent.output())
        # Wrong password: 401 as a tool error; a CA that did not sign the agent's certificate: refused.
        out = self.sdk(self.stdio_plan(server, call, *tls, f"--password-file={bad}"))
        self.assertTrue(out["calls"][0]["result"]["isError"])
        self.assertIn("401", text_of(out["calls"][0]["result"]))
        out = self.sdk(self.stdio_plan(server, call, f"--ca-file={pki.path('rogue-ca.crt')}", "--user=ops",
                                       f"--password-file={pw}"))
        self.assertTrue(out["calls"][0]["result"]["isError"])
        self.assertIn("certificate", text_of(out["calls"][0]["result"]))
        # The HTTP transport with the same options.
        mport, _ = self.start_http_mcp(server, global_opts=(*tls, f"--password-file={pw}"))
        out = self.sdk({"transport": "http", "url": f"http://127.0.0.1:{mport}/mcp", "api": server, "calls": call})
        r = out["calls"][0]["result"]
        self.assertFalse(r["isError"], r)
        self.assertIn(self.veth.host, text_of(r))
        self.assertEqual(agent.stop(), 0)



if __name__ == "__main__":
    unittest.main()
