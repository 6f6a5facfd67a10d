"""`netprobe ask` with an LLM, against a scripted OpenAI-compatible chat-completions server
that runs in this test process (no model exists on this machine; the issue asks for a
scripted server): the CLI sends it the question and NetProbe's tools, runs the tool calls
it asks for against a real agent, and checks the figures of its final answer.

The script plays a model: it asks for tool calls, then answers with figures it read from
the tool results the CLI sent it (all verified: exit 0), or with one made up (flagged:
exit 6). The test checks what the server received: the tool results equal the agent's
own API answers, and with --anonymize neither the client's nor the server's address
ever reaches it while the CLI's answer has them back. A server that never answers is the
timeout exit code (8) within --llm-timeout; a 500, an answer that is not JSON or not a
chat-completions answer, a server that is not there, a TLS certificate of another CA and
a model that never stops calling tools are exit 7 with a line that says which.

Topology: the agent on the host end of a veth (its API on loopback), a client namespace
sends 300 UDP datagrams of 1000 bytes and 20 TCP connections to a sink on the host end
(test_ask's traffic). The chat server listens on 127.0.0.1.
"""

import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import unittest

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, log, require_tools, run, wait_for
from test_ask import CLIENT, CONNECTIONS, DATAGRAM_BYTES, DATAGRAMS, SINK, TCP_PORT, UDP_PORT, WIRE_OVERHEAD
from test_http import Pki

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")
KEY = "sk-test-0123456789"

EXIT_UNCHECKED, EXIT_LLM_ERROR, EXIT_LLM_TIMEOUT = 6, 7, 8


def calls_message(calls: list) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": None,
                                     "tool_calls": [{"id": cid, "type": "function",
                                                     "function": {"name": name, "arguments": json.dumps(args)}}
                                                    for cid, name, args in calls]}}]}


def text_message(text: str) -> dict:
    return {"id": "chatcmpl-2", "object": "chat.completion", "model": "scripted",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}


def tool_messages(req: dict) -> dict:
    return {m["tool_call_id"]: m["content"] for m in req["messages"] if m.get("role") == "tool"}


class ChatServer:
    """An OpenAI-compatible chat-completions endpoint on 127.0.0.1 (TLS with cert/key)
    playing `script(request, n)`, n = 0, 1, ...: it returns a dict (a 200 JSON answer),
    ("status", code, body), ("raw", bytes) or ("hang",) (no answer until the server ends).
    Every request is recorded: (path, headers, raw body, parsed JSON or None)."""

    def __init__(self, tc: E2ETestCase, script, cert: tuple[str, str] | None = None):
        self.script = script
        self.requests: list[tuple[str, dict, str, dict | None]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n).decode()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with outer.lock:
                    idx = len(outer.requests)
                    outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body))
                try:
                    out = outer.script(body, idx)
                except Exception as e:  # a script bug must show, not hang the CLI
                    log(f"chat script failed on request {idx}: {e!r}")
                    out = ("status", 599, json.dumps({"error": {"message": f"script error: {e!r}"}}))
                if isinstance(out, dict):
                    out = ("status", 200, json.dumps(out))
                if out[0] == "hang":
                    outer.release.wait(120)
                    return
                status, payload = (200, out[1]) if out[0] == "raw" else (out[1], out[2])
                data = payload if isinstance(payload, bytes) else payload.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert[0], cert[1])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        tc.defer(f"chat server :{self.port}", self.close)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [b for _, _, _, b in self.requests]

    def raw(self) -> list[str]:
        with self.lock:
            return [r for _, _, r, _ in self.requests]

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def loopback_free(doc: dict, ends: set) -> dict:
    """The topology document without the edges and nodes of other hosts' connections (the
    socket monitor sees every TCP connection of the machine: the API calls themselves)."""
    d = dict(doc)
    d["edges"] = [e for e in doc.get("edges", []) if e["source"] in ends and e["target"] in ends]
    d["nodes"] = [n for n in doc.get("nodes", []) if n["id"] in ends]
    d.pop("overflow", None)
    d.pop("truncated", None)
    return d


class AskLlmTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(CLI, "openssl")

    def ask(self, question: str, *args: str, rc: int | None = 0, output: str = "json", env: dict | None = None,
            server: str | None = None, timeout: float = 60):
        argv = [CLI, f"--server={server or self.server}", "-o", output, "ask", *args, question]
        t0 = time.monotonic()
        p = run(argv, check=False, timeout=timeout, env={**os.environ, "NETPROBE_LLM_KEY": KEY, **(env or {})})
        p.seconds = time.monotonic() - t0
        if rc is not None:
            self.assertEqual(p.returncode, rc, f"{' '.join(argv)}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def traffic(self):
        """An agent, test_ask's traffic, settled in the service map; sets self.agent, .server, .host, .peer."""
        veth = self.make_veth()
        self.host, self.peer = veth.host_ip, veth.peer_ip
        sink = self.spawn([PYTHON, "-c", SINK, self.host, str(UDP_PORT), str(TCP_PORT)], stdout=subprocess.PIPE,
                          name="sink")
        self.defer("the sink's stdout", sink.p.stdout.close)
        self.assertEqual(sink.p.stdout.readline().strip(), b"READY")
        self.agent = self.start_agent(f"--interface-filter={veth.host}", "--collect-interval=500ms")
        self.server = f"http://127.0.0.1:{self.agent.port}"
        sent = json.loads(run([PYTHON, "-c", CLIENT, self.host, str(UDP_PORT), str(TCP_PORT), str(DATAGRAMS),
                               str(DATAGRAM_BYTES), str(CONNECTIONS)], netns=veth.ns, timeout=60).stdout)
        self.assertEqual(sent["udp_datagrams"], DATAGRAMS)
        udp_wire = DATAGRAMS * (DATAGRAM_BYTES + WIRE_OVERHEAD)

        def settled():
            topo = self.agent.get_json("/api/v1/topology?window=5m&group_by=host")
            udp = [e for e in topo["edges"] if e["port"] == UDP_PORT and e["transport"] == "udp"]
            tcp = [e for e in topo["edges"] if e["port"] == TCP_PORT]
            return udp and udp[0]["bytes_out"] >= udp_wire and tcp and tcp[0]["connections_opened"] >= CONNECTIONS
        wait_for(settled, 20, "the traffic in the service map")
        self.agent.wait_collections(3)
        self.udp_wire = udp_wire

    # -- the scripts ---------------------------------------------------------------------

    def tool_script(self, made_up: str = ""):
        """get_topology + list_flows (+ an invalid call), then an answer from their results
        (stateless: a request without tool results is a new conversation)."""
        def script(req, n):
            if not tool_messages(req):
                return calls_message([("c1", "get_topology", {"window": "5m", "group_by": "host"}),
                                      ("c2", "list_flows", {"port": UDP_PORT, "limit": 20}),
                                      ("c3", "list_flows", {"port": 70000})])
            tm = tool_messages(req)
            topo, flows = json.loads(tm["c1"]), json.loads(tm["c2"])
            e = [x for x in topo["edges"] if x["port"] == UDP_PORT and x["transport"] == "udp"][0]
            return text_message(
                f"According to get_topology, {e['source']} sent {e['bytes_out']} bytes "
                f"({e['bytes_out'] / 1024:.1f} KiB) in {e['packets_out']} packets to {e['target']}:{e['port']} "
                f"over the last {int(topo['window_seconds'] // 60)} minutes; list_flows has {flows['total']} "
                f"flows on port {UDP_PORT}.{made_up}")
        return script

    # -- tests ---------------------------------------------------------------------------

    def test_tool_calls_run_against_the_agent_and_the_figures_are_checked(self):
        self.traffic()
        topo_q, flows_q = "/api/v1/topology?group_by=host&window=5m", f"/api/v1/flows?limit=20&port={UDP_PORT}"
        ends = {self.host, self.peer}
        before = [loopback_free(self.agent.get_json(topo_q), ends), self.agent.get_json(flows_q)]
        chat = ChatServer(self, self.tool_script())
        llm = ["--llm=always", f"--llm-endpoint={chat.url}", "--llm-model=scripted"]
        p = self.ask("which client sends the most to the sink?", *llm)
        after = [loopback_free(self.agent.get_json(topo_q), ends), self.agent.get_json(flows_q)]
        doc = json.loads(p.stdout)
        log(f"answer: {doc['text']}\nverification: {json.dumps(doc['verification'])}")

        # What the server got: the question, the tools, the key; then the tool results,
        # which are the agent's own answers to the same queries.
        bodies = chat.bodies()
        self.assertEqual(len(bodies), 2)
        first = bodies[0]
        self.assertEqual(chat.requests[0][0], "/v1/chat/completions")
        self.assertEqual(chat.requests[0][1]["authorization"], f"Bearer {KEY}")
        self.assertEqual(first["model"], "scripted")
        self.assertEqual(first["messages"][1], {"role": "user", "content": "which client sends the most to the sink?"})
        self.assertIn("get_topology", [t["function"]["name"] for t in first["tools"]])
        self.assertEqual(len(first["tools"]), 21)
        tm = tool_messages(bodies[1])
        got_topo = loopback_free(json.loads(tm["c1"]), ends)
        self.assertIn(got_topo, [before[0], after[0]], "the topology the server got is the agent's")
        self.assertIn(json.loads(tm["c2"]), [before[1], after[1]], "the flows the server got are the agent's")
        self.assertTrue(tm["c3"].startswith("error: not run: invalid arguments for list_flows: argument \"port\""),
                        tm["c3"])

        # What the CLI printed: the answer, the calls as API targets, every figure checked.
        self.assertEqual(doc["mode"], "llm")
        self.assertEqual([c.get("target") for c in doc["tool_calls"]], [topo_q, flows_q, None])
        self.assertIn("argument \"port\"", doc["tool_calls"][2]["error"])
        self.assertTrue(doc["verification"]["ok"], doc["verification"])
        self.assertEqual(doc["verification"]["unchecked"], [])
        checked = [c["text"] for c in doc["verification"]["checked"]]
        self.assertIn(f"{self.udp_wire} bytes", checked)
        self.assertIn(f"{self.udp_wire / 1024:.1f} KiB", checked)
        self.assertIn(self.peer, checked)
        self.assertIn(str(DATAGRAMS), checked)
        self.assertIn(f"{self.peer} sent {self.udp_wire} bytes", doc["text"], "the UDP edge has the client's datagrams")

        # A made-up figure: the same answer plus a number no tool returned -> flagged, exit 6.
        chat2 = ChatServer(self, self.tool_script(made_up=" It dropped 4711 packets."))
        p = self.ask("which client sends the most to the sink?", "--llm=always", f"--llm-endpoint={chat2.url}",
                     rc=EXIT_UNCHECKED)
        doc = json.loads(p.stdout)
        self.assertFalse(doc["verification"]["ok"])
        self.assertEqual([u["text"] for u in doc["verification"]["unchecked"]], ["4711"])
        self.assertIn("It dropped 4711 packets.", doc["text"])
        self.assertIn("not in the tool results", p.stderr)
        out = self.ask("which client sends the most to the sink?", "--llm=always", f"--llm-endpoint={chat2.url}",
                       rc=EXIT_UNCHECKED, output="table").stdout
        log(f"table output:\n{out}")
        self.assertIn(f"GET {topo_q}", out)
        self.assertIn("1 NOT in the tool results (unchecked)", out)
        self.assertIn('unchecked "4711" in', out)

        # --llm=auto: a question the offline parser maps never reaches the server; one it
        # cannot map does.
        n = len(chat.requests)
        doc = json.loads(self.ask("top talkers", f"--llm-endpoint={chat.url}").stdout)
        self.assertEqual(doc["intent"]["kind"], "top_talkers")
        self.assertEqual(len(chat.requests), n, "the offline answer asked the LLM nothing")
        chat3 = ChatServer(self, self.tool_script())
        doc = json.loads(self.ask("which client sends the most to the sink?", f"--llm-endpoint={chat3.url}").stdout)
        self.assertTrue(doc["why"].startswith("the offline parser cannot map the question"), doc["why"])
        self.assertTrue(doc["verification"]["ok"])
        # --llm=never: the offline refusal, exit 5
        self.ask("which client sends the most to the sink?", "--llm=never", f"--llm-endpoint={chat3.url}", rc=5)
        self.assertEqual(len(chat3.requests), 2)

    def test_anonymize_keeps_addresses_on_the_node_and_restores_them(self):
        self.traffic()

        def script(req, n):
            if not tool_messages(req):
                q = req["messages"][1]["content"]
                placeholders = re.findall(r"\bip-\d+\b", q)
                assert len(placeholders) == 2, q
                return calls_message([("t", "get_topology", {"window": "5m"}),
                                      ("f", "list_flows", {"ip": placeholders[0], "port": UDP_PORT})])
            tm = tool_messages(req)
            topo = json.loads(tm["t"])
            e = [x for x in topo["edges"] if x["port"] == UDP_PORT and x["transport"] == "udp"][0]
            flows = json.loads(tm["f"])["flows"]
            assert flows and flows[0]["src_ip"] == e["source"], (flows, e)
            return text_message(f"{e['source']} sent {e['bytes_out']} bytes to {e['target']}:{e['port']} "
                                f"(get_topology); list_flows shows the flow from {flows[0]['src_ip']} "
                                f"port {flows[0]['src_port']}.")
        chat = ChatServer(self, script)
        p = self.ask(f"how much does {self.peer} send to {self.host} over UDP?", "--llm=always",
                     f"--llm-endpoint={chat.url}", "--anonymize")
        doc = json.loads(p.stdout)
        log(f"anonymized answer: {doc['text']}")
        raw = chat.raw()
        self.assertEqual(len(raw), 2)
        for body in raw:
            for secret in (self.peer, self.host, "127.0.0.1"):
                self.assertNotIn(secret, body, "an address reached the model")
        self.assertRegex(raw[0], r"how much does ip-\d+ send to ip-\d+ over UDP\?")
        # the agent was asked with the real address; the reader gets the real ones back
        self.assertEqual(doc["tool_calls"][1]["arguments"]["ip"], self.peer)
        self.assertEqual(doc["tool_calls"][1]["target"], f"/api/v1/flows?ip={self.peer}&port={UDP_PORT}")
        self.assertTrue(doc["text"].startswith(f"{self.peer} sent {self.udp_wire} bytes to {self.host}:{UDP_PORT}"),
                        doc["text"])
        self.assertTrue(doc["anonymized"])
        self.assertGreaterEqual(doc["placeholders"], 2)
        self.assertTrue(doc["verification"]["ok"], doc["verification"])
        self.assertIn(self.peer, [c["text"] for c in doc["verification"]["checked"]])

    def test_endpoint_errors_and_timeouts(self):
        self.server = "http://127.0.0.1:1"  # no agent: these end before any tool call, or the call fails
        q = "which client sends the most to the sink?"

        # A server that never answers: exit 8 once --llm-timeout is up.
        hang = ChatServer(self, lambda req, n: ("hang",))
        p = self.ask(q, "--llm=always", f"--llm-endpoint={hang.url}", "--llm-timeout=2s", rc=EXIT_LLM_TIMEOUT,
                     output="table")
        self.assertIn("did not answer within", p.stderr)
        self.assertIn("(timeout)", p.stderr)
        self.assertLess(p.seconds, 8, "the timeout was honoured")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        p = self.ask(q, "--llm=always", f"--llm-endpoint={hang.url}", "--llm-timeout=1s", rc=EXIT_LLM_TIMEOUT)
        self.assertEqual(json.loads(p.stdout)["error"]["kind"], "timeout")

        # 500 with the server's message; a body that is not JSON; JSON that is not an answer.
        for script, says in (
                (lambda req, n: ("status", 500, json.dumps({"error": {"message": "the model is overloaded"}})),
                 "answered 500: the model is overloaded"),
                (lambda req, n: ("raw", b"this is not json {"), 'is not JSON: "this is not json {"'),
                (lambda req, n: {"object": "list", "data": []}, "not a chat-completions answer"),
                (lambda req, n: ("status", 401, json.dumps({"error": "invalid api key"})), "refused the request (401")):
            s = ChatServer(self, script)
            p = self.ask(q, "--llm=always", f"--llm-endpoint={s.url}", rc=EXIT_LLM_ERROR, output="table")
            self.assertIn(says, p.stderr)
            self.assertNotIn(KEY, p.stderr + p.stdout)
            self.assertEqual(p.stdout, "")
        # Nothing listens there.
        port = free_port()
        p = self.ask(q, "--llm=always", f"--llm-endpoint=http://127.0.0.1:{port}", rc=EXIT_LLM_ERROR, output="table")
        self.assertIn(f"cannot reach the LLM endpoint http://127.0.0.1:{port}/v1/chat/completions", p.stderr)

        # A model that never stops calling tools: exit 7 after --llm-max-rounds; the agent's
        # errors went back to it as tool results.
        loop = ChatServer(self, lambda req, n: calls_message([(f"i{n}", "list_interfaces", {})]))
        p = self.ask(q, "--llm=always", f"--llm-endpoint={loop.url}", "--llm-max-rounds=2", rc=EXIT_LLM_ERROR)
        self.assertIn("after 2 rounds", p.stderr)
        bodies = loop.bodies()
        self.assertEqual(len(bodies), 3)
        self.assertEqual(bodies[2]["tool_choice"], "none")
        self.assertTrue(tool_messages(bodies[1])["i0"].startswith(
            "error: the NetProbe agent could not answer GET /api/v1/interfaces: cannot reach the agent"))
        self.assertEqual(len(json.loads(p.stdout)["tool_calls"]), 2)

        # TLS: the endpoint's certificate checked against --llm-ca-file.
        pki = Pki(self.tmpdir())
        tls = ChatServer(self, lambda req, n: text_message("No figures in this answer."),
                         cert=(pki.path("server.crt"), pki.path("server.key")))
        p = self.ask(q, "--llm=always", f"--llm-endpoint={tls.url}", f"--llm-ca-file={pki.path('ca.crt')}")
        self.assertEqual(json.loads(p.stdout)["text"], "No figures in this answer.")
        p = self.ask(q, "--llm=always", f"--llm-endpoint={tls.url}", f"--llm-ca-file={pki.path('rogue-ca.crt')}",
                     rc=EXIT_LLM_ERROR, output="table")
        self.assertIn("certificate", p.stderr)

        # The key is never taken from the command line; --llm=always needs an endpoint.
        p = self.ask(q, "--llm-key", KEY, rc=2, output="table")
        self.assertIn("never taken from the command line", p.stderr)
        self.assertNotIn(KEY, p.stderr)
        p = self.ask(q, "--llm=always", rc=2, output="table")
        self.assertIn("needs --llm-endpoint", p.stderr)


if __name__ == "__main__":
    unittest.main()
