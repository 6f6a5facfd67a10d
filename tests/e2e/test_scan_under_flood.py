"""Port scan detection while the kernel flow table is full, and no false ACK scan
from connections that outlive the flow timeout.

A. A spoofed-source SYN flood (hping3 --rand-source: every packet a new flow) fills
   the agent's kernel flow table (a small --flow-table-size); while the flood goes
   on, nmap -sS probes 1000 ports from the attacker's own address. The scan must
   still be reported: a port_scan event for nmap's source within 2 s of nmap's start
   (a functional requirement of the detection, not a performance measurement).

B. A long-lived TCP connection that stays idle for longer than --flow-timeout and
   then carries data again in both directions is no scan: its first packets after
   the pause are ACKs of an established connection (a new kernel flow whose first
   packet is no SYN), and no port_scan event (in particular none with scan_type
   "ack") may follow. Three shapes: one connection; 40 connections to 40 ports of
   one host (more than scan.vertical_ports, 20); the same 40 with TCP keepalives
   (bare ACKs, each one the first packet of a new kernel flow) during the pause.

Topology as in test_security.py: attacker (or client) namespace <-veth-> victim
namespace, the agent in the victim watching its end of the veth. The victim has
no route but the veth's /30: it cannot answer the flood's random sources.
"""

import datetime
import os
import re
import subprocess
import time
import unittest

from e2e_inspect import nstat_counters
from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for

# Short windows so a test's incidents end quickly; the thresholds are the defaults.
CONFIG = """
scan:
  window: 5s
  end_after: 1500ms
flood:
  end_after: 2s
"""

FLOW_TABLE = 2048
DETECTION_WINDOW = 2.0  # seconds from nmap's start to the port_scan event


