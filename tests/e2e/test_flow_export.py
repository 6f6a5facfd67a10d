"""Flow export: the agent's flow records in real collectors, counted exactly.

Topology: a "node" namespace (the agent, the collectors on its loopback, the servers)
and a "client" namespace, joined by a veth; the agent watches the node's end.

Oracles the project did not write:
- UDP flows: the client's own counts. Each flow sends N datagrams of S payload bytes
  from its own source port and waits for each echo: forward = N packets of 28 + S IP
  bytes, reverse = the echoes it received.
- TCP flows: tshark's count of the connection's packets and IP bytes on the client's end
  of the veth (ping-pong messages below the MSS: no GSO/GRO super-packets).
- Decoding: nfdump's nfcapd + nfdump and pmacct's nfacctd (UDP, unidirectional records:
  neither reads RFC 5103 reverse elements), and tshark's IPFIX dissector for biflows
  over TCP (Debian's nfcapd 1.7.1 and nfacctd 1.7.7 have no IPFIX-over-TCP listener).
  What a TCP collector received is its bytes as read, split into messages by their
  length field, handed to tshark.

Every flow must appear once (one record: each ends by the idle timeout or at the
agent's stop, far below the active timeout) with exactly the oracle's packets and
bytes, in every collector and in the agent's own --flow-log.
"""

import json
import os
import signal
import socket
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for, wait_line

UDP_PORT, TCP_PORT = 7001, 7002

# Runs in the node namespace: echoes UDP datagrams, and answers each TCP message of
# argv[3] bytes with argv[4] bytes, until killed.
SERVER = r"""
import socket, sys, threading
host = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
u.bind((host, int(sys.argv[2])))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((host, int(sys.argv[2]) + 1))
t.listen(16)
req, resp = int(sys.argv[3]), int(sys.argv[4])
def tcp():
    while True:
        c, _ = t.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            got = b""
            while len(got) < req:
                d = c.recv(req - len(got))
                if not d:
                    break
                got += d
            if len(got) < req:
                break
            c.sendall(b"r" * resp)
        c.close()
threading.Thread(target=tcp, daemon=True).start()
print("READY", flush=True)
while True:
    d, a = u.recvfrom(65536)
    u.sendto(d, a)
"""

# Runs in the client namespace: UDP flows (argv: host, port, flows, first count, spacing
# seconds), each from its own socket, N = first + i datagrams of 100 + 10 * (i % 100) bytes (no IP
# fragments on a 1500-byte MTU),
# each echo awaited; then, with argv[6] > 0, that many TCP connections of argv[7]
# request/response rounds. Flow i binds source port argv[10] + i (never an ephemeral
# port the kernel may hand out again: two flows of one 5-tuple within the idle timeout
# are one flow). Prints one JSON line per UDP flow.
CLIENT = r"""
import json, socket, sys, time
host, port, flows, first, spacing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
tcp_conns, rounds, req, resp = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
base = int(sys.argv[10])
for i in range(flows):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", base + i))
    s.settimeout(2)
    s.connect((host, port))
    n, size, echoed = first + i, 100 + 10 * (i % 100), 0
    for _ in range(n):
        s.send(b"u" * size)
        try:
            s.recv(65536)
            echoed += 1
        except socket.timeout:
            pass
    print(json.dumps({"proto": "udp", "sport": s.getsockname()[1], "sent": n, "size": size, "echoed": echoed}), flush=True)
    s.close()
    time.sleep(spacing)
for i in range(tcp_conns):
    c = socket.create_connection((host, port + 1))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sport = c.getsockname()[1]
    for _ in range(rounds):
        c.sendall(b"q" * req)
        got = 0
        while got < resp:
            got += len(c.recv(resp - got))
    c.close()
    print(json.dumps({"proto": "tcp", "sport": sport}), flush=True)
print("DONE", flush=True)
"""

