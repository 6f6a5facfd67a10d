"""The ClickHouse sink against Debian's real clickhouse-server (18.16): every flow
record lands exactly once although the server is stopped for 60 s under load and the
agent itself restarts during the outage (its spool outlives it).

Oracle: the client's own counts of the UDP flows it sent and the echoes it received
(forward N datagrams of 28 + S IP bytes, reverse the echoes), as in test_flow_export.
The check counts rows without FINAL: a duplicate insert would show as count() = 2.
"""

import json
import os
import signal
import subprocess
import time
import unittest
import urllib.parse

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, log, require_tools, run, wait_for, wait_line
from test_flow_export import CLIENT, SERVER, UDP_PORT

CH_HTTP = 8123

CONFIG = """<yandex>
  <logger><level>warning</level><log>{dir}/server.log</log><errorlog>{dir}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
</yandex>
"""


# netprobe.flows as agents before the L7 and policy columns created it on 18.16.
OLD_FLOWS_DDL = """CREATE TABLE IF NOT EXISTS netprobe.flows (
  time_received DateTime, node String, batch_id UInt64, seq UInt32, flow_id UInt64, start_ms UInt64,
  end_ms UInt64, end_reason String, interface String, ifindex UInt32, direction String, ip_version UInt8,
  protocol UInt8, src_addr String, dst_addr String, src_port UInt16, dst_port UInt16, packets UInt64,
  bytes UInt64, l2_bytes UInt64, rev_packets UInt64, rev_bytes UInt64, rev_l2_bytes UInt64, tcp_flags UInt8,
  rev_tcp_flags UInt8, biflow UInt8, src_namespace String, src_pod String, src_workload String,
  dst_namespace String, dst_pod String, dst_workload String, dst_service String, src_container String,
  dst_container String
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(time_received) ORDER BY (time_received, node, batch_id, seq)"""

# HTTP/1.1 keep-alive server: 404 for /missing*, else 200 (argv: address, port).
HTTP_SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 404 if self.path.startswith("/missing") else 200
        body = b"item\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("READY", flush=True)
s.serve_forever()
"""


class ClickHouseCase(E2ETestCase):
    """A node namespace with a veth, a UDP echo server and a clickhouse-server of the test's own."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("clickhouse-server", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.tmp = self.tmpdir()
        self.ch_dir = os.path.join(self.tmp, "clickhouse")
        os.makedirs(self.ch_dir)
        with open(os.path.join(self.ch_dir, "config.xml"), "w") as f:
            f.write(CONFIG.format(dir=self.ch_dir, http=CH_HTTP, tcp=9000))
        self.server = self.spawn([PYTHON, "-c", SERVER, self.veth.host_ip, str(UDP_PORT), "200", "300"],
                                 netns=self.node, stdout=subprocess.PIPE, name="server")
        wait_line(self.server, b"READY", 10)

    def clickhouse(self):
        p = self.spawn(["clickhouse-server", f"--config-file={self.ch_dir}/config.xml"], netns=self.node,
                       log_name=f"clickhouse-{time.monotonic_ns()}.log", name="clickhouse-server")
        wait_for(lambda: self.query("SELECT 1") == "1", 60, "clickhouse-server to answer", interval=0.3)
        return p

    def query(self, sql: str) -> str | None:
        r = run(["curl", "-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}",
                 f"http://127.0.0.1:{CH_HTTP}/?query={urllib.parse.quote(sql)}"],
                netns=self.node, check=False)
        body, _, code = r.stdout.rpartition("\n")
        return body.strip() if code == "200" else None


