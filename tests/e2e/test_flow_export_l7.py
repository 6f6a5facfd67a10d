"""Flow records with the L7 summary (--l7=on + flow export): real nginx, real curl, real
collectors.

Topology: a "node" namespace (the agent, curl, the collectors on its loopback) and a
server namespace running nginx, joined by a veth; the agent watches the node's end.

Oracles the project did not write:
- curl's own output: each URL's status code (the number of 4xx/5xx it got), the local
  port of its connection (the 5-tuple of the flow), num_connects (one connection for
  all the URLs of one curl: keep-alive), and each transfer's time_total (it brackets
  the server's own request -> response time).
- Decoding: pmacct's nfacctd (IPFIX over UDP, unidirectional records) printing the
  enterprise elements as custom primitives (aggregate_primitives, field_type PEN:ID),
  and tshark's IPFIX dissector (biflows over TCP) showing them as "Enterprise Private
  entry ... Type N" with their bytes: both frame the records from the templates
  themselves.

Each connection's records (flow log, nfacctd, tshark) must carry, summed over the
records of that connection, requests == the number of URLs curl fetched over it and
errors == the number of 4xx/5xx curl got, with the server's side figures (nginx runs on
this machine).
"""

import json
import os
import re
import signal
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for
from test_flow_export import TCP_SINK, _udp_bound, ipfix_messages

PEN = 32473  # the agent's default enterprise number (docs/ipfix.md)
HTTP_PORT, HTTPS_PORT = 8080, 8443

NGINX_SERVER = """
  server {{{{
    listen {ip}:{port};
    listen {ip}:{tls_port} ssl;
    ssl_certificate {{d}}/cert.pem;
    ssl_certificate_key {{d}}/key.pem;
    location /items/ {{{{ return 200 "item\\n"; }}}}
    location /missing {{{{ return 404; }}}}
    location /err {{{{ return 503; }}}}
  }}}}
"""

# nfacctd's print plugin with NetProbe's enterprise elements as custom primitives.
PRIMITIVES = """name=np_l7_proto\tfield_type={pen}:11\tlen=vlen\tsemantics=raw
name=np_l7_side\tfield_type={pen}:12\tlen=1\tsemantics=u_int
name=np_l7_requests\tfield_type={pen}:13\tlen=8\tsemantics=u_int
name=np_l7_errors\tfield_type={pen}:14\tlen=8\tsemantics=u_int
name=np_l7_client_errors\tfield_type={pen}:15\tlen=8\tsemantics=u_int
name=np_l7_lat_sum\tfield_type={pen}:16\tlen=8\tsemantics=u_int
name=np_l7_lat_max\tfield_type={pen}:17\tlen=4\tsemantics=u_int
name=np_verdict\tfield_type={pen}:18\tlen=1\tsemantics=u_int
"""
NFACCTD_CONF = """daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: {port}
aggregate_primitives: {dir}/primitives.lst
plugins: print[csv]
aggregate[csv]: src_host, dst_host, src_port, dst_port, proto, np_l7_proto, np_l7_side, np_l7_requests, np_l7_errors, np_l7_client_errors, np_l7_lat_sum, np_l7_lat_max, np_verdict
print_output[csv]: csv
print_refresh_time[csv]: 1
pidfile: {dir}/nfacctd.pid
"""

# The L7 elements, (id -> name) as the e2e compares them.
L7_IES = {11: "protocol", 12: "side", 13: "requests", 14: "errors", 15: "client_errors", 16: "latency_sum_us",
          17: "latency_max_us", 18: "verdict"}


