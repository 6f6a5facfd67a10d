"""Security analytics end to end: real scanners and flooders (nmap, hping3) in an
attacker namespace against a victim namespace where the agent runs. Each scan
technique must be flagged with its scan_type, and the evidence must match what nmap
itself reports (ports refused = nmap's closed/unfiltered count); floods must be
classified and their end reported; a benign mix (iperf3, HTTP requests, Prometheus
scraping the agent) must raise nothing; mitigation must drop (or, in dry-run, count)
exactly the packets the blocked source sends afterwards."""

import json
import os
import re
import time
import unittest
import xml.etree.ElementTree as ET

from e2e_inspect import netprobe_attachments
from netprobe_e2e import AGENT, PYTHON, E2ETestCase, free_port, log, require_tools, run, wait_for

PROMETHEUS = "/usr/bin/prometheus"

# Short windows so consecutive scans in one test are separate incidents; the
# thresholds are the defaults.
CONFIG = """
scan:
  window: 5s
  end_after: 1500ms
flood:
  end_after: 2s
"""


class SecurityCase(E2ETestCase):
    def topology(self):
        """attacker netns <-veth-> victim netns; the agent runs in the victim."""
        attacker = self.make_netns()
        victim = self.make_netns()
        v = self.make_veth(ns=victim, host_ns=attacker)  # v.host: attacker end, v.peer: victim end
        self.v = v
        return v

    def config(self, text: str = CONFIG) -> str:
        path = os.path.join(self.tmpdir(), "security.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def agent_in_victim(self, *extra: str, config: str | None = None, address: str = "127.0.0.1"):
        self.events_log = os.path.join(self.tmpdir(), "events.jsonl")
        return self.start_agent(f"--interface-filter={self.v.peer}", "--collect-interval=1s",
                                f"--security-config={config or self.config()}", f"--events-log={self.events_log}",
                                *extra, netns=self.v.ns, address=address)

    def events(self, agent, query: str = "") -> list[dict]:
        return agent.get_json("/api/v1/events" + query)["events"]

    def wait_event(self, agent, pred, what: str, timeout: float = 30) -> dict:
        def find():
            for e in self.events(agent):
                if pred(e):
                    return e
            return None
        return wait_for(find, timeout, what, interval=0.2)

    def wait_ended(self, agent, event_id: int, timeout: float = 30) -> dict:
        return self.wait_event(agent, lambda e: e["id"] == event_id and e["ended_at"] is not None,
                               f"event {event_id} to end", timeout)

    def nmap(self, *args: str, timeout: float = 180) -> ET.Element:
        p = run(["timeout", str(timeout - 10), "nmap", "-n", "-Pn", "-T4", "-e", self.v.host, "-oX", "-", *args],
                netns=self.v.host_ns, timeout=timeout)
        return ET.fromstring(p.stdout)


def nmap_counts(root: ET.Element) -> dict[str, int]:
    """Port states nmap reported, summed over hosts: {"closed": 1000, "open|filtered": 3, ...}."""
    counts: dict[str, int] = {}
    for host in root.iter("host"):
        for extra in host.iter("extraports"):
            counts[extra.get("state")] = counts.get(extra.get("state"), 0) + int(extra.get("count"))
        for port in host.iter("port"):
            st = port.find("state").get("state")
            counts[st] = counts.get(st, 0) + 1
    return counts


class PortScans(SecurityCase):
    def setUp(self):
        require_tools("nmap", "timeout")

    def test_each_technique_flagged_with_its_scan_type(self):
        v = self.topology()
        agent = self.agent_in_victim()
        last_id = 0
        # (nmap flag, scan_type, ports, nmap state whose count equals the probes refused,
        #  evidence field that counts them)
        scans = [
            ("-sS", "syn", "1-1000", "closed", "refused"),
            ("-sT", "connect", "1-1000", "closed", "refused"),
            ("-sF", "fin", "1-1000", "closed", "refused"),
            ("-sN", "null", "1-1000", "closed", "refused"),
            ("-sX", "xmas", "1-1000", "closed", "refused"),
            ("-sA", "ack", "1-1000", "unfiltered", "refused"),
            # the victim rate-limits ICMP port unreachables: nmap's "closed" ports are
            # the ones it got an unreachable for; the rest it calls open|filtered
            ("-sU", "udp", "1-200", "closed", "unreachable"),
            # IPv6: the same path with ICMPv6 and 16-byte addresses
            ("-6 -sS", "syn", "1-1000", "closed", "refused"),
        ]
        for i, (flag, scan_type, ports, state, field) in enumerate(scans):
            extra = ["--max-retries", "0"] if flag == "-sU" else []
            # Each raw scan from its own fixed source port below the ephemeral range. A
            # probe on the exact 5-tuple of a flow still in the flow table is not a new
            # flow, so it is not announced: with nmap's random source port, a FIN/NULL/
            # Xmas/ACK probe reused the tuple of one of the connect scan's 1000 attempts
            # about once in 30 scans (CI: -sF, 999 of 1000 probes seen).
            if flag != "-sT":
                extra += ["-g", str(2000 + i)]
            v6 = flag.startswith("-6")
            target = v.peer_ip6 if v6 else v.peer_ip
            root = self.nmap(*flag.split(), "-p", ports, *extra, target)
            counts = nmap_counts(root)
            log(f"nmap {flag} {ports}: {counts}")
            e = self.wait_event(agent, lambda e: e["type"] == "port_scan" and e["id"] > last_id,
                                f"a port_scan event for nmap {flag}")
            e = self.wait_ended(agent, e["id"])
            ev = e["evidence"]
            log(f"  event {e['id']}: scan_type={ev['scan_type']} ports_probed={ev['ports_probed']} "
                f"refused={ev['refused']} unreachable={ev['unreachable']} unanswered={ev['unanswered']} "
                f"latency={ev['detection_latency_ms']:.0f} ms")
            self.assertEqual(ev["scan_type"], scan_type, e)
            self.assertEqual(e["src_ip"], v.host_ip6 if v6 else v.host_ip)
            self.assertEqual(e["dst_ip"], target)
            self.assertEqual(e["targets"], [target])
            self.assertEqual(ev["mode"], "vertical")
            self.assertGreater(counts.get(state, 0), 0, counts)
            self.assertEqual(ev[field], counts[state], f"{flag}: {field} vs nmap's {state} count")
            if flag == "-sU":
                # the probes nmap got no answer for are the agent's unanswered ones
                self.assertEqual(ev["unanswered"], counts.get("open|filtered", 0))
            self.assertIn(e["severity"], ("medium", "high"))
            others = [x for x in self.events(agent) if x["id"] > last_id and x["type"] != "port_scan"]
            self.assertEqual(others, [], f"{flag} raised more than a port scan")
            last_id = e["id"]
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_security_events_total", type="port_scan"), len(scans))
        self.assertEqual(m.get("netprobe_security_active_attacks", type="port_scan"), 0)
        self.assertEqual(m.get("netprobe_map_update_errors_total", map="security_events"), 0)
        # every event twice in the log: when detected and when it ended
        with open(self.events_log) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(len(lines), 2 * len(scans))
        self.assertEqual(sorted(l["id"] for l in lines if l["ended_at"] is not None), list(range(1, len(scans) + 1)))

    def test_an_active_scan_is_a_security_event_finding_with_its_figures(self):
        # The scan stays "in progress" for 60 s after its last probe, so the diagnosis
        # (which reports active events) shows it while we look.
        v = self.topology()
        agent = self.agent_in_victim(config=self.config("scan:\n  window: 5s\n  end_after: 60s\n"))
        agent.wait_collections(2)
        self.assertEqual([f for f in agent.get_json("/api/v1/diagnosis")["findings"]
                          if f["rule"] == "security_event"], [])
        root = self.nmap("-sS", "-p", "1-1000", "-g", "2999", v.peer_ip)
        counts = nmap_counts(root)
        log(f"nmap -sS 1-1000: {counts}")
        e = self.wait_event(agent, lambda e: e["type"] == "port_scan", "a port_scan event")
        self.assertIsNone(e["ended_at"])

        def finding():
            for f in agent.get_json("/api/v1/diagnosis")["findings"]:
                if f["rule"] == "security_event" and f["subject"] == f"port_scan#{e['id']}":
                    return f
            return None
        f = wait_for(finding, 20, "a security_event finding")
        # the event as /api/v1/events has it at the same moment (its figures may still grow
        # while probes are counted: read both until they agree)
        def agree():
            fi = finding()
            ev = next(x for x in self.events(agent) if x["id"] == e["id"])
            got = {x["name"]: x["value"] for x in fi["evidence"]}
            want = {k: v for k, v in ev["evidence"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            return (fi, ev, got, want) if all(got.get(k) == v for k, v in want.items()) else None
        f, ev, got, want = wait_for(agree, 15, "the finding's evidence to equal the event's figures")
        log(f"finding {f['title']}: {got}")
        self.assertEqual(f["severity"], "critical" if ev["severity"] in ("high", "critical") else "warning")
        self.assertIn(f"from {v.host_ip}", f["title"])
        self.assertIn("scan_type syn", f["title"])
        self.assertEqual(got["targets"], 1)
        self.assertEqual(got["refused"], counts["closed"])  # nmap's own count of closed ports
        self.assertEqual(got["ports_probed"], ev["evidence"]["ports_probed"])
        self.assertGreaterEqual(got["ports_probed"], counts["closed"])
        self.assertEqual(f["query"], "netprobe events --type port_scan")

    def test_horizontal_scan(self):
        v = self.topology()
        hosts = [f"198.19.{v.host_ifindex % 250}.{i}" for i in range(1, 13)]
        for h in hosts:
            run(["ip", "addr", "add", f"{h}/32", "dev", v.peer], netns=v.ns)
        run(["ip", "route", "add", f"198.19.{v.host_ifindex % 250}.0/24", "dev", v.host], netns=v.host_ns)
        # the threshold set by flag (12 hosts probed, 11 needed)
        agent = self.agent_in_victim("--security-set=scan.horizontal_hosts=11")
        root = self.nmap("-sS", "-p", "22,80", *hosts)
        counts = nmap_counts(root)
        log(f"nmap -sS -p 22,80 over {len(hosts)} hosts: {counts}")
        e = self.wait_event(agent, lambda e: e["type"] == "port_scan", "a port_scan event")
        e = self.wait_ended(agent, e["id"])
        ev = e["evidence"]
        self.assertIn("horizontal", ev["mode"])
        self.assertEqual(sorted(e["targets"]), sorted(hosts))
        self.assertEqual(ev["hosts"], len(hosts))
        self.assertEqual(ev["refused"], counts["closed"])
        self.assertEqual(ev["scan_type"], "syn")


class Floods(SecurityCase):
    def setUp(self):
        require_tools("hping3")

    def flood(self, *args: str) -> str:
        p = run(["hping3", "-q", *args, self.v.peer_ip], netns=self.v.host_ns, check=False, timeout=120)
        out = p.stdout + p.stderr
        m = re.search(r"(\d+) packets transmitted", out)
        self.assertIsNotNone(m, out)
        return m.group(1)

    def test_syn_udp_icmp_floods_and_a_surge_classified_and_ended(self):
        v = self.topology()
        # hping3 -i u100 reaches ~5-10k packets/s depending on the machine's moment: the UDP
        # threshold (default 5000/s) sits below that, or a flood straddling it is reported
        # twice and, in its quieter ticks, as a traffic_surge (CI: 4.8-5.8k/s)
        agent = self.agent_in_victim(
            config=self.config(CONFIG.replace("flood:\n", "flood:\n  pps: 3000\n  udp_pps: 2000\n")))
        cases = [
            ("syn_flood", ["-S", "-p", "80", "-i", "u100", "-c", "30000"]),
            ("udp_flood", ["--udp", "-p", "9999", "-i", "u100", "-c", "30000"]),
            ("icmp_flood", ["--icmp", "-i", "u200", "-c", "15000"]),
            # TCP ACKs are none of the above: a static packets/s threshold (flood.pps) catches them
            ("traffic_surge", ["-A", "-p", "80", "-i", "u100", "-c", "30000"]),
        ]
        last_id = 0
        for kind, args in cases:
            sent = self.flood(*args)
            e = self.wait_event(agent, lambda e: e["type"] == kind and e["id"] > last_id, f"a {kind} event")
            e = self.wait_ended(agent, e["id"])
            ev = e["evidence"]
            log(f"hping3 {' '.join(args)}: {sent} sent; event {e['id']} {kind}: peak {ev['peak_pps']:.0f} pps, "
                f"top sources {ev.get('top_sources')}, {e['first_seen']} -> {e['ended_at']}")
            self.assertEqual(e["dst_ip"], v.peer_ip)
            self.assertEqual(ev["top_sources"][0]["ip"], v.host_ip)
            self.assertGreaterEqual(ev["peak_pps"], 1000)
            self.assertEqual(e["severity"], "high")
            others = {"port_scan", "syn_flood", "udp_flood", "icmp_flood", "traffic_surge"} - {kind}
            scans = [x for x in self.events(agent) if x["id"] > last_id and x["type"] in others]
            self.assertEqual(scans, [], f"{kind} also raised {scans}")
            last_id = max(x["id"] for x in self.events(agent))
        m = agent.metrics()
        for kind, _ in cases:
            self.assertEqual(m.get("netprobe_security_events_total", type=kind), 1, kind)
            self.assertEqual(m.get("netprobe_security_active_attacks", type=kind), 0, kind)


CONNECT = r"""
import socket, sys
hosts, port, count = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
ok = refused = 0
for h in hosts:
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect((h, port))
            ok += 1
        except ConnectionRefusedError:
            refused += 1
        finally:
            s.close()
print(ok, refused)
"""


class AbnormalConnections(SecurityCase):
    def connect(self, hosts, port, count=1):
        out = run([PYTHON, "-c", CONNECT, ",".join(hosts), str(port), str(count)], netns=self.v.host_ns).stdout
        ok, refused = map(int, out.split())
        return ok, refused

    def wait_listening(self, port):
        # ss, not a connection attempt: a refused early attempt would be a failed connection
        wait_for(lambda: f":{port}" in run(["ss", "-Htln", f"sport = :{port}"], netns=self.v.ns).stdout, 10,
                 f"a listener on port {port}")

    def test_failures_fan_out_and_new_peers(self):
        v = self.topology()
        net = f"198.19.{v.host_ifindex % 250}"
        hosts = [f"{net}.{i}" for i in range(1, 61)]
        for h in hosts:
            run(["ip", "addr", "add", f"{h}/32", "dev", v.peer], netns=v.ns)
        run(["ip", "route", "add", f"{net}.0/24", "dev", v.host], netns=v.host_ns)
        cfg = CONFIG + "connections:\n  fanout_peers: 50\n  learning_period: 6s\n"
        agent = self.agent_in_victim(config=self.config(cfg))
        t0 = time.monotonic()
        srv = self.spawn([PYTHON, "-m", "http.server", "18080", "--bind", "0.0.0.0"], netns=v.ns, log_name="http.log")
        self.wait_listening(18080)

        # learning: one client talks to one server port
        self.assertEqual(self.connect([v.peer_ip], 18080, 3), (3, 0))
        time.sleep(max(0.0, 7 - (time.monotonic() - t0)))
        self.assertEqual(self.connect([v.peer_ip], 18080, 3), (3, 0))  # known pair: nothing
        # 25 refused attempts at one closed port: connection_failures (not a scan: one port)
        self.assertEqual(self.connect([v.peer_ip], 5432, 25), (0, 25))
        e = self.wait_event(agent, lambda e: e["type"] == "connection_failures", "connection_failures")
        self.assertEqual((e["src_ip"], e["dst_ip"], e["evidence"]["dst_port"]), (v.host_ip, v.peer_ip, 5432))
        self.assertEqual(e["evidence"]["failures"], 25)
        # a new server port after learning: new_peer, new_service
        srv2 = self.spawn([PYTHON, "-m", "http.server", "18081", "--bind", v.peer_ip], netns=v.ns, log_name="http2.log")
        self.wait_listening(18081)
        self.assertEqual(self.connect([v.peer_ip], 18081), (1, 0))
        e = self.wait_event(agent, lambda e: e["type"] == "new_peer", "new_peer")
        self.assertEqual((e["src_ip"], e["dst_ip"]), (v.host_ip, v.peer_ip))
        self.assertEqual((e["evidence"]["dst_port"], e["evidence"]["new_service"]), (18081, 1))
        self.assertIsNotNone(e["ended_at"])  # a one-off observation
        # fan-out: answered connections to 60 hosts (each one a new peer too)
        self.assertEqual(self.connect(hosts, 18080), (60, 0))
        # peers: the 60 hosts and the victim's own address
        e = self.wait_event(agent, lambda e: e["type"] == "fan_out" and e["evidence"]["peers"] == 61, "fan_out")
        self.assertEqual(e["src_ip"], v.host_ip)
        # the last hosts' answers (their new_peer records) may come an evaluation after
        # the SYNs that completed the fan-out
        def all_new_peers():
            evs = self.events(agent, "?limit=1000")
            n = len([x for x in evs if x["type"] == "new_peer"])
            return evs if n >= 1 + 60 else None
        evs = wait_for(all_new_peers, 5, "61 new_peer events", interval=0.2)
        self.assertEqual([x for x in evs if x["type"] == "port_scan"], [])
        new_peers = [x for x in evs if x["type"] == "new_peer"]
        self.assertEqual(len(new_peers), 1 + 60)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_security_events_total", type="new_peer"), 61)
        self.assertEqual(m.get("netprobe_security_events_total", type="fan_out"), 1)
        srv.stop()
        srv2.stop()


class Benign(SecurityCase):
    def test_benign_mix_raises_nothing(self):
        """iperf3, 300 short HTTP requests and a Prometheus server scraping the agent
        every second: no event at all. new_peer is on: everything talks during the
        learning period, then talks again after it."""
        require_tools("iperf3", "curl", PROMETHEUS)
        v = self.topology()
        cfg = self.config(CONFIG + "connections:\n  learning_period: 8s\n")
        agent = self.agent_in_victim(config=cfg, address="0.0.0.0")
        t0 = time.monotonic()
        web_port, iperf_port, prom_port = 18080, 15201, free_port(v.host_ns)
        work = self.tmpdir()
        with open(os.path.join(work, "index.html"), "w") as f:
            f.write("hello\n" * 100)
        self.spawn([PYTHON, "-m", "http.server", str(web_port), "--bind", v.peer_ip, "--directory", work],
                   netns=v.ns, log_name="http.log")
        self.spawn(["iperf3", "-s", "-B", v.peer_ip, "-p", str(iperf_port)], netns=v.ns, log_name="iperf3.log")
        prom_cfg = os.path.join(work, "prometheus.yml")
        with open(prom_cfg, "w") as f:
            f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netprobe\n"
                    f"    static_configs:\n      - targets: ['{v.peer_ip}:{agent.port}']\n")
        self.spawn([PROMETHEUS, f"--config.file={prom_cfg}", f"--storage.tsdb.path={os.path.join(work, 'data')}",
                    f"--web.listen-address=127.0.0.1:{prom_port}"], netns=v.host_ns, log_name="prometheus.log")
        wait_for(lambda: run(["curl", "-sf", f"http://{v.peer_ip}:{web_port}/index.html"], netns=v.host_ns,
                             check=False).returncode == 0, 10, "the web server")

        def mix(seconds: int, requests: int):
            run(["iperf3", "-c", v.peer_ip, "-p", str(iperf_port), "-t", str(seconds)], netns=v.host_ns,
                timeout=seconds + 30)
            for _ in range(requests):
                run(["curl", "-sf", "-o", "/dev/null", f"http://{v.peer_ip}:{web_port}/index.html"], netns=v.host_ns)

        mix(2, 20)                        # learning period: every peer seen once
        time.sleep(max(0.0, 9 - (time.monotonic() - t0)))
        mix(5, 300)                       # after it: the same peers again
        time.sleep(3)
        m = agent.metrics()
        events = self.events(agent)
        log(f"observations: {m.get('netprobe_security_observations_total', kind='new_flow')} new flows; "
            f"events: {events}")
        self.assertGreater(m.get("netprobe_security_observations_total", kind="new_flow"), 300)
        self.assertGreater(m.get("netprobe_security_evaluations_total"), 40)
        self.assertEqual(events, [])
        for s in m.find("netprobe_security_events_total"):
            self.assertEqual(s.value, 0, s)
        # scraped by Prometheus all along
        up = run(["curl", "-sf", f"http://127.0.0.1:{prom_port}/api/v1/query?query=up"], netns=v.host_ns)
        self.assertIn('"value"', up.stdout)


class Mitigation(SecurityCase):
    def blocked_counter(self, agent, cidr: str) -> float:
        return agent.metrics().get_or("netprobe_security_blocked_packets_total", 0.0, cidr=cidr)

    def run_mode(self, mode: str, *extra: str, enforced_by: str = "netprobe_tc_in_block"):
        """enforced_by: the program that holds the blocklist on the victim's interface -
        TC ingress where there is no XDP (a veth in --xdp-mode=auto), else XDP."""
        require_tools("nmap", "ping")
        v = self.topology()
        agent = self.agent_in_victim(f"--mitigate={mode}", *extra,
                                     config=self.config(CONFIG + "mitigation:\n  block_duration: 5m\n"))
        a = {k: sorted(n.split(":")[0] for _, n in p) for k, p in netprobe_attachments(v.peer, v.ns).items() if p}
        log(f"programs on {v.peer}: {a}")
        self.assertIn(enforced_by, a.get("xdp", []) + a.get("tcx_ingress", []), a)
        self.nmap("-sS", "-p", "1-1000", v.peer_ip)
        e = self.wait_event(agent, lambda e: e["type"] == "port_scan", "a port_scan event")
        cidr = f"{v.host_ip}/32"
        self.assertEqual(e["blocked"], [cidr])
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_security_block_rules"), 1)
        self.assertEqual(m.get("netprobe_security_mitigation_mode", mode=mode), 1)
        # the scan goes on after the rule is in: its later probes are counted too (dropped, or
        # passed in dry-run). The figure before the ping is the one that no longer moves.
        before = agent.wait_stable(["netprobe_security_blocked_packets_total"], settle=2).get_or(
            "netprobe_security_blocked_packets_total", 0.0, cidr=cidr)
        p = run(["ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", v.peer_ip], netns=v.host_ns, check=False)
        sent = int(re.search(r"(\d+) packets transmitted", p.stdout).group(1))
        received = int(re.search(r"(\d+) received", p.stdout).group(1))
        after = wait_for(lambda: (self.blocked_counter(agent, cidr) - before >= sent) and
                         self.blocked_counter(agent, cidr), 10, "the blocked counter")
        log(f"mitigation {mode}: ping {sent} sent {received} received; blocked counter {before} -> {after}")
        self.assertEqual(after - before, sent)
        # another source is untouched
        run(["ping", "-n", "-q", "-c", "2", "-i", "0.2", v.host_ip6.split("/")[0]], netns=v.ns)
        return sent, received

    def test_on_drops_the_scanner(self):
        sent, received = self.run_mode("on")
        self.assertEqual(received, 0)

    def test_on_drops_the_scanner_with_xdp_off(self):
        """--xdp-mode=off: TC ingress holds the blocklist (mitigation used to be refused)."""
        sent, received = self.run_mode("on", "--xdp-mode=off")
        self.assertEqual(received, 0)

    def test_on_drops_the_scanner_at_xdp(self):
        sent, received = self.run_mode("on", "--xdp-mode=generic", enforced_by="netprobe_xdp")
        self.assertEqual(received, 0)

    def test_rules_expire(self):
        require_tools("nmap", "ping")
        v = self.topology()
        agent = self.agent_in_victim("--mitigate=on", config=self.config(CONFIG + "mitigation:\n  block_duration: 3s\n"))
        self.nmap("-sS", "-p", "1-1000", v.peer_ip)
        self.wait_event(agent, lambda e: e["type"] == "port_scan" and e["blocked"], "a blocking port_scan event")
        cidr = f"{v.host_ip}/32"
        wait_for(lambda: agent.metrics().get("netprobe_security_block_rules") == 0, 20, "the rule to expire")
        m = agent.metrics()
        self.assertEqual(m.find("netprobe_security_blocked_packets_total", cidr=cidr), [])
        self.assertEqual(m.get("netprobe_security_block_rules_added_total"), 1)
        p = run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", v.peer_ip], netns=v.host_ns, check=False)
        self.assertIn(" 3 received", p.stdout)

    def test_dry_run_counts_but_passes(self):
        sent, received = self.run_mode("dry-run")
        self.assertEqual(received, sent)


class ConfigAndApi(SecurityCase):
    def test_bad_config_is_rejected_with_line_and_reason(self):
        bad = self.config("scan:\n  window: 5s\n  vertical_ports: many\n")
        p = run([AGENT, f"--security-config={bad}", "--interface-filter=lo", "--metrics-port=18999"], check=False,
                timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("line 3: scan.vertical_ports: expected a positive integer", p.stderr)
        p = run([AGENT, "--security-set=flood.syn_pps=fast", "--interface-filter=lo", "--metrics-port=18999"],
                check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--security-set flood.syn_pps=fast: line 2: flood.syn_pps: expected a number", p.stderr)
        p = run([AGENT, "--mitigate=sometimes"], check=False, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("invalid --mitigate", p.stderr)
        p = run([AGENT, f"--events-log={self.tmpdir()}/no/such/dir/e.jsonl", "--interface-filter=lo",
                 "--metrics-port=18999"], check=False, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--events-log", p.stderr)

    def test_security_off(self):
        require_tools("nmap")
        v = self.topology()
        agent = self.start_agent(f"--interface-filter={v.peer}", "--collect-interval=1s", "--security=off", netns=v.ns)
        self.nmap("-sS", "-p", "1-200", v.peer_ip)
        j = agent.get_json("/api/v1/events")
        self.assertEqual((j["enabled"], j["count"]), (False, 0))
        m = agent.wait_collections(2)
        self.assertEqual(m.find("netprobe_security_events_total"), [])
        self.assertGreater(m.get("netprobe_interface_rx_packets_total", interface=v.peer), 200)

    def test_events_query_parameters(self):
        self.topology()
        agent = self.agent_in_victim()
        self.assertEqual(agent.get_json("/api/v1/events")["count"], 0)
        for bad in ("?type=bogus", "?since=yesterday", "?limit=0", "?color=red"):
            status, _, body = agent.request("/api/v1/events" + bad)
            self.assertEqual(status, 400, bad)
            self.assertIn("error", json.loads(body))
        self.assertEqual(agent.get_json("/api/v1/events?type=port_scan,syn_flood&since=2020-01-01T00:00:00Z")["count"], 0)


if __name__ == "__main__":
    unittest.main()