def parse_time(s: str) -> float:
    """RFC 3339 (the agent's: 2026-11-28T18:00:00.123Z) to Unix seconds."""
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class ScanCase(E2ETestCase):
    def topology(self):
        """attacker netns <-veth-> victim netns; the agent runs in the victim."""
        attacker = self.make_netns()
        victim = self.make_netns()
        self.v = self.make_veth(ns=victim, host_ns=attacker)  # v.host: attacker end, v.peer: victim end
        return self.v

    def config(self, text: str = CONFIG) -> str:
        path = os.path.join(self.tmpdir(), "security.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def agent_in_victim(self, *extra: str):
        self.events_log = os.path.join(self.tmpdir(), "events.jsonl")
        return self.start_agent(f"--interface-filter={self.v.peer}", f"--security-config={self.config()}",
                                f"--events-log={self.events_log}", *extra, netns=self.v.ns)

    def events(self, agent) -> list[dict]:
        return agent.get_json("/api/v1/events?limit=1000")["events"]


class ScanWhileTableFull(ScanCase):
    def test_syn_scan_reported_while_a_spoofed_flood_fills_the_flow_table(self):
        require_tools("hping3", "nmap", "timeout", "ping")
        v = self.topology()
        # The kernel table is drained of entries idle for two collect intervals: 5 s
        # (10 s idle) keeps the flood's entries in the table all through the scan.
        agent = self.agent_in_victim("--collect-interval=5s", f"--flow-table-size={FLOW_TABLE}")
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_map_capacity", map="flow_stats"), FLOW_TABLE)
        errors0 = m.get("netprobe_map_update_errors_total", map="flow_stats")
        run(["ping", "-c", "1", "-W", "2", v.peer_ip], netns=v.host_ns)  # ARP before the flood

        # ~10k SYN/s from random sources to one port, bounded: 300k packets, 60 s
        flood = self.spawn(["timeout", "60", "hping3", "-q", "-S", "--rand-source", "-p", "80", "-i", "u100",
                            "-c", "300000", v.peer_ip], netns=v.host_ns, log_name="hping3.log", name="hping3")

        def full():
            self.assertTrue(flood.running(), f"hping3 ended early: {flood.output()}")
            mm = agent.metrics()
            errs = mm.get("netprobe_map_update_errors_total", map="flow_stats") - errors0
            return (errs, mm.get("netprobe_map_entries", map="flow_stats")) if errs > 0 else None

        errs, entries = wait_for(full, 20, "flow_stats insert failures (the flood filling the table)", interval=0.1)
        log(f"flow table full: {errs:.0f} failed inserts, {entries:.0f} of {FLOW_TABLE} entries at the last collection")
        self.assertGreaterEqual(entries, FLOW_TABLE * 0.9)

        # the scan, from the attacker's own address, while the flood goes on
        xml = os.path.join(self.tmpdir(), "nmap.xml")
        t_start = time.time()
        nmap = self.spawn(["timeout", "60", "nmap", "-n", "-Pn", "-T4", "-sS", "-p", "1-1000", "--max-rate", "2000",
                           "--max-retries", "1", "-e", v.host, "-oX", xml, v.peer_ip], netns=v.host_ns,
                          log_name="nmap.log", name="nmap")
        found = None
        while time.time() < t_start + DETECTION_WINDOW + 3:
            scans = [e for e in self.events(agent) if e["type"] == "port_scan" and e["src_ip"] == v.host_ip]
            if scans:
                found = scans[0]
                break
            time.sleep(0.1)
        flood_running = flood.running()
        self.assertEqual(nmap.wait(60), 0, nmap.output())
        with open(xml) as f:
            closed = re.search(r'<extraports state="closed" count="(\d+)"', f.read())
        m = agent.metrics()
        errs = m.get("netprobe_map_update_errors_total", map="flow_stats") - errors0
        others = sorted({(e["type"], e["src_ip"]) for e in self.events(agent)})
        log(f"nmap: {closed.group(1) if closed else '?'} ports closed; flood still running at the check: "
            f"{flood_running}; flow_stats failed inserts {errs:.0f}; new-flow observations "
            f"{m.get_or('netprobe_security_observations_total', 0.0, kind='new_flow'):.0f}; events {others}")
        self.assertTrue(flood_running, "the flood ended before the scan was checked")
        if found is None:
            self.fail(f"no port_scan event for the scanner {v.host_ip} within {DETECTION_WINDOW + 3:.0f} s of nmap's "
                      f"start while the flow table was full ({errs:.0f} failed flow_stats inserts); events: {others}")
        latency = parse_time(found["detected_at"]) - t_start
        log(f"port_scan event {found['id']}: detected {latency:.2f} s after nmap started, "
            f"evidence {found['evidence']}")
        self.assertLessEqual(latency, DETECTION_WINDOW, f"port_scan detected {latency:.2f} s after nmap started")
        self.assertEqual(found["dst_ip"], v.peer_ip)
        self.assertEqual(found["evidence"]["scan_type"], "syn")


class FloodUnderPressure(ScanCase):
    """C. A random-port SYN flood (hping3's source port incremented per packet, to a closed
    port: each SYN answered by a RST) fills the kernel flow table; the agent puts it under
    pressure, and the flood's attempts and refusals then share two aggregate entries (the
    initiator's port 0) instead of an entry each: the table empties, inserts stop failing,
    and every TCP segment is still counted, in a flow or as a failed insert. Oracles:
    hping3's own count of the SYNs it sent, and the attacker's TCP counter (nstat InSegs:
    the RSTs it received; the victim's counters also count the agent's API connections on
    loopback). Every attempt and refusal also reaches the detectors, most of them folded
    into another record of their aggregate entry (one record per tick and CPU), so the
    agent reads a fraction of the records and counts every attempt."""

    def test_random_port_flood_keeps_two_aggregate_entries(self):
        require_tools("hping3", "nstat", "timeout", "ping")
        v = self.topology()
        table, packets = 2048, 20000
        agent = self.agent_in_victim("--collect-interval=1s", f"--flow-table-size={table}", "--xdp-mode=off")
        run(["ping", "-c", "1", "-W", "2", v.peer_ip], netns=v.host_ns)  # ARP and ICMP before the flood
        agent.wait_collections(2)
        k0 = nstat_counters(v.host_ns)
        m0 = agent.metrics()
        errors0 = m0.get("netprobe_map_update_errors_total", map="flow_stats")
        self.assertEqual(m0.get("netprobe_kernel_flow_pressure"), 0)
        records = lambda mm: mm.get_or("netprobe_security_observations_total", 0.0, kind="new_flow")  # noqa: E731
        folded = lambda mm: mm.get_or("netprobe_security_folded_flows_total", 0.0)  # noqa: E731
        records0, folded0 = records(m0), folded(m0)
        # ~2,000 SYN/s for ~10 s, a new source port each
        flood = self.spawn(["timeout", "60", "hping3", "-q", "-S", "-p", "80", "-i", "u500", "-c", str(packets),
                            v.peer_ip], netns=v.host_ns, log_name="hping3.log", name="hping3")
        wait_for(lambda: agent.metrics().get("netprobe_kernel_flow_pressure") == 1, 10,
                 "the kernel flow table under pressure", interval=0.1)
        # once the entries the flood took before are gone (idle 1 s under pressure), no
        # insert fails: a quiet stretch of three collections while the flood goes on
        def settled():
            self.assertTrue(flood.running(), f"hping3 ended before the table settled: {flood.output()}")
            a = agent.wait_collections(1).get("netprobe_map_update_errors_total", map="flow_stats")
            b = agent.wait_collections(3)
            return b if b.get("netprobe_map_update_errors_total", map="flow_stats") == a else None
        m1 = wait_for(settled, 10, "flow_stats inserts to stop failing under pressure", interval=0)
        entries = m1.get("netprobe_map_entries", map="flow_stats")
        log(f"under pressure: {entries:.0f} of {table} entries, "
            f"{m1.get('netprobe_kernel_flows_aggregated_packets_total'):.0f} packets aggregated, "
            f"{m1.get('netprobe_map_update_errors_total', map='flow_stats') - errors0:.0f} failed inserts before")
        self.assertLessEqual(entries, 16, "the flood's attempts still take entries of their own")
        self.assertTrue(flood.running(), "the flood ended before the check")
        self.assertEqual(flood.wait(60), 0, flood.output())
        sent = re.search(r"(\d+) packets transmitted", flood.output())
        self.assertIsNotNone(sent, flood.output())
        self.assertEqual(int(sent.group(1)), packets)
        time.sleep(1.5)  # the last SYNs' RSTs
        syns, rsts = packets, nstat_counters(v.host_ns)["TcpInSegs"] - k0["TcpInSegs"]
        self.assertEqual(rsts, syns, "not every SYN was refused with a RST: not a valid run")
        # every segment in a flow of the victim's interface, or counted as a failed insert
        def counted():
            m = agent.wait_collections(2)
            doc_in = agent.flows(interface=v.peer, direction="ingress", protocol="tcp", limit=10000)
            doc_eg = agent.flows(interface=v.peer, direction="egress", protocol="tcp", limit=10000)
            f_in = sum(f["packets"] for f in doc_in["flows"])
            f_eg = sum(f["packets"] for f in doc_eg["flows"])
            errs = m.get("netprobe_map_update_errors_total", map="flow_stats") - errors0
            return (f_in, f_eg, errs, m, doc_in) if f_in + f_eg + errs >= syns + rsts else None
        f_in, f_eg, errs, m, doc_in = wait_for(counted, 15, "the flood's segments in flows or failed inserts",
                                               interval=0)
        aggregate = [f for f in doc_in["flows"] if f["src_port"] == 0 and f["dst_port"] == 80]
        log(f"hping3: {syns} SYNs sent, {rsts} RSTs back; agent: {f_in:.0f} ingress + {f_eg:.0f} egress TCP packets in "
            f"flows, {errs:.0f} failed inserts, {m.get('netprobe_kernel_flows_aggregated_packets_total'):.0f} "
            f"aggregated; aggregate flows {[(f['src_ip'], f['packets']) for f in aggregate]}")
        self.assertEqual(f_in + f_eg + errs, syns + rsts)
        self.assertEqual(len(aggregate), 1, doc_in["flows"][:5])
        self.assertEqual(aggregate[0]["src_ip"], v.host_ip)
        self.assertGreater(aggregate[0]["packets"], packets / 2)
        self.assertEqual(m.get("netprobe_kernel_flows_aggregated_packets_total"),
                         sum(f["packets"] for f in doc_in["flows"] + agent.flows(
                             interface=v.peer, direction="egress", protocol="tcp", limit=10000)["flows"]
                             if f["src_port"] == 0 or f["dst_port"] == 0))
        # The detectors saw every attempt and refusal: a record each, or folded into a later
        # record of its aggregate entry. Not yet announced: what the flood's last tick on
        # each CPU folded into the two aggregate entries (no later packet carried it; ~4-8
        # packets a tick at this rate), and nothing else. A fraction of the records.
        n_records, n_folded = records(m) - records0, folded(m) - folded0
        lost = (m.get_or("netprobe_map_update_errors_total", 0.0, map="security_events")
                + m.get_or("netprobe_security_records_dropped_total", 0.0))
        log(f"detectors: {n_records:.0f} new-flow records announcing {n_records + n_folded:.0f} attempts and "
            f"refusals of {syns + rsts}; records lost {lost:.0f}")
        self.assertEqual(lost, 0)
        self.assertLessEqual(n_records + n_folded, syns + rsts)
        self.assertGreaterEqual(n_records + n_folded, syns + rsts - 100, "attempts not announced to the detectors")
        self.assertLess(n_records, (syns + rsts) / 2, "the aggregated attempts were not folded")
        # the flood over, the pressure goes
        wait_for(lambda: agent.metrics().get("netprobe_kernel_flow_pressure") == 0, 15, "the pressure to end")


# Runs in the victim: accepts connections on ports port..port+count-1 of ip; echoes
# every read back.
ECHO_SERVER = r"""
import socket, sys, threading
ip, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port)); s.listen(64)
    return s
def accept(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
socks = [listen(first + i) for i in range(count)]
for s in socks:
    threading.Thread(target=accept, args=(s,), daemon=True).start()
print("LISTENING", flush=True)
threading.Event().wait(300)
"""

# Runs in the client namespace: n connections, the i-th to port first+(i % ports) of ip
# (TCP keepalive every `keepalive` s of idleness when > 0), a few request/answer rounds
# on each; "IDLE" once they are idle; waits (at most 120 s) until the file `go` exists,
# then more rounds on every connection in both directions; "DONE".
CLIENT = r"""
import os, socket, sys, time
ip, first, ports, n, keepalive, go = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                      int(sys.argv[5]), sys.argv[6])
conns = []
for i in range(n):
    c = socket.create_connection((ip, first + i % ports), timeout=10)
    if keepalive:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, keepalive)
    conns.append(c)
def rounds(k):
    for _ in range(k):
        for c in conns:
            c.sendall(b"q" * 300)
            got = 0
            while got < 300:
                d = c.recv(65536)
                if not d:
                    raise SystemExit("connection closed by the server")
                got += len(d)
        time.sleep(0.05)
rounds(3)
print("IDLE", flush=True)
end = time.monotonic() + 120
while not os.path.exists(go) and time.monotonic() < end:
    time.sleep(0.05)
rounds(20)
print("DONE", flush=True)
time.sleep(120)
"""

PORT = 18080


class ResumedConnection(ScanCase):
    def resume_after_flow_timeout(self, connections: int, ports: int, keepalive: int = 0, idle: float = 0):
        """connections over `ports` server ports, idle past the flow timeout (with TCP
        keepalives every `keepalive` s, when given, for `idle` s), then resumed."""
        v = self.topology()
        # flows idle for 3 s are forgotten (the kernel entry after two 1 s intervals)
        agent = self.agent_in_victim("--collect-interval=1s", "--flow-timeout=3s")
        srv = self.spawn([PYTHON, "-c", ECHO_SERVER, v.peer_ip, str(PORT), str(ports)], netns=v.ns,
                         stdout=subprocess.PIPE, name="echo-server")
        self.defer("echo server's stdout", srv.p.stdout.close)
        self.assertTrue(srv.p.stdout.readline().startswith(b"LISTENING"), "the echo server did not start")
        go = os.path.join(self.tmpdir(), "go")
        client = self.spawn([PYTHON, "-c", CLIENT, v.peer_ip, str(PORT), str(ports), str(connections), str(keepalive),
                             go], netns=v.host_ns, stdout=subprocess.PIPE, name="client")
        self.defer("client's stdout", client.p.stdout.close)
        line = client.p.stdout.readline()
        self.assertTrue(line.startswith(b"IDLE"), f"client: {line!r}")
        t_idle = time.monotonic()
        flows = lambda: agent.flows(ip=v.host_ip, protocol="tcp", limit=10000)["total"]  # noqa: E731
        removed = lambda: agent.metrics().get_or("netprobe_kernel_flows_removed_total", 0.0)  # noqa: E731
        obs = lambda: agent.metrics().get_or("netprobe_security_observations_total", 0.0, kind="new_flow")  # noqa
        wait_for(lambda: flows() > 0, 10, "the connections' flows")
        removed0 = removed()
        if keepalive:
            # keepalives (bare ACKs) every `keepalive` s, each one after the kernel entry
            # went idle and was removed: the flow comes back with an ACK as first packet
            time.sleep(idle)
        else:
            # idle past the flow timeout: the agent forgets the connections' flows
            wait_for(lambda: flows() == 0, 30, "the idle connections' flows to be forgotten (--flow-timeout)",
                     interval=0.2)
            time.sleep(1)
        # both directions of every connection left the kernel's flow table while idle
        self.assertGreaterEqual(removed() - removed0, 2 * connections, "idle kernel flow entries were not removed")
        log(f"{connections} connection(s) to {ports} port(s) idle for {time.monotonic() - t_idle:.1f} s "
            f"(flow timeout 3 s, keepalive {keepalive or 'off'}); kernel entries removed meanwhile: "
            f"{removed() - removed0:.0f}; resuming")
        obs1 = obs()
        with open(go, "w"):
            pass
        line = client.p.stdout.readline()
        self.assertTrue(line.startswith(b"DONE"), f"client: {line!r}")
        # the resumed flows are back in the flow table; give the detector unanswered_after and a few ticks
        wait_for(lambda: flows() > 0, 10, "the resumed connections' flows")
        time.sleep(4)
        evs = self.events(agent)
        log(f"events: {[(e['type'], e['src_ip'], e['evidence'].get('scan_type')) for e in evs]}; "
            f"new flows announced to the detectors after the resumption: {obs() - obs1:.0f}")
        ack = [e for e in evs if e["type"] == "port_scan" and e["evidence"].get("scan_type") == "ack"]
        self.assertEqual(ack, [], "resumed connections reported as an ACK scan")
        self.assertEqual([e for e in evs if e["type"] == "port_scan"], [], "resumed connections reported as a scan")

    def test_connection_idle_past_the_flow_timeout(self):
        self.resume_after_flow_timeout(1, 1)

    def test_connections_to_many_ports_idle_past_the_flow_timeout(self):
        # more ports than scan.vertical_ports (20): enough to be a scan if they counted as probes
        self.resume_after_flow_timeout(40, 40)

    def test_keepalives_on_many_ports_idle_past_the_flow_timeout(self):
        self.resume_after_flow_timeout(40, 40, keepalive=4, idle=10)

if __name__ == "__main__":
    unittest.main()