def tshark_l7_records(messages: list[bytes], tmp: str) -> list[dict]:
    """Decodes IPFIX messages with tshark (each as one UDP datagram of a synthetic pcap).
    Per data record: the 5-tuple and the enterprise elements of PEN, by IE id -> bytes."""
    from scapy.all import IP, UDP, Raw, wrpcap  # python3-scapy
    pcap = os.path.join(tmp, f"ipfix-l7-{time.monotonic_ns()}.pcap")
    wrpcap(pcap, [IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=4739) / Raw(m) for m in messages])
    xml = run(["tshark", "-r", pcap, "-d", "udp.port==4739,cflow", "-T", "pdml"], timeout=120).stdout
    out = []
    for flow in ET.fromstring(xml).iter("field"):
        if not (flow.get("name") == "" and (flow.get("show") or "").startswith("Flow ")):
            continue
        rec: dict = {"ent": {}}
        for f in flow:
            name = f.get("name") or ""
            if name == "cflow.enterprise_private_entry":
                # "Enterprise Private entry: (Example Enterprise Number ...) Type 13: Value (hex bytes): ..."
                m = re.search(r"Type (\d+): Value", f.get("showname") or "")
                if m:
                    rec["ent"][int(m.group(1))] = bytes.fromhex(f.get("value") or "")
            elif name.startswith("cflow."):
                rec.setdefault(name[len("cflow."):], f.get("show") or "")
        if "srcaddr" in rec:
            out.append(rec)
    return out