# A collector transport stand-in for IPFIX over TCP: accepts one connection at a time
# and stores each connection's bytes, as read, in DIR/conn-N.bin (flushed as they come).
TCP_SINK = r"""
import os, socket, sys
d, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
print("READY", flush=True)
n = len([f for f in os.listdir(d) if f.startswith("conn-")])
while True:
    c, _ = s.accept()
    n += 1
    with open(os.path.join(d, f"conn-{n}.bin"), "wb", buffering=0) as f:
        while True:
            b = c.recv(65536)
            if not b:
                break
            f.write(b)
    c.close()
"""

NFACCTD_CONF = """daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: {port}
plugins: print[csv]
aggregate[csv]: src_host, dst_host, src_port, dst_port, proto
print_output[csv]: csv
print_refresh_time[csv]: 1
pidfile: {dir}/nfacctd.pid
"""


def ipfix_messages(stream: bytes) -> list[bytes]:
    """Splits an IPFIX byte stream into messages by their header's length field (a partial
    message at the end - a connection cut mid-write - is dropped)."""
    out, off = [], 0
    while off + 16 <= len(stream):
        version, length = int.from_bytes(stream[off:off + 2], "big"), int.from_bytes(stream[off + 2:off + 4], "big")
        if version != 10 or length < 16:
            raise AssertionError(f"not an IPFIX message at offset {off}: version {version}, length {length}")
        if off + length > len(stream):
            break
        out.append(stream[off:off + length])
        off += length
    return out


def tshark_ipfix_records(messages: list[bytes], tmp: str) -> list[dict]:
    """Decodes IPFIX messages with tshark (each as one UDP datagram of a synthetic pcap:
    the dissector keeps the templates across packets). Returns one dict per data record,
    reverse (RFC 5103) fields under 'rev_'."""
    from scapy.all import IP, UDP, Raw, wrpcap  # python3-scapy
    pcap = os.path.join(tmp, f"ipfix-{len(messages)}-{time.monotonic_ns()}.pcap")
    wrpcap(pcap, [IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=4739) / Raw(m) for m in messages])
    xml = run(["tshark", "-r", pcap, "-d", "udp.port==4739,cflow", "-T", "pdml"], timeout=120).stdout
    records = []
    for flow in ET.fromstring(xml).iter("field"):
        if not (flow.get("name") == "" and (flow.get("show") or "").startswith("Flow ")):
            continue
        rec: dict = {}
        for f in flow:
            name, show = f.get("name") or "", f.get("show") or ""
            if not name.startswith("cflow."):
                continue
            key = name[len("cflow."):]
            if key in rec and key in ("octets", "packets", "layer2_octet_delta_count", "tcpflags"):
                key = "rev_" + key  # the second occurrence: the reverse element
            rec.setdefault(key, show)
        if "srcaddr" in rec:
            records.append(rec)
    return records


