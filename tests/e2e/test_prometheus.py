"""/metrics passes `promtool check metrics`, and a real Prometheus server scrapes it."""

import json
import os
import shutil
import unittest
import urllib.parse

from netprobe_e2e import E2ETestCase, free_port, http_request, log, require_tools, run, wait_for

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


class PrometheusTest(E2ETestCase):
    def setUp(self):
        require_tools(PROMETHEUS, PROMTOOL, "ping")
        self.veth = self.make_veth()
        # generic XDP (auto attaches none to a veth): the XDP families are part of what promtool checks
        self.agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                      "--xdp-mode=generic",
                                      "--top-talkers=5")
        # some traffic, so that flow series, protocol and rate samples carry real values
        run(["ping", "-q", "-c", "20", "-i", "0.01", self.veth.host_ip], netns=self.veth.ns)
        run(["ping", "-q", "-c", "5", "-i", "0.01", self.veth.host_ip6], netns=self.veth.ns)
        self.agent.wait_collections(2)

    def test_promtool_check_metrics(self):
        status, headers, text = self.agent.request("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        self.assertIn("version=0.0.4", headers.get("content-type", ""))
        p = run([PROMTOOL, "check", "metrics"], check=False, input=text)
        log(f"promtool check metrics: exit {p.returncode}, {len(text.splitlines())} lines checked; "
            f"output: {(p.stdout + p.stderr).strip() or '(none)'}")
        self.assertEqual(p.returncode, 0, f"promtool check metrics failed:\n{p.stdout}{p.stderr}")
        self.assertEqual((p.stdout + p.stderr).strip(), "", "promtool reported lint problems")
        # the documented families are all there
        m = self.agent.metrics()
        for fam in ("netprobe_interface_rx_packets_total", "netprobe_interface_tx_packets_total",
                    "netprobe_interface_rx_bytes_total", "netprobe_interface_tx_bytes_total",
                    "netprobe_interface_rx_packets_rate", "netprobe_interface_tx_packets_rate",
                    "netprobe_interface_rx_bytes_rate", "netprobe_interface_tx_bytes_rate",
                    "netprobe_xdp_rx_packets_total", "netprobe_protocol_packets_total",
                    "netprobe_malformed_packets_total", "netprobe_map_update_errors_total", "netprobe_map_entries",
                    "netprobe_map_capacity", "netprobe_flows_tracked", "netprobe_top_talker_bytes_rate",
                    "netprobe_build_info", "netprobe_collections_total", "netprobe_interface_attached"):
            self.assertTrue(m.find(fam), f"family {fam} missing from /metrics")
        self.assertEqual(m.types["netprobe_interface_rx_packets_total"], "counter")
        self.assertEqual(m.types["netprobe_interface_rx_packets_rate"], "gauge")
        self.assertEqual(m.get("netprobe_interface_attached", interface=self.veth.host), 1)
        other = m.find("netprobe_top_talker_bytes_rate", interface="other")
        self.assertEqual(len(other), 1)
        self.assertTrue(all(v == "other" for v in other[0].labels.values()), other[0].labels)

    def test_prometheus_scrapes_the_agent(self):
        work = self.tmpdir()
        data = os.path.join(work, "data")
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: netprobe
    static_configs:
      - targets: ['127.0.0.1:{self.agent.port}']
""")
        self.assertEqual(run([PROMTOOL, "check", "config", cfg], check=False).returncode, 0)
        port = free_port()
        prom = self.spawn([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                           f"--web.listen-address=127.0.0.1:{port}"], log_name="prometheus.log", name="prometheus")

        def query(expr: str) -> list:
            status, _, body = http_request(port, "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
            if status != 200:
                raise AssertionError(f"query {expr}: {status} {body}")
            res = json.loads(body)
            self.assertEqual(res["status"], "success", res)
            return res["data"]["result"]

        try:
            wait_for(lambda: prom.running() and http_request(port, "/-/ready")[0] == 200, 60,
                     "Prometheus to become ready")
            up = wait_for(lambda: [r for r in query('up{job="netprobe"}') if r["value"][1] == "1"], 60,
                          'up{job="netprobe"} == 1')
            log(f"up: {up}")
            series = wait_for(
                lambda: query(f'netprobe_interface_rx_packets_total{{interface="{self.veth.host}"}}'), 30,
                "netprobe_interface_rx_packets_total in Prometheus")
        except AssertionError as e:
            raise AssertionError(f"{e}\nprometheus log:\n{prom.output()[-4000:]}") from None
        log(f"netprobe_interface_rx_packets_total in Prometheus: {series}")
        self.assertEqual(len(series), 1)
        self.assertEqual(series[0]["metric"]["interface"], self.veth.host)
        self.assertEqual(series[0]["metric"]["job"], "netprobe")
        self.assertGreater(float(series[0]["value"][1]), 0)
        # the target scrapes without errors
        status, _, body = http_request(port, "/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        self.assertEqual(len(targets), 1, targets)
        self.assertEqual((targets[0]["health"], targets[0]["lastError"]), ("up", ""), targets[0])
        # every scraped family made it into the TSDB
        flows = query("count(netprobe_top_talker_bytes_rate)")
        self.assertTrue(flows and int(flows[0]["value"][1]) >= 1, flows)

        self.assertEqual(prom.stop(), 0, prom.output()[-4000:])
        self.assertTrue(os.path.isdir(data))
        shutil.rmtree(work)  # data dir and config (the temp-dir cleanup is the safety net)
        self.assertFalse(os.path.exists(data))


if __name__ == "__main__":
    unittest.main(verbosity=2)