class FlowExportL7Test(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("nginx", "curl", "nfacctd", "tshark", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.ip = self.veth.peer_ip  # nginx's
        self.tmp = self.tmpdir()
        self.start_nginx(self.veth.ns, NGINX_SERVER.format(ip=self.ip, port=HTTP_PORT, tls_port=HTTPS_PORT),
                         ["curl", "-s", "-o", "/dev/null", f"http://{self.ip}:{HTTP_PORT}/items/0"],
                         ready_netns=self.node)

    # -- helpers --------------------------------------------------------------------

    def nfacctd(self, port: int):
        with open(os.path.join(self.tmp, "primitives.lst"), "w") as f:
            f.write(PRIMITIVES.format(pen=PEN))
        conf = os.path.join(self.tmp, "nfacctd.conf")
        with open(conf, "w") as f:
            f.write(NFACCTD_CONF.format(port=port, dir=self.tmp))
        out = os.path.join(self.tmp, "nfacctd.csv")
        with open(out, "wb") as f:
            p = self.spawn(["nfacctd", "-f", conf], netns=self.node, stdout=f, name="nfacctd")
        wait_for(lambda: _udp_bound(self.node, port), 10, "nfacctd to listen")
        return p, out

    def tcp_sink(self, port: int, data: str):
        os.makedirs(data, exist_ok=True)
        p = self.spawn([PYTHON, "-c", TCP_SINK, data, str(port)], netns=self.node, stdout=subprocess.PIPE,
                       name="tcp-sink")
        line = p.p.stdout.readline()
        self.assertEqual(line.strip(), b"READY")
        return p

    def curl(self, scheme: str, port: int, paths: list[str]) -> dict:
        """One curl fetching every path (keep-alive: one connection); its own account."""
        fmt = "%{http_code} %{num_connects} %{local_port} %{time_total}\\n"
        args = ["curl", "-sk", "-w", fmt]
        for p in paths:
            args += ["-o", "/dev/null", f"{scheme}://{self.ip}:{port}{p}"]
        rows = [line.split() for line in run(args, netns=self.node).stdout.splitlines() if line.strip()]
        self.assertEqual(len(rows), len(paths))
        codes = [int(r[0]) for r in rows]
        self.assertEqual(sum(int(r[1]) for r in rows), 1, f"curl opened more than one connection: {rows}")
        ports = {int(r[2]) for r in rows}
        self.assertEqual(len(ports), 1, rows)
        # per request: the whole transfer as curl timed it (it brackets the request's write
        # and the response's read, so the server's request -> response time), µs
        waits = [float(r[3]) * 1e6 for r in rows]
        c = {"port": ports.pop(), "requests": len(codes), "errors": sum(1 for x in codes if x >= 400),
             "client_errors": sum(1 for x in codes if 400 <= x < 500), "server_port": port,
             "wait_sum_us": sum(waits), "wait_max_us": max(waits), "codes": codes}
        log(f"curl {scheme}: {len(codes)} requests on local port {c['port']}, codes {codes}")
        return c

    def conn_of(self, sa: str, sp: int, da: str, dp: int, conns: list[dict]) -> dict | None:
        """The curl connection a record's 5-tuple (either orientation) belongs to."""
        for c in conns:
            ends = {(self.veth.host_ip, c["port"]), (self.ip, c["server_port"])}
            if {(sa, sp), (da, dp)} == ends:
                return c
        return None

    def check(self, what: str, got: dict, conns: list[dict]) -> None:
        """got: local port -> summed figures of the connection's records."""
        for c in conns:
            self.assertIn(c["port"], got, f"{what}: no record of the connection from port {c['port']}")
            g = got[c["port"]]
            self.assertEqual(g["requests"], c["requests"], f"{what}: requests of port {c['port']}: {g}")
            self.assertEqual(g["errors"], c["errors"], f"{what}: errors (4xx/5xx) of port {c['port']}: {g}")
            self.assertEqual(g["client_errors"], c["client_errors"], f"{what}: 4xx of port {c['port']}: {g}")
            self.assertEqual(g["protocol"], "http", what)
            self.assertEqual(g["side"], "server", f"{what}: nginx runs on this machine: server-side figures")
            # nginx's request -> response lies within curl's transfer of each URL
            self.assertGreater(g["latency_sum_us"], 0, what)
            self.assertLessEqual(g["latency_max_us"], g["latency_sum_us"], what)
            self.assertLessEqual(g["latency_sum_us"], c["wait_sum_us"] + 50 * c["requests"], f"{what}: {g} {c}")
            self.assertLessEqual(g["latency_max_us"], c["wait_max_us"] + 50, f"{what}: {g} {c}")
        log(f"{what}: " + ", ".join(f"port {p}: {g['requests']} requests, {g['errors']} errors, "
                                    f"latency sum {g['latency_sum_us']} µs max {g['latency_max_us']} µs"
                                    for p, g in sorted(got.items())))

    @staticmethod
    def add(got: dict, port: int, protocol: str, side: str, figures: dict) -> None:
        g = got.setdefault(port, {"requests": 0, "errors": 0, "client_errors": 0, "latency_sum_us": 0,
                                  "latency_max_us": 0, "protocol": "", "side": ""})
        for k in ("requests", "errors", "client_errors", "latency_sum_us"):
            g[k] += figures[k]
        g["latency_max_us"] = max(g["latency_max_us"], figures["latency_max_us"])
        if protocol:
            g["protocol"] = protocol
        if side:
            g["side"] = side

    # -- the test ---------------------------------------------------------------------

    def test_keepalive_requests_and_errors_in_flow_log_nfacctd_and_tshark(self):
        nfa, nfa_out = self.nfacctd(4747)
        sink_dir = os.path.join(self.tmp, "sink")
        sink = self.tcp_sink(4748, sink_dir)
        flow_log = os.path.join(self.tmp, "flows.jsonl")
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                 "--flow-idle-timeout=2s", "--security=off", "--socket-netns=own", "--l7=on",
                                 f"--flow-log={flow_log}", "--ipfix-collector=127.0.0.1:4747,biflow=off",
                                 "--ipfix-collector=127.0.0.1:4748,transport=tcp", netns=self.node)
        agent.wait_collections(2)
        wait_for(lambda: agent.metrics().get_or("netprobe_l7_tls_libraries") >= 1, 20, "libssl to be probed")
        # Two keep-alive connections over HTTP, one over HTTPS (OpenSSL's plaintext).
        conns = [
            self.curl("http", HTTP_PORT, [f"/items/{i}" for i in range(11)] + ["/missing"] * 3 + ["/err"] * 2 +
                      ["/items/x"]),
            self.curl("http", HTTP_PORT, ["/err", "/items/1", "/missing", "/items/2"]),
            self.curl("https", HTTPS_PORT, [f"/items/{i}" for i in range(6)] + ["/missing"] * 2 + ["/err"]),
        ]
        self.assertEqual([c["requests"] for c in conns], [17, 4, 9])
        self.assertEqual([c["errors"] for c in conns], [5, 2, 3])

        # Each request is seen at both ends (curl's and nginx's sockets): both join the flow.
        # (The capture sees every process on the machine: other requests may wait or be
        # given up - connections on interfaces the agent does not watch.)
        total = sum(c["requests"] for c in conns)
        wait_for(lambda: agent.metrics().get("netprobe_flow_export_l7_requests_total", result="matched") >= 2 * total,
                 20, f"{2 * total} L7 observations joined to flows")

        # curl closed its connections: each ends (FIN, a quiet collection) and is exported.
        def delivered():
            m = agent.metrics()
            return m.get("netprobe_flow_export_open_flows") == 0 and \
                m.get("netprobe_flow_sink_queue_records", target="127.0.0.1:4748/tcp") == 0 and \
                m.get("netprobe_flow_sink_queue_records", target="127.0.0.1:4747/udp") == 0 and m
        wait_for(delivered, 30, "every record to be sent")
        time.sleep(1)
        m = wait_for(delivered, 30, "every record to be sent")
        log(f"L7 observations joined to flows: {m.get('netprobe_flow_export_l7_requests_total', result='matched')}, "
            f"given up {m.get('netprobe_flow_export_l7_requests_total', result='unmatched')}, "
            f"waiting {m.get('netprobe_flow_export_l7_requests_pending')}")
        time.sleep(1.5)  # nfacctd prints its cache every second
        self.assertEqual(agent.stop(), 0)
        nfa.stop(signal.SIGINT, timeout=3)
        sink.stop(signal.SIGTERM)

        # 1. The flow log.
        got: dict = {}
        records = 0
        with open(flow_log) as f:
            for line in f:
                r = json.loads(line)
                if r["protocol"] != "tcp":
                    continue
                c = self.conn_of(r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], conns)
                if c is None:
                    self.assertNotIn("l7_requests", r, f"a record of another connection carries requests: {r}")
                    continue
                records += 1
                self.assertIn("l7_requests", r, f"a record of an L7 connection without the summary: {r}")
                self.add(got, c["port"], r["l7_protocol"], r["l7_side"],
                         {k: r[f"l7_{k}"] for k in ("requests", "errors", "client_errors", "latency_sum_us",
                                                   "latency_max_us")})
                self.assertNotIn("policy_verdict", r)  # no Kubernetes: no verdict
        self.check("flow log", got, conns)
        self.assertGreaterEqual(records, len(conns))

        # 2. nfacctd: one row per (direction, figures); the forward record has the figures.
        got = {}
        with open(nfa_out) as f:
            header = None
            for line in f:
                cols = line.strip().split(",")
                if cols[0] == "SRC_IP":
                    header = cols
                    continue
                if not header or len(cols) != len(header):
                    continue
                r = dict(zip(header, cols))
                if r["PROTOCOL"] != "tcp":
                    continue
                c = self.conn_of(r["SRC_IP"], int(r["SRC_PORT"]), r["DST_IP"], int(r["DST_PORT"]), conns)
                if c is None:
                    continue
                # raw semantics: the string's bytes in hex, dash-separated ("68-74-74-70")
                proto = bytes.fromhex(r["np_l7_proto"].replace("-", "")).decode()
                side = {"0": "", "1": "server", "2": "client"}[r["np_l7_side"]]
                self.add(got, c["port"], proto, side,
                         {"requests": int(r["np_l7_requests"]), "errors": int(r["np_l7_errors"]),
                          "client_errors": int(r["np_l7_client_errors"]), "latency_sum_us": int(r["np_l7_lat_sum"]),
                          "latency_max_us": int(r["np_l7_lat_max"])})
                self.assertEqual(r["np_verdict"], "0")
        self.check("nfacctd (IPFIX/UDP, enterprise elements as custom primitives)", got, conns)

        # 3. tshark on what the TCP collector received (biflows).
        messages = []
        for name in sorted(os.listdir(sink_dir)):
            with open(os.path.join(sink_dir, name), "rb") as f:
                messages += ipfix_messages(f.read())
        got = {}
        for r in tshark_l7_records(messages, self.tmp):
            if r.get("protocol") != "6":
                continue
            c = self.conn_of(r["srcaddr"], int(r["srcport"]), r["dstaddr"], int(r["dstport"]), conns)
            if c is None:
                continue
            e = r["ent"]
            self.assertEqual(sorted(k for k in e if k in L7_IES), sorted(L7_IES), f"elements decoded: {e}")
            num = lambda i: int.from_bytes(e[i], "big")  # noqa: E731
            self.add(got, c["port"], e[11].decode(), {0: "", 1: "server", 2: "client"}[num(12)],
                     {"requests": num(13), "errors": num(14), "client_errors": num(15), "latency_sum_us": num(16),
                      "latency_max_us": num(17)})
            self.assertEqual(num(18), 0)
        self.check("IPFIX/TCP biflows (tshark)", got, conns)


if __name__ == "__main__":
    unittest.main()