class FlowExportTest(E2ETestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("nfcapd", "nfdump", "nfacctd", "tshark", PYTHON)

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.tmp = self.tmpdir()
        self.server = self.spawn([PYTHON, "-c", SERVER, self.veth.host_ip, str(UDP_PORT), "200", "300"],
                                 netns=self.node, stdout=subprocess.PIPE, name="server")
        wait_line(self.server, b"READY", 10)

    # -- helpers --------------------------------------------------------------------

    def agent(self, *extra: str):
        return self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                "--flow-idle-timeout=1s", "--security=off", f"--flow-log={self.tmp}/flows.jsonl",
                                *extra, netns=self.node)

    def nfcapd(self, port: int, data: str):
        os.makedirs(data, exist_ok=True)
        p = self.spawn(["nfcapd", "-w", data, "-b", "127.0.0.1", "-p", str(port), "-t", "3600"], netns=self.node,
                       log_name=f"nfcapd-{port}-{time.monotonic_ns()}.log", name="nfcapd")
        wait_for(lambda: _udp_bound(self.node, port), 10, "nfcapd to listen")
        return p

    def nfacctd(self, port: int):
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
        wait_line(p, b"READY", 10)
        return p

    def traffic(self, flows: int, first: int, spacing: float, tcp_conns: int = 0, rounds: int = 0):
        out = run([PYTHON, "-c", CLIENT, self.veth.host_ip, str(UDP_PORT), str(flows), str(first), str(spacing),
                   str(tcp_conns), str(rounds), "200", "300", "20000"], netns=self.veth.ns, timeout=300).stdout
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        self.assertIn("DONE", out)
        return lines

    def oracle_udp(self, flows: list[dict]) -> dict:
        """(src, sport, dst, dport, proto) -> (packets, IP bytes), both directions."""
        c, h = self.veth.peer_ip, self.veth.host_ip
        want = {}
        for f in flows:
            if f["proto"] != "udp":
                continue
            self.assertEqual(f["echoed"], f["sent"], f"the veth lost datagrams: {f}")
            want[(c, f["sport"], h, UDP_PORT, 17)] = (f["sent"], f["sent"] * (28 + f["size"]))
            want[(h, UDP_PORT, c, f["sport"], 17)] = (f["echoed"], f["echoed"] * (28 + f["size"]))
        return want

    def capture(self):
        pcap = os.path.join(self.tmp, f"tcp-{time.monotonic_ns()}.pcap")
        p = self.spawn(["tshark", "-i", self.veth.peer, "-f", f"tcp port {TCP_PORT}", "-w", pcap, "-q"],
                       netns=self.veth.ns, name="tshark")
        wait_for(lambda: os.path.exists(pcap) and os.path.getsize(pcap) > 0, 15, "tshark to start capturing")
        return p, pcap

    def oracle_tcp(self, pcap: str) -> dict:
        out = run(["tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
                   "-e", "tcp.dstport", "-e", "ip.len"]).stdout
        want: dict = {}
        for line in out.splitlines():
            s, sp, d, dp, ln = line.split("\t")
            k = (s, int(sp), d, int(dp), 6)
            p, b = want.get(k, (0, 0))
            want[k] = (p + 1, b + int(ln))
        return want

    def flow_log(self) -> dict:
        """The agent's own records: directed 5-tuple -> list of (packets, IP bytes)."""
        got: dict = {}
        with open(os.path.join(self.tmp, "flows.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                proto = {"udp": 17, "tcp": 6}.get(r["protocol"])
                if proto is None:
                    continue
                fwd = (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], proto)
                rev = (r["dst_ip"], r["dst_port"], r["src_ip"], r["src_port"], proto)
                if r["packets"]:
                    got.setdefault(fwd, []).append((r["packets"], r["ip_bytes"]))
                if r["rev_packets"]:
                    got.setdefault(rev, []).append((r["rev_packets"], r["rev_ip_bytes"]))
        return got

    def assertExact(self, what: str, got: dict, want: dict, once: bool = True) -> None:
        """Every oracle flow in got with the same counts (summed; one record each with once)."""
        missing = [k for k in want if k not in got]
        self.assertEqual(missing, [], f"{what}: flows missing")
        for k, (packets, octets) in want.items():
            recs = got[k]
            if once:
                self.assertEqual(len(recs), 1, f"{what}: {k} in {len(recs)} records: {recs}")
            total = (sum(r[0] for r in recs), sum(r[1] for r in recs))
            self.assertEqual(total, (packets, octets), f"{what}: {k} packets/bytes")
        log(f"{what}: {len(want)} directed flows, exact")

    # -- tests ------------------------------------------------------------------------

    def test_udp_collectors_and_flow_log_count_every_flow_exactly(self):
        nfcapd_dir = os.path.join(self.tmp, "nfcapd")
        nfc = self.nfcapd(4739, nfcapd_dir)
        nfa, nfa_out = self.nfacctd(4740)
        agent = self.agent("--ipfix-collector=127.0.0.1:4739,biflow=off",
                           "--ipfix-collector=127.0.0.1:4740,biflow=off")
        cap, pcap = self.capture()
        flows = self.traffic(flows=12, first=3, spacing=0.05, tcp_conns=2, rounds=15)
        time.sleep(1)
        cap.stop(signal.SIGINT)
        want = self.oracle_udp(flows)
        want_tcp = self.oracle_tcp(pcap)
        self.assertEqual(len(want_tcp), 4, f"two TCP connections, both directions: {want_tcp}")
        want.update(want_tcp)
        # Idle flows end within 1 s + one collection; the stop sends whatever is left.
        time.sleep(2.5)
        self.assertEqual(agent.stop(), 0)
        nfc.stop(signal.SIGTERM)  # nfcapd writes its file on exit
        time.sleep(1.5)  # nfacctd prints its cache every second
        nfa.stop(signal.SIGINT, timeout=3)

        self.assertExact("flow log", self.flow_log(), want)

        out = run(["nfdump", "-q", "-R", nfcapd_dir, "-o", "fmt:%sa|%sp|%da|%dp|%pr|%pkt|%byt", "-N"]).stdout
        got: dict = {}
        for line in out.splitlines():
            sa, sp, da, dp, pr, pkt, byt = [x.strip() for x in line.split("|")]
            proto = int(pr) if pr.isdigit() else {"UDP": 17, "TCP": 6}.get(pr, 0)
            if proto in (6, 17):
                got.setdefault((sa, int(sp), da, int(dp), proto), []).append((int(pkt), int(byt)))
        self.assertExact("nfcapd/nfdump", got, want)

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
                proto = {"udp": 17, "tcp": 6}.get(r["PROTOCOL"])
                if proto:
                    k = (r["SRC_IP"], int(r["SRC_PORT"]), r["DST_IP"], int(r["DST_PORT"]), proto)
                    got.setdefault(k, []).append((int(r["PACKETS"]), int(r["BYTES"])))
        # nfacctd's print plugin sums per 5-tuple and interval: counts, not records.
        self.assertExact("nfacctd", got, want, once=False)

    def test_biflows_over_tcp_with_reverse_elements_and_a_collector_killed_mid_stream(self):
        sink_dir = os.path.join(self.tmp, "sink")
        sink = self.tcp_sink(4741, sink_dir)
        agent = self.agent("--ipfix-collector=127.0.0.1:4741,transport=tcp")
        # Flows end continuously (about 6 per second) while the collector is killed,
        # stays away for 2.5 s and comes back.
        client = self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip, str(UDP_PORT), "60", "2", "0.15", "0", "0",
                             "200", "300", "20000"], netns=self.veth.ns, stdout=subprocess.PIPE, name="client")
        time.sleep(3)

        # IPFIX has no application-level acknowledgement: bytes the collector's kernel
        # acknowledged but the collector had not read when it was killed are lost to it,
        # and no exporter can know (docs/flow-export.md). So the agent is held (SIGSTOP)
        # while the collector reads everything it was sent and is killed: no batch can go
        # out between the collector's last read and its death. (Waiting for the collector
        # to have written every byte the agent counted, then killing it, still left that
        # moment open: CI lost flows with nothing resent, once without that wait and once
        # with it - a batch sent in the milliseconds between the check and the kill.) The
        # agent's batches after it goes on meet a dead connection: those the exporter must
        # resend.
        def written():
            return sum(os.path.getsize(os.path.join(sink_dir, f)) for f in os.listdir(sink_dir))

        os.killpg(agent.pid, signal.SIGSTOP)
        try:
            last = [-1, time.monotonic()]

            def settled():  # nothing more arrives: the collector has read what was sent
                w = written()
                if w != last[0]:
                    last[0], last[1] = w, time.monotonic()
                    return False
                return w > 0 and time.monotonic() - last[1] >= 1.0
            wait_for(settled, 15, "the collector to have read what the agent sent")
            sink.stop(signal.SIGKILL)
        finally:
            os.killpg(agent.pid, signal.SIGCONT)
        log("collector killed")
        down = agent.metrics()
        time.sleep(2.5)
        sink = self.tcp_sink(4741, sink_dir)
        log("collector back")
        client.wait(120)
        flows = [json.loads(x) for x in client.p.stdout.read().decode().splitlines() if x.startswith("{")]
        self.assertEqual(len(flows), 60)
        want = self.oracle_udp(flows)

        def delivered():
            m = agent.metrics()
            return m.get("netprobe_flow_sink_queue_records", sink="ipfix") == 0 and \
                m.get("netprobe_flow_sink_connects_total", sink="ipfix") >= 2 and \
                m.get("netprobe_flow_export_open_flows") == 0
        wait_for(delivered, 20, "every record to be sent after the reconnect")
        m = agent.metrics()
        log(f"while down: up={down.get('netprobe_flow_sink_up', sink='ipfix')}; after: "
            f"connects={m.get('netprobe_flow_sink_connects_total', sink='ipfix')} "
            f"resent={m.get('netprobe_flow_sink_records_resent_total', sink='ipfix')} "
            f"errors={m.get('netprobe_flow_sink_errors_total', sink='ipfix')}")
        self.assertEqual(m.get("netprobe_flow_sink_records_dropped_total", sink="ipfix", reason="queue_full"), 0)
        self.assertEqual(agent.stop(), 0)
        sink.stop(signal.SIGTERM)

        conns = sorted(f for f in os.listdir(sink_dir) if f.startswith("conn-"))
        self.assertGreaterEqual(len(conns), 2, "the exporter reconnected")
        messages = []
        for c in conns:
            with open(os.path.join(sink_dir, c), "rb") as f:
                msgs = ipfix_messages(f.read())
            # Every connection starts with the templates (set id 2) before any data.
            self.assertEqual(int.from_bytes(msgs[0][16:18], "big"), 2, f"{c} does not start with templates")
            messages += msgs
        records = tshark_ipfix_records(messages, self.tmp)
        got: dict = {}
        for r in records:
            if r.get("protocol") != "17":
                continue
            fwd = (r["srcaddr"], int(r["srcport"]), r["dstaddr"], int(r["dstport"]), 17)
            rev = (r["dstaddr"], int(r["dstport"]), r["srcaddr"], int(r["srcport"]), 17)
            self.assertIn("rev_packets", r, f"no reverse elements decoded: {r}")
            got.setdefault(fwd, []).append((int(r["packets"]), int(r["octets"])))
            got.setdefault(rev, []).append((int(r["rev_packets"]), int(r["rev_octets"])))
        self.assertExact("IPFIX over TCP (tshark), collector killed for 2.5 s", got, want)
        self.assertExact("flow log", self.flow_log(), want)

    def test_udp_collector_restart_loses_at_most_one_interval(self):
        nfcapd_dir = os.path.join(self.tmp, "nfcapd")
        nfc = self.nfcapd(4742, nfcapd_dir)
        agent = self.agent("--ipfix-collector=127.0.0.1:4742,biflow=off")
        client = self.spawn([PYTHON, "-c", CLIENT, self.veth.host_ip, str(UDP_PORT), "60", "2", "0.15", "0", "0",
                             "200", "300", "20000"], netns=self.veth.ns, stdout=subprocess.PIPE, name="client")
        time.sleep(3)
        nfc.stop(signal.SIGTERM)
        log("collector stopped")
        time.sleep(2.5)
        nfc = self.nfcapd(4742, nfcapd_dir)
        log("collector back")
        client.wait(120)
        flows = [json.loads(x) for x in client.p.stdout.read().decode().splitlines() if x.startswith("{")]
        want = self.oracle_udp(flows)
        wait_for(lambda: agent.metrics().get("netprobe_flow_export_open_flows") == 0, 20, "every flow to end")
        time.sleep(1.5)
        m = agent.metrics()
        self.assertEqual(agent.stop(), 0)
        nfc.stop(signal.SIGTERM)
        out = run(["nfdump", "-q", "-R", nfcapd_dir, "-o", "fmt:%sa|%sp|%da|%dp|%pr|%pkt|%byt", "-N"]).stdout
        got: dict = {}
        for line in out.splitlines():
            sa, sp, da, dp, pr, pkt, byt = [x.strip() for x in line.split("|")]
            if pr in ("17", "UDP"):
                got.setdefault((sa, int(sp), da, int(dp), 17), []).append((int(pkt), int(byt)))
        lost = sorted(k for k in want if k not in got)
        log(f"{len(lost) // 2} of {len(want) // 2} flows lost across the restart; exporter errors "
            f"{m.get('netprobe_flow_sink_errors_total', sink='ipfix')}, sessions "
            f"{m.get('netprobe_flow_sink_connects_total', sink='ipfix')}")
        # What is lost must be what at most two messages carried, the records of two
        # collections: flows whose last packets fall within two collect intervals (500 ms
        # each). One message queued in the collector's socket as it shut down (a datagram
        # still queued when nfcapd closes its socket is never read), and one sent before the ICMP
        # port unreachable came back (UDP reports it at the next send, which is refused
        # and held). 2.5 s down would lose ~17 flows over 2.5 s without the exporter
        # holding records while refused. (One CI run lost 7 flows over 0.90 s.)
        ends = {}
        with open(os.path.join(self.tmp, "flows.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                if r["protocol"] == "udp":
                    ends[(r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], 17)] = r["end"]
        lost_ends = sorted(ends[k] for k in lost if k in ends)
        self.assertEqual(len(lost_ends), len(lost) // 2, "every lost flow is in the agent's own log")
        if lost_ends:
            spread = _iso_seconds(lost_ends[-1]) - _iso_seconds(lost_ends[0])
            log(f"lost flows' last packets span {spread:.3f} s")
            self.assertLessEqual(spread, 1.25, f"lost: {lost_ends}")
        self.assertLessEqual(len(lost) // 2, 10, f"lost: {lost}")
        self.assertGreaterEqual(m.get("netprobe_flow_sink_connects_total", sink="ipfix"), 2)
        present = {k: v for k, v in want.items() if k not in lost}
        self.assertExact("nfcapd across a restart", {k: got[k] for k in present}, present)

    def test_unreachable_collectors_are_one_log_line_and_metrics(self):
        # Nothing listens on these ports: TCP is refused, UDP answered with ICMP port unreachable.
        agent = self.agent("--ipfix-collector=127.0.0.1:4743,transport=tcp", "--ipfix-collector=127.0.0.1:4744")
        flows = self.traffic(flows=5, first=2, spacing=0.05)
        want = self.oracle_udp(flows)

        def stuck():
            m = agent.metrics()
            return all(m.get("netprobe_flow_sink_queue_records", target=t) >= len(want) // 2
                       for t in ("127.0.0.1:4743/tcp", "127.0.0.1:4744/udp")) and m
        m = wait_for(stuck, 20, "the records to wait in both queues")
        for t in ("127.0.0.1:4743/tcp", "127.0.0.1:4744/udp"):
            self.assertEqual(m.get("netprobe_flow_sink_up", target=t), 0, t)
            self.assertGreaterEqual(m.get("netprobe_flow_sink_errors_total", target=t), 1, t)
            self.assertEqual(m.get("netprobe_flow_sink_records_total", target=t), 0, t)
            lines = [x for x in agent.output().splitlines() if f"ipfix {t}" in x]
            self.assertEqual(len(lines), 1, f"one warning per collector while the error stays the same: {lines}")
        self.assertEqual(agent.get_json("/api/v1/flows")["total"] >= 0, True)
        # The flow log got every record meanwhile.
        self.assertExact("flow log", self.flow_log(), want)
        self.assertEqual(agent.stop(), 0)


def _iso_seconds(t: str) -> float:
    import datetime
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def _udp_bound(netns: str, port: int) -> bool:
    out = run(["ss", "-Hlun", f"sport = :{port}"], netns=netns, check=False).stdout
    return str(port) in out


if __name__ == "__main__":
    unittest.main()
