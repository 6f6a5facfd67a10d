"""The `netprobe` command line against a real agent: what it prints is what the agent's
API says (the API is the oracle here; its own counts are checked by the other e2e
tests), its exit codes, and TLS + basic auth with the agent's web config.

Topology: an agent on the host end of a veth (its API on loopback); a client namespace
sends UDP datagrams of known sizes to a UDP sink on the host end, holds one TCP
connection, and nmap scans the host end's ports (a port scan event).
"""

import json
import os
import signal
import subprocess
import time
import unittest

import yaml

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, log, require_tools, run, wait_for
from test_http import Pki, htpasswd

CLI = os.path.join(os.path.dirname(AGENT), "netprobe")

SINK = r"""
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 7101))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 7102))
t.listen(4)
def echo(c):
    while True:
        d = c.recv(4096)
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

# 300 datagrams of 1000 bytes to :7101 from source port 41000, then a TCP connection to
# :7102 held open (one echo exchange every 0.5 s) until killed.
CLIENT = r"""
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 41000))
for _ in range(300):
    u.sendto(b"x" * 1000, (sys.argv[1], 7101))
c = socket.create_connection((sys.argv[1], 7102))
print("CONNECTED", c.getsockname()[1], flush=True)
while True:
    c.sendall(b"ping")
    c.recv(16)
    time.sleep(0.5)