class ClickHouseSinkTest(ClickHouseCase):
    def agent(self):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--flow-idle-timeout=1s", "--security=off", f"--state-dir={self.tmp}/state",
                                f"--clickhouse=http://127.0.0.1:{CH_HTTP},flush=1s,batch=500", netns=self.node)

    def client(self, flows: int, base_port: int):
        return self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip, str(UDP_PORT), str(flows), "2", "0.1", "0", "0",
                           "200", "300", str(base_port)], netns=self.veth.ns, stdout=subprocess.PIPE, name="client")

    def test_every_record_once_across_a_60s_outage_and_an_agent_restart(self):
        ch = self.clickhouse()
        agent = self.agent()
        flows = []
        c1 = self.client(150, 20000)   # ~45 s of flows ending continuously
        time.sleep(8)
        ch.stop(signal.SIGTERM, timeout=30)
        log("clickhouse stopped")
        down_at = time.monotonic()
        m = wait_for(lambda: (lambda m: m if m.get("netprobe_flow_sink_spool_batches", sink="clickhouse") >= 3 else
                              None)(agent.metrics()), 20, "batches to wait in the spool")
        self.assertEqual(m.get("netprobe_flow_sink_up", sink="clickhouse"), 0)
        c1.wait(120)
        flows += [json.loads(x) for x in c1.p.stdout.read().decode().splitlines() if x.startswith("{")]
        # The agent restarts while the server is away: what it spooled stays on disk.
        wait_for(lambda: agent.metrics().get("netprobe_flow_export_open_flows") == 0, 20, "the flows to end")
        self.assertEqual(agent.stop(), 0)
        spooled = [f for f in os.listdir(f"{self.tmp}/state/spool/clickhouse") if f.endswith(".jsonl")]
        log(f"agent stopped with {len(spooled)} batch(es) in the spool")
        self.assertGreater(len(spooled), 0)
        agent = self.agent()
        c2 = self.client(40, 30000)
        left = 60 - (time.monotonic() - down_at)
        if left > 0:
            time.sleep(left)
        ch = self.clickhouse()
        log(f"clickhouse back after {time.monotonic() - down_at:.0f} s")
        c2.wait(120)
        flows += [json.loads(x) for x in c2.p.stdout.read().decode().splitlines() if x.startswith("{")]
        self.assertEqual(len(flows), 190)

        def delivered():
            m = agent.metrics()
            return m.get("netprobe_flow_export_open_flows") == 0 and \
                m.get("netprobe_flow_sink_queue_records", sink="clickhouse") == 0 and \
                m.get("netprobe_flow_sink_spool_batches", sink="clickhouse") == 0 and m
        m = wait_for(delivered, 60, "the spool to drain into clickhouse")
        for reason in ("queue_full", "spool_full", "send_failed"):
            self.assertEqual(m.get("netprobe_flow_sink_records_dropped_total", sink="clickhouse", reason=reason), 0)
        self.assertEqual(agent.stop(), 0)

        c, h = self.veth.peer_ip, self.veth.host_ip
        rows = self.query("SELECT src_addr, src_port, dst_addr, dst_port, count(), sum(packets), sum(bytes), "
                          "sum(rev_packets), sum(rev_bytes) FROM netprobe.flows WHERE protocol = 17 "
                          "GROUP BY src_addr, src_port, dst_addr, dst_port FORMAT TSV")
        self.assertIsNotNone(rows)
        got = {}
        for line in rows.splitlines():
            sa, sp, da, dp, n, p, b, rp, rb = line.split("\t")
            got[(sa, int(sp), da, int(dp))] = (int(n), int(p), int(b), int(rp), int(rb))
        want = {}
        for f in flows:
            self.assertEqual(f["echoed"], f["sent"], f)
            want[(c, f["sport"], h, UDP_PORT)] = (1, f["sent"], f["sent"] * (28 + f["size"]), f["echoed"],
                                                 f["echoed"] * (28 + f["size"]))
        missing = sorted(set(want) - set(got))
        self.assertEqual(missing, [], "flows missing in clickhouse")
        for k, v in want.items():
            self.assertEqual(got[k], v, f"{k}: (rows, packets, bytes, rev packets, rev bytes)")
        log(f"{len(want)} flows, each in exactly one row with the client's counts")
        # The rollups saw every row once too.
        raw = self.query("SELECT sum(packets) + sum(rev_packets) FROM netprobe.flows WHERE protocol = 17")
        for t in ("flows_1m", "flows_1h"):
            self.assertEqual(self.query(f"SELECT sum(packets) + sum(rev_packets) FROM netprobe.{t} "
                                        "WHERE protocol = 17"), raw, t)
        ch.stop(signal.SIGTERM, timeout=30)

    def test_retention_drops_old_daily_partitions_on_a_server_without_ttl(self):
        ch = self.clickhouse()
        # The table as the agent creates it, holding rows of 10 and 2 days ago and of today.
        agent = self.agent()
        wait_for(lambda: self.query("EXISTS TABLE netprobe.flows") == "1", 20, "the agent to create its tables")
        self.assertEqual(agent.stop(), 0)
        for days in (10, 2, 0):
            sql = (f"INSERT INTO netprobe.flows (time_received, node, batch_id, seq, packets) "
                   f"SELECT now() - {days} * 86400, 'old-node', {days + 1}, 0, {days + 100}")
            r = run(["curl", "-sf", f"http://127.0.0.1:{CH_HTTP}/", "--data-binary", sql], netns=self.node)
            self.assertEqual(r.returncode, 0)
        before = self.query("SELECT count() FROM netprobe.flows WHERE node = 'old-node'")
        self.assertEqual(before, "3")
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--security=off",
                                 f"--state-dir={self.tmp}/state",
                                 f"--clickhouse=http://127.0.0.1:{CH_HTTP},retention=7d", netns=self.node)
        wait_for(lambda: agent.metrics().get("netprobe_flow_sink_partitions_dropped_total", sink="clickhouse") >= 1,
                 30, "the 10-day-old partition to be dropped")
        left = self.query("SELECT packets FROM netprobe.flows WHERE node = 'old-node' ORDER BY packets FORMAT TSV")
        self.assertEqual(left.split(), ["100", "102"], "rows of today and 2 days ago stay, 10 days ago goes")
        self.assertEqual(agent.stop(), 0)
        ch.stop(signal.SIGTERM, timeout=30)

    def test_l7_summary_columns_added_to_an_older_agents_table(self):
        """An older agent's netprobe.flows (without the L7 and policy columns) gets them by
        ALTER TABLE (18.16 has no ADD COLUMN IF NOT EXISTS: the sink reads system.columns);
        HTTP requests over one keep-alive connection (curl, a real server) land in them with
        curl's own counts; the old row and the rollups keep working."""
        ch = self.clickhouse()
        for sql in ("CREATE DATABASE IF NOT EXISTS netprobe", OLD_FLOWS_DDL,
                    "INSERT INTO netprobe.flows (time_received, node, batch_id, seq, protocol, packets) "
                    "SELECT now(), 'old-agent', 1, 0, 6, 5"):
            r = run(["curl", "-sf", f"http://127.0.0.1:{CH_HTTP}/", "--data-binary", sql], netns=self.node)
            self.assertEqual(r.returncode, 0, sql)
        http = self.spawn([PYTHON, "-c", HTTP_SERVER, self.veth.host_ip, "7080"], netns=self.node,
                          stdout=subprocess.PIPE, name="http-server")
        wait_line(http, b"READY", 10)
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                 "--flow-idle-timeout=1s", "--security=off", "--socket-netns=own", "--l7=on",
                                 f"--state-dir={self.tmp}/state",
                                 f"--clickhouse=http://127.0.0.1:{CH_HTTP},flush=1s,batch=500", netns=self.node)
        wait_for(lambda: self.query("SELECT count() FROM system.columns WHERE database = 'netprobe' AND "
                                    "table = 'flows' AND name LIKE 'l7_%'") == "7", 30, "the L7 columns")
        self.assertEqual(self.query("SELECT count() FROM system.columns WHERE database = 'netprobe' AND "
                                    "table = 'flows' AND name = 'policy_verdict'"), "1")
        agent.wait_collections(2)
        paths = [f"/items/{i}" for i in range(8)] + ["/missing"] * 3
        args = ["curl", "-s", "-w", "%{http_code} %{num_connects} %{local_port}\\n"]
        for p in paths:
            args += ["-o", "/dev/null", f"http://{self.veth.host_ip}:7080{p}"]
        rows = [line.split() for line in run(args, netns=self.veth.ns).stdout.splitlines() if line.strip()]
        self.assertEqual(len(rows), len(paths))
        self.assertEqual(sum(int(r[1]) for r in rows), 1, f"one keep-alive connection: {rows}")
        port = int(rows[0][2])
        errors = sum(1 for r in rows if int(r[0]) >= 400)
        self.assertEqual(errors, 3)

        def delivered():
            m = agent.metrics()
            return m.get("netprobe_flow_export_open_flows") == 0 and \
                m.get("netprobe_flow_sink_queue_records", sink="clickhouse") == 0 and \
                m.get("netprobe_flow_sink_spool_batches", sink="clickhouse") == 0 and m
        wait_for(delivered, 30, "the records to reach clickhouse")
        self.assertEqual(agent.stop(), 0)
        got = self.query("SELECT count(), sum(l7_requests), sum(l7_errors), sum(l7_client_errors), "
                         "groupUniqArrayIf(l7_protocol, l7_requests > 0), groupUniqArrayIf(l7_side, l7_requests > 0), "
                         "sum(l7_latency_sum_us) > 0, "
                         "max(l7_latency_max_us) <= sum(l7_latency_sum_us), groupUniqArray(policy_verdict) "
                         f"FROM netprobe.flows WHERE protocol = 6 AND (src_port = {port} OR dst_port = {port}) "
                         "FORMAT TSV")
        log(f"clickhouse: records, requests, errors, 4xx, protocols, sides, latency checks, verdicts of the "
            f"connection: {got}")
        self.assertEqual(got.split("\t")[1:], [str(len(paths)), "3", "3", "['http']", "['server']", "1", "1",
                                                "['']"])
        self.assertEqual(self.query("SELECT packets, l7_requests, l7_protocol FROM netprobe.flows "
                                    "WHERE node = 'old-agent' FORMAT TSV"), "5\t0")  # l7_protocol '' (stripped)
        raw = self.query("SELECT sum(packets) + sum(rev_packets) FROM netprobe.flows WHERE protocol = 6 "
                         "AND node != 'old-agent'")
        self.assertNotEqual(raw, "0")
        for t in ("flows_1m", "flows_1h"):
            self.assertEqual(self.query(f"SELECT sum(packets) + sum(rev_packets) FROM netprobe.{t} "
                                        "WHERE protocol = 6"), raw, t)
        ch.stop(signal.SIGTERM, timeout=30)

    def test_bad_specs_and_an_unwritable_state_dir_are_one_line_and_a_nonzero_exit(self):
        for spec in ("ftp://x:1", "http://h:8123/db", "http://u:p@h:8123", "http://h:8123,retention=1h",
                     "http://h:8123,bogus=1", "http://h:8123,spool-max=1k"):
            p = run([AGENT, f"--clickhouse={spec}"], check=False)
            self.assertEqual(p.returncode, 2, (spec, p.stderr))
            out = (p.stderr + p.stdout).strip()
            self.assertIn("--clickhouse", out)
            self.assertEqual(len(out.splitlines()), 1, out)
        # A state directory that cannot be created: the agent refuses to start (before it attaches).
        p = run([AGENT, f"--interface-filter={self.veth.host}", "--metrics-port=18799", "--security=off",
                 "--state-dir=/proc/netprobe-no-such-dir", f"--clickhouse=http://127.0.0.1:{CH_HTTP}"],
                netns=self.node, check=False, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("spool directory", p.stderr + p.stdout)


# A proxy in front of ClickHouse that forwards the first CUT insert requests and then closes
# the agent's connection without its answer: the insert landed, but the sink cannot know.
# One request per connection (the sink opens a connection per query).
CUTTING_PROXY = r"""
import socket, sys, threading
listen_port, target_port, cut = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lock = threading.Lock()
def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        b = c.recv(65536)
        if not b: return None
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length": n = int(v)
    while len(body) < n:
        b = c.recv(65536)
        if not b: return None
        body += b
    return head + b"\r\n\r\n" + body
def serve(c):
    global cut
    try:
        req = read_request(c)
        if req is None: return
        u = socket.create_connection(("127.0.0.1", target_port))
        u.sendall(req)
        u.shutdown(socket.SHUT_WR)
        resp = b""
        while True:
            b = u.recv(65536)
            if not b: break
            resp += b
        u.close()
        first = req.split(b"\r\n", 1)[0]
        with lock:
            drop = cut > 0 and b"INSERT" in first.upper().replace(b"%20", b" ")
            if drop: cut -= 1
        if drop and resp.startswith(b"HTTP/1.1 200"):
            print("CUT " + first.decode(errors="replace")[:80], flush=True)
            return
        c.sendall(resp)
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", listen_port))
s.listen(64)
print("READY", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def same_points(a: list[dict], b: list[dict]) -> bool:
    """Equal buckets; values equal up to the order of floating-point additions."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x["time"], x["step"], x["count"]) != (y["time"], y["step"], y["count"]):
            return False
        for k in ("mean", "min", "max"):
            if abs(x[k] - y[k]) > 1e-9 * max(1.0, abs(x[k]), abs(y[k])):
                return False
    return True


class ClusterHistoryTest(ClickHouseCase):
    """--history-source=clickhouse: two agents (nodes np-node-a and np-node-b, each with its
    own veth and traffic) write their history series into one ClickHouse; either agent's
    /api/v1/history answers for both. The oracle for each node's points is that node's own
    SQLite store (source=local), a separate write path; ClickHouse's own sum() checks the
    cluster totals. Node b writes through a proxy that cuts the answers of its first two
    inserts, so the sink must find those batches on the server instead of inserting them
    twice (a duplicate would show as two rows of one batch and seq)."""

    def setUp(self) -> None:
        super().setUp()
        self.veth_b = self.make_veth(host_ns=self.node)

    def cluster_agent(self, name: str, veth, ch_port: int):
        env = {**os.environ, "NODE_NAME": name}
        return self.start_agent(f"--interface-filter={veth.host}", "--collect-interval=500ms", "--series-step=10s",
                                "--flow-idle-timeout=1s", "--security=off", f"--state-dir={self.tmp}/state-{name}",
                                f"--clickhouse=http://127.0.0.1:{ch_port},flush=1s", "--history-source=clickhouse",
                                netns=self.node, env=env)

    def history(self, agent, **params) -> tuple[int, dict | str]:
        code, _, body = agent.request("/api/v1/history?" + urllib.parse.urlencode(params))
        try:
            return code, json.loads(body)
        except ValueError:
            return code, body

    def test_every_nodes_history_through_clickhouse_with_fallback_and_no_duplicates(self):
        ch = self.clickhouse()
        proxy_port = free_port(self.node)
        proxy = self.spawn([PYTHON, "-c", CUTTING_PROXY, str(proxy_port), str(CH_HTTP), "2"], netns=self.node,
                           stdout=subprocess.PIPE, name="proxy")
        wait_line(proxy, b"READY", 10)
        a = self.cluster_agent("np-node-a", self.veth, CH_HTTP)
        b = self.cluster_agent("np-node-b", self.veth_b, proxy_port)
        # traffic on both nodes: pings of different rates towards each agent's veth
        for v, interval in ((self.veth, "0.1"), (self.veth_b, "0.25")):
            self.spawn(["ping", "-q", "-i", interval, "-s", "400", v.host_ip], netns=v.ns, name="ping")
        keys = {"np-node-a": f"iface/{self.veth.host}/rx_bytes_rate", "np-node-b": f"iface/{self.veth_b.host}/rx_bytes_rate"}
        since = int(time.time()) - 120

        def points_of(agent, key, **extra):
            code, j = self.history(agent, series=key, **{"from": since}, **extra)
            self.assertEqual(code, 200, j)
            return j

        def same_as_local():
            # each node's points in the cluster answer (asked of node a) equal its own store's
            for node, agent in (("np-node-a", a), ("np-node-b", b)):
                local = points_of(agent, keys[node], source="local")
                cluster = points_of(a, keys[node], node=node)
                if cluster.get("source") != "clickhouse" or len(local["points"]) < 2:
                    return False
                got = next((n["points"] for n in cluster["nodes"] if n["node"] == node), [])
                if not same_points(got, local["points"]):
                    return False
            return True
        wait_for(same_as_local, 90, "both nodes' series in clickhouse equal to their local stores", interval=2)
        cut = [wait_line(proxy, b"CUT", 5).decode().strip() for _ in range(2)]
        log(f"proxy cut the answers of: {cut}")

        # the list: series of both nodes, and the nodes
        code, j = self.history(b, prefix="iface/")
        self.assertEqual(code, 200, j)
        self.assertEqual(j["source"], "clickhouse")
        self.assertTrue({keys["np-node-a"], keys["np-node-b"]} <= set(j["series"]), j)
        self.assertEqual(j["nodes"], ["np-node-a", "np-node-b"])
        # a cluster answer for one key: the per-node points and the aggregate (ClickHouse's own sums)
        j = points_of(b, keys["np-node-a"])
        self.assertEqual([n["node"] for n in j["nodes"]], ["np-node-a"])
        for p in j["points"]:
            r = self.query(f"SELECT sum(v_sum), sum(v_count) FROM netprobe.series FINAL WHERE series = "
                           f"'{keys['np-node-a']}' AND t = toDateTime({p['time']}) FORMAT TSV").split("\t")
            self.assertAlmostEqual(p["mean"], float(r[0]) / float(r[1]), places=6)
            self.assertAlmostEqual(p["total"], p["mean"], places=6)  # one node
        # no batch inserted twice: every (batch, seq) once, in the flows and the series
        for table in ("series", "flows"):
            dup = self.query(f"SELECT count() FROM (SELECT batch_id, seq, count() AS c FROM netprobe.{table} "
                             f"GROUP BY batch_id, seq HAVING c > 1)")
            self.assertEqual(dup, "0", f"{table}: batches inserted twice")
        m = b.metrics()
        self.assertGreater(m.get("netprobe_flow_sink_series_points_total", sink="clickhouse"), 0)
        self.assertEqual(m.get("netprobe_flow_sink_series_points_dropped_total", sink="clickhouse"), 0)

        # The cluster topology from both nodes' flow records: UDP flows to each node's echo
        # server, compared with what each client counted it sent and got back.
        server_b = self.spawn([PYTHON, "-c", SERVER, self.veth_b.host_ip, str(UDP_PORT), "200", "300"],
                              netns=self.node, stdout=subprocess.PIPE, name="server")
        wait_line(server_b, b"READY", 10)
        sent = {}
        for v, n, base in ((self.veth, 8, 21000), (self.veth_b, 5, 22000)):
            c = self.spawn([PYTHON, "-c", CLIENT, v.host_ip, str(UDP_PORT), str(n), "2", "0.1", "0", "0", "200", "300",
                            str(base)], netns=v.ns, stdout=subprocess.PIPE, name="client")
            c.wait(60)
            fl = [json.loads(x) for x in c.p.stdout.read().decode().splitlines() if x.startswith("{")]
            self.assertEqual(len(fl), n)
            sent[v.host_ip] = (len(fl), sum(f["sent"] for f in fl), sum(f["echoed"] for f in fl),
                               sum(f["sent"] * (28 + f["size"]) for f in fl), sum(f["echoed"] * (28 + f["size"]) for f in fl))

        # (the pings keep their flows open: wait for the UDP edges rather than for no open flow)
        last = {}

        def edges_match():
            code, _, body = b.request("/api/v1/topology?source=clickhouse&window=10m&protocol=udp")
            self.assertEqual(code, 200, body)
            topo = json.loads(body)
            self.assertEqual(topo["source"], "clickhouse", topo)
            edges = {(e["source"], e["target"], e["port"]): e for e in topo["edges"]}
            last["topo"] = topo
            for v, node in ((self.veth, "np-node-a"), (self.veth_b, "np-node-b")):
                e = edges.get((v.peer_ip, v.host_ip, UDP_PORT))
                if e is None or (e["flows"], e["packets_out"], e["packets_in"], e["bytes_out"], e["bytes_in"]) != \
                        sent[v.host_ip] or e["observed_by"] != [node]:
                    return False
            return True
        try:
            wait_for(edges_match, 30, "each node's UDP edge in the cluster topology with its client's counts")
        except AssertionError:
            log(f"client counts (flows, packets, packets back, bytes, bytes back): {sent}")
            log(f"last answer: {json.dumps(last.get('topo'))[:3000]}")
            raise
        topo = last["topo"]
        log(f"cluster topology: {len(topo['edges'])} UDP edge(s), each node's equal to its client's counts")

        # ClickHouse away: the local store answers at once, and says why
        ch.stop(signal.SIGTERM, timeout=30)
        code, j = self.history(a, series=keys["np-node-a"], **{"from": since})
        self.assertEqual(code, 200, j)
        self.assertEqual(j["source"], "local")
        self.assertEqual(j["node"], "np-node-a")
        self.assertIn("clickhouse", j["fallback"])
        self.assertGreater(len(j["points"]), 0)
        code, j = self.history(a, series=keys["np-node-b"], node="np-node-b")
        self.assertEqual(code, 503, j)  # another node's history is not in this node's store
        code, j = self.history(a, series=keys["np-node-a"], source="clickhouse")
        self.assertEqual(code, 503, j)
        code, _, body = a.request("/api/v1/topology?source=clickhouse&window=10m")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["source"], "local")  # this node's view, and why
        self.assertIn("clickhouse", json.loads(body)["fallback"])
        self.assertGreater(a.metrics().get("netprobe_history_cluster_queries_total", result="error"), 0)
        time.sleep(12)  # points of the outage wait in the spools
        self.assertGreater(a.metrics().get("netprobe_flow_sink_spool_batches", sink="clickhouse"), 0)

        # back: the spooled points arrive, and the cluster answers again (after the retry pause)
        ch = self.clickhouse()
        wait_for(same_as_local, 90, "the outage's points in clickhouse, equal to the local stores", interval=2)
        code, j = self.history(a, series=keys["np-node-b"], **{"from": since})
        self.assertEqual(code, 200, j)
        self.assertEqual(j["source"], "clickhouse")
        for p in j["points"]:
            self.assertEqual(p["nodes"], 1)
        for n in ("series", "flows"):
            self.assertEqual(self.query(f"SELECT count() FROM (SELECT batch_id, seq, count() AS c FROM netprobe.{n} "
                                        f"GROUP BY batch_id, seq HAVING c > 1)"), "0", n)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        ch.stop(signal.SIGTERM, timeout=30)

    def test_history_source_needs_a_clickhouse_server(self):
        for args in (["--history-source=clickhouse"], ["--history-source=remote"],
                     [f"--clickhouse=http://127.0.0.1:{CH_HTTP},series=off", "--history-source=clickhouse"]):
            p = run([AGENT] + args, check=False)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            out = (p.stderr + p.stdout).strip()
            self.assertIn("--history-source", out)
            self.assertEqual(len(out.splitlines()), 1, out)


if __name__ == "__main__":
    unittest.main()
