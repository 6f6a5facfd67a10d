"""Application-layer capture (--l7=on), DNS over UDP and TCP: dnsmasq (own instance, own
records, no upstream) in the veth's peer namespace, dig in the "node" namespace with the
agent. The agent's counts per query type and response code are compared with dig's own
answers ("status:" of each reply), on the client side (dig) and the server side
(dnsmasq).
"""

import collections
import json
import os
import re
import subprocess

from netprobe_e2e import E2ETestCase, log, require_tools, run, wait_for


class L7DnsTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("dnsmasq", "dig")

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.ip = self.veth.peer_ip
        d = self.tmpdir()
        self.dnsmasq = self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
                    f"--listen-address={self.ip}", "--bind-interfaces", "--port=53", "--user=root",
                    f"--pid-file={d}/dnsmasq.pid", "--log-facility=-",
                    "--local=/np.test/", "--address=/a.np.test/198.18.50.1", "--host-record=v6.np.test,fd6e:7072::50",
                    "--cname=alias.np.test,a.np.test", "--local-ttl=120"],
                   netns=self.veth.ns, name="dnsmasq", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: run(["dig", f"@{self.ip}", "+time=1", "+tries=1", "a.np.test"], netns=self.node,
                             check=False).returncode == 0, 10, "dnsmasq to answer")

    def agent(self):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--socket-netns=own", "--l7=on", netns=self.node)

    def counts(self, agent, side: str) -> dict:
        out = collections.Counter()
        for s in agent.metrics().find("netprobe_l7_requests_total", protocol="dns", side=side,
                                      service=f"{self.ip}:53"):
            out[(s.labels["method"], s.labels["status_class"])] += int(s.value)
        return dict(out)

    def test_dig_queries_counted_by_type_and_rcode_on_both_sides(self):
        agent = self.agent()
        agent.wait_collections(2)
        queries = ([("a.np.test", "A", [])] * 5 + [("v6.np.test", "AAAA", [])] * 3 +
                   [("missing.np.test", "A", [])] * 4 + [("example.com", "A", [])] * 2 +
                   [("alias.np.test", "A", [])] * 2 + [("a.np.test", "A", ["+tcp"])] * 3)
        want = collections.Counter()
        answer_types = {}  # name -> the record types of dig's answer section
        for name, qtype, opts in queries:
            out = run(["dig", f"@{self.ip}", "+time=2", "+tries=1", "+noall", "+comments", "+answer", *opts, name, qtype],
                      netns=self.node).stdout
            status = re.search(r"status: (\w+)", out).group(1)
            want[(qtype, status)] += 1
            answer_types[name] = [line.split()[3] for line in out.splitlines()
                                  if line.strip() and not line.startswith(";")]
        want = dict(want)
        log(f"dig: {want}")
        self.assertEqual(want, {("A", "NOERROR"): 10, ("AAAA", "NOERROR"): 3, ("A", "NXDOMAIN"): 4,
                                ("A", "REFUSED"): 2})
        total = len(queries)

        def settled(side):
            c = self.counts(agent, side)
            return c if sum(c.values()) >= total else None
        client = wait_for(lambda: settled("client"), 15, "dig's queries counted")
        log(f"client side: {client}; server side so far: {self.counts(agent, 'server')}")
        try:
            server = wait_for(lambda: settled("server"), 15, "dnsmasq's answers counted")
        except AssertionError:
            log(f"server side: {self.counts(agent, 'server')}; "
                f"parse events: {[(s.labels, s.value) for s in agent.metrics().find('netprobe_l7_parse_events_total')]}")
            raise
        agent.wait_collections(2)
        self.assertEqual(self.counts(agent, "client"), want)
        self.assertEqual(self.counts(agent, "server"), want)

        rq = agent.get_json(f"/api/v1/l7/requests?protocol=dns&side=client&status=NOERROR&limit=100")
        a = [r for r in rq["requests"] if r["path"] == "a.np.test" and r["method"] == "A"]
        self.assertEqual(len(a), 8)  # 5 over UDP, 3 over TCP
        self.assertEqual(a[0]["answers"], [{"name": "a.np.test", "type": "A", "ttl": 120, "address": "198.18.50.1"}])
        aliases = [r for r in rq["requests"] if r["path"] == "alias.np.test"]
        self.assertEqual(len(aliases), 2)
        log(f"dig's answer for alias.np.test: {answer_types['alias.np.test']}")
        self.assertEqual([x["type"] for x in aliases[0]["answers"]], answer_types["alias.np.test"])
        self.assertEqual(aliases[0]["answers"][0]["target"], "a.np.test")
        v6 = [r for r in rq["requests"] if r["method"] == "AAAA"]
        self.assertEqual(v6[0]["answers"][0]["address"], "fd6e:7072::50")
        nx = agent.get_json("/api/v1/l7/requests?protocol=dns&status=NXDOMAIN&side=server")
        self.assertEqual(nx["total"], 4)
        ep = agent.get_json(f"/api/v1/l7/endpoints?protocol=dns&side=server&service={self.ip}:53")
        refused = [e for e in ep["endpoints"] if e["route"] == "example.com"]
        self.assertEqual(refused[0]["errors"], 2)
        names = agent.get_json("/api/v1/l7/dns/names?ip=198.18.50.1")["names"]
        self.assertEqual([n["name"] for n in names], ["a.np.test"])  # the last query that resolved it
        names = agent.get_json("/api/v1/l7/dns/names?ip=fd6e:7072::50")["names"]
        self.assertEqual([n["name"] for n in names], ["v6.np.test"])
        code, _, body = agent.request("/api/v1/l7/dns/names?ip=nope")
        self.assertEqual(code, 400, body)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="unmatched_response"), 0)
        self.assertEqual(sum(s.value for s in m.find("netprobe_l7_capture_lost_total")), 0)

    def test_refused_and_nxdomain_bursts_are_diagnosis_findings(self):
        agent = self.agent()
        agent.wait_collections(2)
        batch = os.path.join(self.tmpdir(), "queries")
        with open(batch, "w") as f:
            f.write("".join(f"example{i}.com A\n" for i in range(8)))
            f.write("".join(f"gone{i}.np.test A\n" for i in range(25)))
        out = run(["dig", f"@{self.ip}", "+time=2", "+tries=1", "-f", batch], netns=self.node).stdout
        statuses = collections.Counter(re.findall(r"status: (\w+)", out))
        self.assertEqual(statuses, {"REFUSED": 8, "NXDOMAIN": 25})

        def finding(rule):
            for f in agent.get_json("/api/v1/diagnosis")["findings"]:
                if f["rule"] == rule and f["subject"] == f"{self.ip}:53":
                    return f
            return None
        f = wait_for(lambda: finding("dns_failures"), 15, "a dns_failures finding")
        ev = {e["name"]: e["value"] for e in f["evidence"]}
        self.assertEqual(ev["failed"], statuses["REFUSED"])  # dig's own count
        self.assertEqual(ev["queries"], 33)
        f = wait_for(lambda: finding("dns_nxdomain"), 15, "a dns_nxdomain finding")
        ev = {e["name"]: e["value"] for e in f["evidence"]}
        self.assertEqual(ev["nxdomain"], statuses["NXDOMAIN"])
        self.assertIn("ndots", f["cause"])

    def test_a_stopped_server_is_a_dns_timeouts_finding_counting_digs_failures(self):
        agent = self.agent()
        agent.wait_collections(2)
        service = f"{self.ip}:53"

        def finding():
            for f in agent.get_json("/api/v1/diagnosis")["findings"]:
                if f["rule"] == "dns_timeouts" and f["subject"] == service:
                    return f
            return None
        # answered: no finding, no unanswered query
        for i in range(6):
            out = run(["dig", f"@{self.ip}", "+time=2", "+tries=1", "a.np.test"], netns=self.node).stdout
            self.assertIn("status: NOERROR", out)
        wait_for(lambda: sum(self.counts(agent, "client").values()) >= 6, 15, "the answered queries counted")
        agent.wait_collections(3)
        self.assertIsNone(finding())
        ep = agent.get_json(f"/api/v1/l7/endpoints?protocol=dns&service={service}")
        self.assertEqual([t for t in ep["dns_timeouts"] if t["timeouts"]], [])

        # the server stopped (its PID): the client's kernel gets ICMP port unreachable
        # ("connection refused"); then the server's host drops the queries (unreachable,
        # filtered: "timed out")
        self.dnsmasq.stop()  # SIGTERM to its PID (its process group)
        self.assertFalse(self.dnsmasq.running())
        refused = timed_out = 0
        for i in range(3):
            out = run(["dig", f"@{self.ip}", "+time=1", "+tries=1", f"r{i}.np.test"], netns=self.node,
                      check=False).stdout
            refused += out.count("connection refused")
        table = f"np_dnsto_{os.getpid()}"
        run(["nft", "add", "table", "inet", table], netns=self.veth.ns)
        self.defer(f"nft table {table}", lambda: run(["nft", "delete", "table", "inet", table], netns=self.veth.ns,
                                                      check=False))
        run(["nft", "add", "chain", "inet", table, "in", "{ type filter hook input priority 0; }"], netns=self.veth.ns)
        run(["nft", "add", "rule", "inet", table, "in", "udp", "dport", "53", "counter", "drop"], netns=self.veth.ns)
        for i in range(5):
            out = run(["dig", f"@{self.ip}", "+time=1", "+tries=1", f"t{i}.np.test"], netns=self.node,
                      check=False).stdout
            timed_out += out.count("timed out")
        log(f"dig: {refused} connection refused, {timed_out} timed out")
        self.assertEqual((refused, timed_out), (3, 5))
        rules = run(["nft", "-j", "list", "table", "inet", table], netns=self.veth.ns).stdout
        dropped = [x["counter"]["packets"] for r in json.loads(rules)["nftables"] if "rule" in r
                   for x in r["rule"]["expr"] if "counter" in x]
        self.assertEqual(dropped, [timed_out])  # the queries that reached the server's host and were dropped

        f = wait_for(lambda: (lambda x: x if x and
                              {e["name"]: e["value"] for e in x["evidence"]}["timeouts"] >= refused + timed_out
                              else None)(finding()), 20, "a dns_timeouts finding with every query")
        log(f"finding: {f['title']}; evidence {f['evidence']}")
        ev = {e["name"]: e["value"] for e in f["evidence"]}
        self.assertEqual(ev["timeouts"], refused + timed_out)  # dig's own failures, nothing more
        self.assertEqual(ev["answered"], 6)
        self.assertEqual(f["severity"], "critical")  # 8 of 14 queries unanswered
        self.assertGreaterEqual(ev["max_wait"], 0.9)  # dig's +time=1
        self.assertIn(f"dig @{self.ip} ", "\n".join(f["fix"]))
        ep = agent.get_json(f"/api/v1/l7/endpoints?protocol=dns&side=client&service={service}")
        self.assertEqual([(t["timeouts"], t["timeouts_total"]) for t in ep["dns_timeouts"]],
                         [(refused + timed_out, refused + timed_out)])
        self.assertEqual(agent.metrics().get("netprobe_l7_dns_unanswered_total", service=service, side="client"),
                         refused + timed_out)


if __name__ == "__main__":
    import unittest
    unittest.main()
