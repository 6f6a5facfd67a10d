"""`netprobe ask` against a real agent: the figures of each answer are what the agent's
API itself reports for the queries the answer names (fetched again by the test once the
traffic is over), and, where the traffic has an oracle of its own, what the client sent:
300 UDP datagrams of 1000 bytes (bytes on the wire: 300 x (1000 + 8 + 20 + 14)), 20 TCP
connections (20 handshakes timed), an nmap scan of 200 ports (a port scan). A question
the parser cannot map exits 5 with examples, without asking the agent anything.

Topology: the agent on the host end of a veth (its API on loopback), the clients in a
namespace the test creates. Addresses from 198.19.0.0/16 (e2e_base).

With NETPROBE_ASK_RECORD=1 the test writes each question, the CLI's clock and the
documents of its queries to tests/unit/data/ask/ (the unit tests' captures: real agent
answers, never hand-typed).
"""

import json
import os
import subprocess
import time
import unittest

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, log, require_tools, run, wait_for

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")
HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = os.path.join(os.path.dirname(HERE), "unit", "data", "ask")

UDP_PORT, TCP_PORT = 7201, 7202
DATAGRAMS, DATAGRAM_BYTES = 300, 1000
CONNECTIONS = 20
WIRE_OVERHEAD = 8 + 20 + 14  # UDP + IPv4 + Ethernet headers

SINK = r"""
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], int(sys.argv[2])))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], int(sys.argv[3])))
t.listen(64)
def echo(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
def tcp():
    while True:
        c, _ = t.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
print("READY", flush=True)
while True:
    u.recvfrom(65536)
"""

# DATAGRAMS datagrams of DATAGRAM_BYTES to the UDP port, then CONNECTIONS TCP connections
# (4 KiB echoed each, closed); prints what it sent.
CLIENT = r"""
import json, socket, sys, time
host, up, tp, n, size, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
for _ in range(n):
    sent += u.sendto(b"x" * size, (host, up))
    time.sleep(0.001)
ok = 0
for _ in range(conns):
    c = socket.create_connection((host, tp), timeout=5)
    c.sendall(b"y" * 4096)
    got = 0
    while got < 4096:
        got += len(c.recv(65536))
    c.close()
    ok += 1
print(json.dumps({"udp_datagrams": n, "udp_bytes": sent, "tcp_connections": ok}), flush=True)
"""


class AskTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(CLI, "nmap")

    def ask(self, question: str, *args: str, rc: int = 0, output: str = "json"):
        argv = [CLI, f"--server={self.server}", "-o", output, "ask", *args, question]
        p = run(argv, check=False, timeout=60)
        self.assertEqual(p.returncode, rc, f"{' '.join(argv)}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def ask_json(self, question: str) -> dict:
        doc = json.loads(self.ask(question).stdout)
        log(f"ask {question!r}:\n{doc['text']}")
        return doc

    def api(self, target: str) -> dict:
        return self.agent.get_json(target)

    def documents(self, doc: dict) -> list:
        """The documents of the answer's queries, as the agent answers them now."""
        return [self.api(q) for q in doc["queries"]]

    def record(self, doc: dict, docs: list) -> None:
        if os.environ.get("NETPROBE_ASK_RECORD") != "1":
            return
        os.makedirs(CAPTURES, exist_ok=True)
        intent = doc["intent"]
        out = {"question": doc["question"], "kind": intent["kind"], "now_unix": intent["now_unix"],
               "utc_offset_seconds": intent["utc_offset_seconds"], "queries": doc["queries"], "documents": docs}
        with open(os.path.join(CAPTURES, f"{intent['kind']}.json"), "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")

    def test_answers_are_the_apis_figures(self):
        veth = self.make_veth()
        host, peer = veth.host_ip, veth.peer_ip
        sink = self.spawn([PYTHON, "-c", SINK, host, str(UDP_PORT), str(TCP_PORT)], stdout=subprocess.PIPE, name="sink")
        self.assertEqual(sink.p.stdout.readline().strip(), b"READY")
        self.agent = self.start_agent(f"--interface-filter={veth.host}", "--collect-interval=500ms",
                                      "--security-set=scan.vertical_ports=20")
        self.server = f"http://127.0.0.1:{self.agent.port}"

        client = run([PYTHON, "-c", CLIENT, host, str(UDP_PORT), str(TCP_PORT), str(DATAGRAMS), str(DATAGRAM_BYTES),
                      str(CONNECTIONS)], netns=veth.ns, timeout=60)
        sent = json.loads(client.stdout)
        self.assertEqual(sent, {"udp_datagrams": DATAGRAMS, "udp_bytes": DATAGRAMS * DATAGRAM_BYTES,
                                "tcp_connections": CONNECTIONS})
        # The traffic is over: wait until the service map and the handshakes have it all.
        udp_wire = DATAGRAMS * (DATAGRAM_BYTES + WIRE_OVERHEAD)

        def settled():
            topo = self.api("/api/v1/topology?window=5m&group_by=host")
            udp = [e for e in topo["edges"] if e["port"] == UDP_PORT and e["transport"] == "udp"]
            qos = self.api("/api/v1/qos?window=5m&group_by=host")
            tcp = [e for e in qos["edges"] if e["port"] == TCP_PORT]
            return udp and udp[0]["bytes_out"] >= udp_wire and tcp and tcp[0]["handshakes"] >= CONNECTIONS
        wait_for(settled, 20, "the traffic in the service map and the QoS view")
        self.agent.wait_collections(3)

        # -- top talkers: the pair client -> server with the map's bytes ----------------------
        doc = self.ask_json("top talkers in the last 5 minutes")
        self.assertEqual(doc["intent"]["kind"], "top_talkers")
        self.assertEqual(doc["queries"], ["/api/v1/topology?window=5m&group_by=host"])
        docs = self.documents(doc)
        self.record(doc, docs)
        topo = docs[0]
        pair = [r for r in doc["rows"] if r["client"] == peer and r["server"] == host]
        self.assertEqual(len(pair), 1, doc["rows"])
        edges = [e for e in topo["edges"] if e["source"] == peer and e["target"] == host]
        self.assertEqual(pair[0]["bytes_sent"], sum(e["bytes_out"] for e in edges))
        self.assertEqual(pair[0]["bytes_received"], sum(e["bytes_in"] for e in edges))
        self.assertEqual(set(pair[0]["ports"].split(",")), {f"udp/{UDP_PORT}", f"tcp/{TCP_PORT}"})
        # the client's own count: every datagram and its headers, and the TCP bytes on top
        self.assertGreater(pair[0]["bytes_sent"], udp_wire + CONNECTIONS * 4096)
        self.assertIn(f"{peer} -> {host}", doc["text"])
        self.assertIn(f"over the last {int(topo['window_seconds'] // 60)} min", doc["text"])

        # -- who talks to the UDP port: one client, the datagrams' bytes exactly --------------
        doc = self.ask_json(f"who talks to {host}:{UDP_PORT}")
        self.assertEqual(doc["intent"]["kind"], "who_talks")
        docs = self.documents(doc)
        self.record(doc, docs)
        self.assertEqual(len(doc["rows"]), 1, doc["rows"])
        row = doc["rows"][0]
        edge = [e for e in docs[0]["edges"] if e["target"] == host and e["port"] == UDP_PORT][0]
        self.assertEqual((row["client"], row["server"], row["port"]), (peer, host, f"udp/{UDP_PORT}"))
        self.assertEqual(row["bytes_sent"], edge["bytes_out"])
        self.assertEqual(row["bytes_sent"], udp_wire, "the client's datagrams with their headers")
        self.assertIn("1 client talked to", doc["text"])

        # -- top ports: both ports with the map's bytes --------------------------------------
        doc = self.ask_json("what are the top 5 ports")
        docs = self.documents(doc)
        self.record(doc, docs)
        by_port = {r["port"]: r for r in doc["rows"]}
        for transport, port in (("udp", UDP_PORT), ("tcp", TCP_PORT)):
            want = sum(e["bytes_out"] + e["bytes_in"] for e in docs[0]["edges"]
                       if e["port"] == port and e["transport"] == transport)
            self.assertEqual(by_port[f"{transport}/{port}"]["bytes"], want)

        # -- latency between the two ends: the QoS edge's handshakes and RTT -------------------
        doc = self.ask_json(f"what is the latency between {peer} and {host}")
        self.assertEqual(doc["intent"]["kind"], "latency")
        docs = self.documents(doc)
        self.record(doc, docs)
        qedge = [e for e in docs[0]["edges"] if e["client"] == peer and e["server"] == host and e["port"] == TCP_PORT][0]
        row = [r for r in doc["rows"] if r["port"] == TCP_PORT][0]
        self.assertEqual(row["handshakes"], qedge["handshakes"])
        self.assertEqual(row["handshakes"], CONNECTIONS, "one handshake per connection the client opened")
        self.assertEqual(row["rtt_p50_ms"], qedge["rtt_ms"]["p50"])
        self.assertEqual(row["rtt_p99_ms"], qedge["rtt_ms"]["p99"])
        self.assertGreater(row["rtt_p50_ms"], 0)
        self.assertIn(f"{peer} -> {host}:{TCP_PORT}", doc["text"])

        # -- errors between them: none failed, the connections the client opened --------------
        doc = self.ask_json(f"errors between {peer} and {host}")
        row = [r for r in doc["rows"] if r["port"] == TCP_PORT][0]
        self.assertEqual(row["failed"], 0)
        self.assertEqual(row["connections"], CONNECTIONS)

        # -- why is the server slow: its edges as a server, the findings ----------------------
        doc = self.ask_json(f"why is {host} slow")
        self.assertEqual(doc["intent"]["kind"], "why_slow")
        edges = next(t for t in doc["tables"] if t["title"] == "edges")["rows"]
        self.assertTrue(any(r["role"] == "server" and r["port"] == TCP_PORT for r in edges), edges)

        # -- nothing scanned yet; then nmap -----------------------------------------------------
        doc = self.ask_json("is anything being scanned")
        self.assertEqual(doc["rows"], [])
        self.assertTrue(doc["text"].startswith("No"), doc["text"])
        self.ask("is anything being scanned", "--fail-if-empty", rc=3)
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-200", "--max-rate", "2000", host], netns=veth.ns, timeout=120)
        wait_for(lambda: self.api("/api/v1/events?type=port_scan")["events"], 20, "the scan to be an event")
        doc = self.ask_json("is anything being scanned")
        self.assertEqual(doc["intent"]["kind"], "scans")
        docs = self.documents(doc)
        self.record(doc, docs)
        events = docs[0]["events"]
        self.assertEqual([(r["type"], r["source"], r["target"]) for r in doc["rows"]],
                         [(e["type"], e["src_ip"], e["dst_ip"]) for e in events])
        self.assertIn((peer, host), [(r["source"], r["target"]) for r in doc["rows"]])
        self.assertTrue(doc["text"].startswith(("Yes", "Not now")), doc["text"])

        # -- what changed in the last 10 minutes: the scan is among the security events --------
        doc = self.ask_json("what changed in the last 10 minutes")
        self.assertEqual(doc["intent"]["kind"], "changes")
        docs = self.documents(doc)
        self.record(doc, docs)
        sec = next(t for t in doc["tables"] if t["title"] == "security events")["rows"]
        self.assertIn(("port_scan", peer), [(r["type"], r["source"]) for r in sec])

        # -- the table output: the text and the queries to repeat ------------------------------
        out = self.ask(f"who talks to {host}:{UDP_PORT}", output="table").stdout
        self.assertIn(f"{peer} -> {host} (udp/{UDP_PORT})", out)
        self.assertIn("query: GET /api/v1/topology?window=5m&group_by=host", out)
        wide = self.ask(f"who talks to {host}:{UDP_PORT}", output="wide").stdout
        self.assertIn("BYTES SENT", wide)

    def test_refused_questions_exit_5_with_examples(self):
        # Nothing listens there: a refusal never reaches the agent.
        self.server = "http://127.0.0.1:1"
        p = self.ask("what is the weather like in Paris", rc=5, output="table")
        self.assertEqual(p.stdout, "")
        self.assertTrue(p.stderr.startswith("netprobe: cannot answer: not understood: \"weather\""), p.stderr)
        self.assertIn('netprobe ask "top talkers in the last 10 minutes"', p.stderr)
        p = self.ask("who talks to shop/cart", rc=5)
        doc = json.loads(p.stdout)
        self.assertIn("a pod or a workload", doc["cannot_answer"]["reason"])
        self.assertGreaterEqual(len(doc["cannot_answer"]["examples"]), 10)
        # an answerable question with no agent: exit 1, one line naming the server
        p = self.ask("top talkers", rc=1, output="table")
        self.assertIn("cannot reach the agent at http://127.0.0.1:1", p.stderr)
        # usage errors: exit 2
        p = run([CLI, "ask"], check=False)
        self.assertEqual(p.returncode, 2, p.stderr)


if __name__ == "__main__":
    unittest.main()