"""


class NetprobeCliTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools(CLI, "nmap", "openssl", "htpasswd")

    def setUp(self) -> None:
        self.veth = self.make_veth()
        self.sink = self.spawn([PYTHON, "-c", SINK, self.veth.host_ip], stdout=subprocess.PIPE, name="sink")
        wait_for(lambda: self.sink.running() and _listening(7102), 10, "the sink to listen")

    def cli(self, *args: str, server: str | None = None, env: dict | None = None, check_rc: int | None = 0):
        argv = [CLI, f"--server={server or self.server}", *args]
        p = run(argv, check=False, timeout=60, env={**os.environ, **(env or {})})
        if check_rc is not None:
            self.assertEqual(p.returncode, check_rc, f"{' '.join(argv)}\nstdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def test_flows_connections_top_and_events_say_what_the_api_says(self):
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                 "--security-set=scan.vertical_ports=20")
        self.server = f"http://127.0.0.1:{agent.port}"
        client = self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip], netns=self.veth.ns, stdout=subprocess.PIPE,
                            name="client")
        wait_for(lambda: agent.flows(port=7102)["total"] > 0 and agent.flows(port=41000)["total"] > 0, 20,
                 "the flows to appear")
        time.sleep(1.2)  # a collection after the UDP burst: its counters final

        # flows -o json is the API's document; the table shows the same flows.
        api = agent.get_json("/api/v1/flows?port=41000&limit=20")
        got = json.loads(self.cli("-o", "json", "flows", "--port", "41000").stdout)
        self.assertEqual([(f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["packets"], f["bytes"])
                          for f in got["flows"]],
                         [(f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["packets"], f["bytes"])
                          for f in api["flows"]])
        udp = [f for f in got["flows"] if f["protocol"] == "udp"]
        self.assertEqual(len(udp), 1)
        self.assertEqual(udp[0]["packets"], 300)
        table = self.cli("flows", "--port", "41000").stdout.splitlines()
        self.assertTrue(table[0].split()[:3] == ["SOURCE", "DESTINATION", "PROTO"], table[0])
        row = next(x for x in table[1:] if f"{self.veth.peer_ip}:41000" in x)
        self.assertIn(f"{self.veth.host_ip}:7101", row)
        self.assertIn("300", row.split())
        log(f"flows table row: {row}")
        wide = self.cli("-o", "wide", "flows", "--port", "41000").stdout.splitlines()[0]
        self.assertIn("DST SERVICE", wide)
        # A filter that matches nothing: an empty table, exit 3 with --fail-if-empty.
        self.cli("flows", "--port", "9", "--fail-if-empty", check_rc=3)
        self.assertEqual(len(self.cli("flows", "--port", "9").stdout.splitlines()), 1)
        # --since keeps only flows with recent packets: the UDP burst is over, the TCP one is not.
        time.sleep(3)
        recent = json.loads(self.cli("-o", "json", "flows", "--since", "2s", "--ip", self.veth.peer_ip).stdout)
        ports = {(f["src_port"], f["dst_port"]) for f in recent["flows"]}
        self.assertNotIn((41000, 7101), ports)
        self.assertTrue(any(7102 in p for p in ports), recent)

        # top talkers: the UDP burst is the busiest pair by bytes; ports list tcp/7102 and udp/7101.
        top = json.loads(self.cli("-o", "json", "top", "ports", "--limit", "50").stdout)
        names = [r["port"] for r in top]
        self.assertIn("udp/7101", names)
        self.assertIn("tcp/7102", names)
        talkers = self.cli("top", "talkers").stdout
        self.assertIn(f"{self.veth.peer_ip} -> {self.veth.host_ip}", talkers)

        # connections: the held TCP connection, as /api/v1/connections has it.
        line = client.p.stdout.readline().decode()
        self.assertTrue(line.startswith("CONNECTED"), line)
        cport = int(line.split()[1])
        conns = json.loads(self.cli("-o", "json", "connections", "--port", str(cport)).stdout)
        self.assertTrue(any(c["src_port"] == cport or c["dst_port"] == cport for c in conns["connections"]), conns)
        self.assertIn(f"{self.veth.peer_ip}:{cport}", self.cli("connections", "--port", str(cport)).stdout)

        # interfaces: the attached veth.
        self.assertIn(self.veth.host, self.cli("interfaces").stdout)

        # events: none yet (exit 3 with --fail-if-empty), then a port scan from the client.
        self.cli("events", "--type", "port_scan", "--fail-if-empty", check_rc=3)
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-200", "--max-rate", "2000", self.veth.host_ip],
            netns=self.veth.ns, timeout=120)
        wait_for(lambda: self.cli("events", "--type", "port_scan", "--fail-if-empty", check_rc=None).returncode == 0,
                 20, "the scan to be an event")
        ev = self.cli("events", "--type", "port_scan").stdout.splitlines()
        self.assertIn("port_scan", ev[1])
        self.assertIn(self.veth.peer_ip, ev[1])
        log(f"events: {ev[1]}")

        # --follow prints flows as they move: the held connection shows up again within a few polls.
        p = subprocess.Popen([CLI, f"--server={self.server}", "flows", "--follow", "--port", str(cport),
                              "--interval", "500ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        self.defer("netprobe --follow", lambda: (p.kill(), p.wait()))
        time.sleep(4)
        p.kill()
        out = p.communicate()[0].decode().splitlines()
        rows = [x for x in out if str(cport) in x]
        self.assertGreaterEqual(len(rows), 2, f"follow printed {out}")
        self.assertEqual(sum(1 for x in out if x.startswith("SOURCE")), 1, "one header")

    def same_as_json(self, *args: str):
        """-o yaml of a subcommand is its -o json document (parsed with PyYAML). The documents
        move between two reads (rates, timestamps): YAML read between two JSON reads must
        equal one of them."""
        for _ in range(5):
            j1 = json.loads(self.cli("-o", "json", *args).stdout)
            y = yaml.safe_load(self.cli("-o", "yaml", *args).stdout)
            j2 = json.loads(self.cli("-o", "json", *args).stdout)
            if y in (j1, j2):
                return y
        self.fail(f"-o yaml {' '.join(args)} differs from -o json:\n{y}\n{j2}")

    def test_yaml_bottlenecks_top_retransmits_and_events_follow(self):
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                 "--security-set=scan.vertical_ports=20")
        self.server = f"http://127.0.0.1:{agent.port}"
        # events --follow reads a new event as it happens and ends on SIGINT.
        follow = subprocess.Popen([CLI, f"--server={self.server}", "-o", "json", "events", "--follow",
                                   "--interval", "500ms"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True)
        self.defer("netprobe events --follow", lambda: (follow.kill(), follow.wait()))
        time.sleep(1.5)
        self.assertIsNone(follow.poll())
        run(["nmap", "-n", "-Pn", "-sS", "-p", "1-200", "--max-rate", "2000", self.veth.host_ip],
            netns=self.veth.ns, timeout=120)
        line = follow.stdout.readline().decode()  # blocks until the event is printed
        if not line:  # the process ended
            self.fail(f"events --follow ended (rc {follow.wait()}): {follow.stderr.read().decode()}")
        event = json.loads(line)
        self.assertEqual(event["type"], "port_scan")
        self.assertEqual(event["src_ip"], self.veth.peer_ip)
        api = [e for e in agent.get_json("/api/v1/events?type=port_scan")["events"]]
        self.assertIn(event["id"], [e["id"] for e in api])
        follow.send_signal(signal.SIGINT)
        rc = follow.wait(timeout=10)
        rest = follow.stdout.read().decode()
        self.assertEqual(rc, 0, follow.stderr.read().decode())
        for x in rest.splitlines():  # whole lines only
            json.loads(x)

        # -o yaml is -o json: a document of every kind (objects, arrays, strings, numbers,
        # booleans, null) and --follow's one document per item
        ev = self.same_as_json("events", "--type", "port_scan")
        self.assertEqual([e["id"] for e in ev["events"]], [e["id"] for e in api])
        self.same_as_json("interfaces")
        self.same_as_json("diagnose")
        self.same_as_json("bottlenecks")
        p = self.cli("-o", "yaml", "flows", "--port", "7999", "--fail-if-empty", check_rc=3)  # (nmap probed 1-200)
        self.assertEqual(yaml.safe_load(p.stdout)["flows"], [])
        self.cli("-o", "xml", "flows", check_rc=2)

        # bottlenecks: the API's findings, ranked, in the table
        doc = agent.get_json("/api/v1/bottlenecks")
        got = json.loads(self.cli("-o", "json", "bottlenecks").stdout)
        self.assertEqual(set(got), set(doc))
        table = self.cli("bottlenecks").stdout.splitlines()
        self.assertEqual(table[0].split()[:5], ["RANK", "SEVERITY", "KIND", "SUBJECT", "TITLE"])
        for f in got["findings"]:
            self.assertTrue(any(f["title"] in r for r in table[1:]), (f["title"], table))
        self.cli("bottlenecks", "--severity", "bad", check_rc=2)
        self.assertIn("kind", self.cli("bottlenecks", "--kind", "nope", check_rc=1).stderr)

        # top retransmits: the server echoes on a held TCP connection; nft in the client's
        # namespace drops the echoes for 3 s, so both ends retransmit (the server its echo,
        # the client its unacknowledged ping). The CLI lists the connections as the API
        # counts them (the API is the oracle here; test_stack checks its counts).
        line = self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip], netns=self.veth.ns, stdout=subprocess.PIPE,
                          name="client").p.stdout.readline().decode()
        self.assertTrue(line.startswith("CONNECTED"), line)
        cport = int(line.split()[1])
        table_name = f"npcli{os.getpid()}"
        run(["nft", "add", "table", "inet", table_name], netns=self.veth.ns)
        self.defer(f"nft table {table_name}", lambda: run(["nft", "delete", "table", "inet", table_name],
                                                          netns=self.veth.ns, check=False))
        run(["nft", "add", "chain", "inet", table_name, "in", "{ type filter hook input priority 0; }"],
            netns=self.veth.ns)
        run(["nft", "add", "rule", "inet", table_name, "in", "ip", "saddr", self.veth.host_ip, "tcp", "sport", "7102",
             "tcp", "dport", str(cport), "meta", "length", "gt", "52", "counter", "drop"], netns=self.veth.ns)
        time.sleep(3)
        rules = json.loads(run(["nft", "-j", "list", "table", "inet", table_name], netns=self.veth.ns).stdout)
        run(["nft", "flush", "chain", "inet", table_name, "in"], netns=self.veth.ns)
        dropped = next(x["counter"]["packets"] for r in rules["nftables"] if "rule" in r
                       for x in r["rule"]["expr"] if "counter" in x)
        self.assertGreater(dropped, 0)

        def settled():
            a = agent.get_json(f"/api/v1/connections?port={cport}&state=all")["connections"]
            time.sleep(1.5)
            b = agent.get_json(f"/api/v1/connections?port={cport}&state=all")["connections"]
            ra = sorted(c["retransmits"] for c in a)
            return b if ra == sorted(c["retransmits"] for c in b) and ra and ra[-1] > 0 else None
        conns = wait_for(settled, 20, "the connection's retransmissions to settle")
        top = json.loads(self.cli("-o", "json", "top", "retransmits", "--limit", "50").stdout)
        log(f"nft dropped {dropped} echoes; api: {[(c['src_port'], c['dst_port'], c['retransmits']) for c in conns]}; "
            f"top retransmits: {[(r['source'], r['destination'], r['retrans']) for r in top]}")
        for c in conns:
            row = next(r for r in top if r["source"] == f"{c['src_ip']}:{c['src_port']}" and
                       r["destination"] == f"{c['dst_ip']}:{c['dst_port']}")
            self.assertEqual(int(row["retrans"]), c["retransmits"])
        self.assertEqual([int(r["retrans"]) for r in top], sorted((int(r["retrans"]) for r in top), reverse=True))

        # qos: the held connection's edge (client -> server:7102) with its retransmissions,
        # in the table as the API counts them
        want = sum(c["retransmits"] for c in conns)

        def edge():
            doc = json.loads(self.cli("-o", "json", "qos", "--group-by", "host", "--window", "1m").stdout)
            e = [x for x in doc["edges"] if x["client"] == self.veth.peer_ip and x["server"] == self.veth.host_ip
                 and x["port"] == 7102]
            return e[0] if e and e[0]["retransmits_client"] + e[0]["retransmits_server"] >= want else None
        e = wait_for(edge, 15, "the held connection's edge in netprobe qos")
        table = self.cli("qos", "--group-by", "host", "--window", "1m").stdout.splitlines()
        log("\n".join(table[:5]))
        self.assertEqual(table[0].split()[:4], ["CLIENT", "SERVER", "PORT", "CONNS"])
        rows = [r.split() for r in table[1:] if r.split()[:3] == [self.veth.peer_ip, self.veth.host_ip, "7102"]]
        self.assertEqual(len(rows), 1, table)
        row = rows[0]
        self.assertEqual(row[3], str(e["connections_opened"]))
        # RTT P50/P99 and JITTER are blank without handshake samples: count from the right
        self.assertEqual(int(row[-3]), e["retransmits_client"] + e["retransmits_server"])
        self.assertGreaterEqual(int(row[-3]), want)
        services = json.loads(self.cli("-o", "json", "qos", "--services", "--group-by", "host").stdout)["services"]
        self.assertIn((self.veth.host_ip, 7102), [(x["server"], x["port"]) for x in services])
        self.cli("qos", "--window", "1h", check_rc=2)
        self.cli("qos", "--group-by", "segment", check_rc=2)

    def test_unreachable_agent_bad_credentials_and_tls(self):
        # Nothing listens: exit 1, one line that names the server.
        port = free_port()
        p = self.cli("flows", server=f"http://127.0.0.1:{port}", check_rc=1)
        self.assertIn(f"cannot reach the agent at http://127.0.0.1:{port}", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)

        d = self.tmpdir()
        pki = Pki(d)
        web = os.path.join(d, "web.yml")
        with open(web, "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {pki.path('server.crt')}\n  key_file: {pki.path('server.key')}\n"
                    f"basic_auth_users:\n  ops: {htpasswd('ops', 's3cret')}\n")
        port = free_port()
        proc = self.spawn([AGENT, f"--interface-filter={self.veth.host}", f"--web-config-file={web}",
                           f"--metrics-port={port}", "--metrics-address=127.0.0.1"], log_name="agent-tls.log",
                          name="netprobe-agent")
        server = f"https://127.0.0.1:{port}"
        ok = {"NETPROBE_USER": "ops", "NETPROBE_PASSWORD": "s3cret"}
        # The agent answers while it attaches: wait until its interface is in the answer.
        wait_for(lambda: self.veth.host in self.cli("--ca-file", pki.path("ca.crt"), "interfaces", server=server,
                                                    env=ok, check_rc=None).stdout or not proc.running(), 20,
                 "the TLS agent to attach")
        self.assertTrue(proc.running(), proc.output())
        out = self.cli("--ca-file", pki.path("ca.crt"), "interfaces", server=server, env=ok).stdout
        self.assertIn(self.veth.host, out)
        # Wrong password: 401, exit 1, a line that says so.
        p = self.cli("--ca-file", pki.path("ca.crt"), "interfaces", server=server,
                     env={"NETPROBE_USER": "ops", "NETPROBE_PASSWORD": "wrong"}, check_rc=1)
        self.assertIn("401", p.stderr)
        # A CA that did not sign the agent's certificate: refused.
        p = self.cli("--ca-file", pki.path("rogue-ca.crt"), "interfaces", server=server, env=ok, check_rc=1)
        self.assertIn("certificate", p.stderr)
        # The password from a file.
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("s3cret\n")
        self.cli("--ca-file", pki.path("ca.crt"), "--user", "ops", "--password-file", pw, "interfaces",
                 server=server)
        self.assertEqual(proc.stop(), 0)

    def test_help_completion_and_usage_errors(self):
        self.server = "http://127.0.0.1:1"
        for sub in ("flows", "connections", "events", "top", "interfaces", "pods", "completion"):
            p = self.cli(sub, "--help")
            self.assertIn("Usage", p.stdout + p.stderr)
        self.assertIn("complete -F _netprobe netprobe", self.cli("completion", "bash").stdout)
        # bash accepts the script it prints.
        script = self.cli("completion", "bash").stdout
        r = run(["bash", "-c", script + "\ncomplete -p netprobe"], check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.cli("flows", "--port", "99999", check_rc=2)
        self.assertTrue(p.stderr.startswith("netprobe: "), p.stderr)


def _listening(port: int) -> bool:
    out = run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout
    return str(port) in out


if __name__ == "__main__":
    unittest.main()
