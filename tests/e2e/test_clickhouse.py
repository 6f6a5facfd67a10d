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

from netprobe_e2e import AGENT, PYTHON, E2ETestCase, log, require_tools, run, wait_for, wait_line
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


class ClickHouseSinkTest(E2ETestCase):
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


if __name__ == "__main__":
    unittest.main()
