"""The agent's interface counters agree with the kernel's, its flows with the
traffic tools and with tshark, its TCP packet counts with TCP's own segment counters.

The agent watches the host end of a veth pair; the traffic runs between this
namespace and a test namespace: pings of a fixed size, an iperf3 UDP stream of
a fixed number of datagrams (captured by tshark in the namespace), and an iperf3
TCP transfer of a fixed size. Packets are wire packets: a GSO/GRO skb counts its
segments. The veth's own counters count skbs, so they are the oracle for the ping
and UDP window (no GSO) and nstat's TcpOutSegs/TcpInSegs in the namespace (which
only this test's TCP traffic crosses) for the TCP window.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import statistics
import time
import unittest

from netprobe_e2e import (L2_HEADER, PYTHON, E2ETestCase, Metrics, free_port, kernel_stats, log, require_tools, run,
                          wait_for, within)

TOLERANCE = 0.005  # 0.5 %
PING_COUNT, PING_SIZE = 200, 1000
UDP_BLOCKS, UDP_LEN, UDP_PPS = 3000, 1200, 1000
TCP_BYTES = 20 * 1024 * 1024

COUNTERS = {
    "rx_packets": "netprobe_interface_rx_packets_total",
    "rx_bytes": "netprobe_interface_rx_bytes_total",
    "tx_packets": "netprobe_interface_tx_packets_total",
    "tx_bytes": "netprobe_interface_tx_bytes_total",
}


class CountersTest(E2ETestCase):
    def setUp(self):
        require_tools("ping", "iperf3", "tshark", "ss")
        self.veth = self.make_veth()

    # -- helpers -------------------------------------------------------------------

    def agent_counters(self, m: Metrics) -> dict:
        return {k: int(m.get(name, interface=self.veth.host)) for k, name in COUNTERS.items()}

    def quiet_snapshot(self, agent):
        """Agent and kernel counters of the same quiet moment: the agent's counters have not
        moved for 2 collections, then the kernel is read, then one more collection must
        still show the same agent values (nothing happened in between)."""
        for _ in range(5):
            m = agent.wait_stable(COUNTERS.values(), settle=2)
            a = self.agent_counters(m)
            k = kernel_stats(self.veth.host)
            m2 = agent.wait_collections(1)
            if self.agent_counters(m2) == a and kernel_stats(self.veth.host) == k:
                return a, k, m
        self.fail("the veth never went quiet (background traffic?)")

    def wait_listening(self, port: int, proto: str = "t", netns=None):
        wait_for(lambda: run(["ss", f"-Hl{proto}n", f"sport = :{port}"], netns=netns).stdout.strip(), 10,
                 f"a listener on port {port}")

    def iperf_server(self, bind: str, netns=None):
        port = free_port(netns)
        srv = self.spawn(["iperf3", "-s", "-1", "-B", bind, "-p", str(port)], netns=netns, log_name="iperf3-server.log")
        self.wait_listening(port, netns=netns)
        return srv, port

    def markers_seen(self, tshark) -> int:
        marker = f"{self.udp_port}\t{self.marker_port}"
        return sum(1 for line in tshark.output().splitlines() if line.strip() == marker)

    def send_markers_until_seen(self, tshark, n: int) -> int:
        """Sends marker datagrams until tshark has printed n of them. A marker goes from the
        namespace's end, source port = the captured port, to a host socket that never reads
        (so nothing answers it); no other packet has that port pair."""
        code = ("import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
                f"s.bind(('{self.veth.peer_ip}',{self.udp_port}));"
                f"s.sendto(b'marker',('{self.veth.host_ip}',{self.marker_port}))")

        def seen():
            self.assertTrue(tshark.running(), tshark.output())
            if self.markers_seen(tshark) >= n:
                return True
            run([PYTHON, "-c", code], netns=self.veth.ns)
            time.sleep(0.2)
            return self.markers_seen(tshark) >= n

        wait_for(seen, 30, f"tshark to capture marker datagram #{n}")
        return self.markers_seen(tshark)

    def tcp_segments(self) -> dict[str, int]:
        """nstat's absolute TCP segment counters of the test namespace (-a absolute, -s no
        history file, -z zeros too). OutSegs leaves out retransmitted segments (they count
        in RetransSegs), which cross the wire all the same."""
        names = ("TcpInSegs", "TcpOutSegs", "TcpRetransSegs")
        out = run(["nstat", "-asz", *names], netns=self.veth.ns).stdout
        res = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 2 and f[0] in names:
                res[f[0]] = int(f[1])
        self.assertEqual(set(res), set(names), out)
        return res

    def veth_drops(self) -> int:
        """What the veth pair dropped between its ends: the namespace end's tx_dropped (a
        full receive ring of the host end) plus the host end's rx_dropped."""
        return (kernel_stats(self.veth.peer, self.veth.ns, keys=("tx_dropped",))["tx_dropped"]
                + kernel_stats(self.veth.host, keys=("rx_dropped",))["rx_dropped"])

    def quiet_tcp_snapshot(self, agent):
        """quiet_snapshot plus the namespace's TCP segment counters, unchanged across it (a late
        FIN or ACK of an earlier connection would otherwise land in only one of the windows)."""
        for _ in range(5):
            n = self.tcp_segments()
            a, k, m = self.quiet_snapshot(agent)
            if self.tcp_segments() == n:
                return a, k, m, n
        self.fail("the namespace's TCP counters never went quiet")

    @staticmethod
    def tcp_packets(m: Metrics, direction: str) -> int:
        return int(m.get("netprobe_protocol_packets_total", direction=direction, protocol="tcp"))

    def find_flow(self, agent, **params) -> dict:
        res = agent.flows(**params)
        self.assertEqual(res["total"], 1, f"expected exactly one flow for {params}, got {res}")
        return res["flows"][0]

    # -- the test ------------------------------------------------------------------

    def run_traffic_and_compare(self, *agent_args: str, expect_xdp: str):
        v = self.veth
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=500ms", *agent_args)
        info = agent.interfaces()[v.host]
        self.assertEqual(info["xdp_mode"], expect_xdp, info)
        # warm up ARP/ND so the window holds only the measured traffic and its replies
        run(["ping", "-q", "-c", "1", v.host_ip], netns=v.ns)
        a0, k0, _ = self.quiet_snapshot(agent)

        # 1. pings of a fixed size, ns -> host
        p = run(["ping", "-q", "-c", str(PING_COUNT), "-i", "0.002", "-s", str(PING_SIZE), v.host_ip], netns=v.ns)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (PING_COUNT, PING_COUNT), p.stdout)

        # 2. UDP: iperf3 client in the namespace -> server here, captured by tshark in the namespace
        udp_srv, udp_port = self.iperf_server(v.host_ip)
        pcap = self.tmpdir() + "/udp.pcapng"
        marker_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(marker_sink.close)
        marker_sink.bind((v.host_ip, 0))
        self.udp_port, self.marker_port = udp_port, marker_sink.getsockname()[1]
        tshark = self.spawn(["tshark", "-n", "-l", "-P", "-i", v.peer, "-f", f"udp port {udp_port}", "-w", pcap,
                             "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport"], netns=v.ns,
                            log_name="tshark.log")
        # "Capturing on" can come before the capture really runs: wait until a marker shows up
        # in tshark's live output
        self.send_markers_until_seen(tshark, 1)
        client = self.spawn(["iperf3", "-c", v.host_ip, "-p", str(udp_port), "-u", "-b", f"{UDP_PPS * UDP_LEN * 8}",
                             "-l", str(UDP_LEN), "-k", str(UDP_BLOCKS), "-J"], netns=v.ns, log_name="iperf3-udp.json")
        # sample the rate gauges while the stream runs
        samples = []
        while client.running():
            mm = agent.wait_collections(1)
            samples.append(mm)
        self.assertEqual(client.wait(30), 0, client.output())
        udp = json.loads(client.output())
        self.assertEqual(udp_srv.wait(20), 0, udp_srv.output())
        self.send_markers_until_seen(tshark, self.markers_seen(tshark) + 1)  # all before it are written
        tshark.stop(signal.SIGINT)  # like Ctrl-C: tshark and dumpcap flush and report
        notes = [x for x in tshark.output().strip().splitlines() if not re.fullmatch(r"[\d\s]+", x)]
        log("tshark: " + " | ".join(notes))

        am, km, mm, nm = self.quiet_tcp_snapshot(agent)

        # 3. TCP: iperf3 client here, server in the namespace, sending (-R): the data goes as
        # GSO skbs from the namespace's TCP, whose TcpOutSegs counts their segments
        # (TcpInSegs counts received skbs, GRO-merged ones as one: only the ACK direction
        # can be checked against it)
        tcp_srv, tcp_port = self.iperf_server(v.peer_ip, netns=v.ns)
        drops0 = self.veth_drops()
        p = run(["iperf3", "-c", v.peer_ip, "-p", str(tcp_port), "-n", str(TCP_BYTES), "-R", "-J"], timeout=60)
        tcp = json.loads(p.stdout)
        self.assertEqual(tcp_srv.wait(20), 0, tcp_srv.output())

        a1, k1, m1, n1 = self.quiet_tcp_snapshot(agent)
        # Segments the veth pair itself dropped between the two ends (the sender's
        # tx_dropped: with native XDP the receiving veth's ring can be full under load,
        # CI: 146 of 14700) left the sending TCP but never reached the receiving device
        # nor the agent; TCP retransmitted them.
        dropped = self.veth_drops() - drops0

        # -- TCP window: wire segments vs TCP's own counters of the namespace --------
        seg_out = (n1["TcpOutSegs"] + n1["TcpRetransSegs"]) - (nm["TcpOutSegs"] + nm["TcpRetransSegs"])  # -> host
        seg_in = n1["TcpInSegs"] - nm["TcpInSegs"]     # host -> namespace (ACKs): the agent's egress
        got_in = self.tcp_packets(m1, "ingress") - self.tcp_packets(mm, "ingress")
        got_eg = self.tcp_packets(m1, "egress") - self.tcp_packets(mm, "egress")
        skbs_rx = k1["rx_packets"] - km["rx_packets"]
        log(f"TCP window: agent ingress {got_in} / egress {got_eg} tcp packets; namespace nstat TcpOutSegs + "
            f"TcpRetransSegs {seg_out} (retransmitted {n1['TcpRetransSegs'] - nm['TcpRetransSegs']}) / TcpInSegs {seg_in}; the veth's own rx_packets (skbs) {skbs_rx}, agent rx_packets "
            f"{a1['rx_packets'] - am['rx_packets']}; dropped by the veth pair {dropped}")
        self.assertEqual(got_in, seg_out - dropped,
                         "ingress TCP packets vs the sender's TcpOutSegs + TcpRetransSegs - the veth's drops")
        self.assertEqual(got_eg, seg_in, "egress TCP packets (ACKs) vs the namespace's TcpInSegs")
        # the transfer went as GSO super-packets (else this window tests nothing new), except
        # with native XDP on the receiving veth, which turns the sender's TSO off
        if expect_xdp == "native":
            self.assertEqual(skbs_rx, seg_out - dropped)
        else:
            self.assertLess(skbs_rx, seg_out - dropped, "no GSO skbs on the veth: segments == skbs")
        self.assertEqual(a1["rx_packets"] - am["rx_packets"], got_in)

        # -- ping + UDP window (no GSO): interface counters, agent vs kernel ---------
        da = {k: am[k] - a0[k] for k in am}
        dk = {k: km[k] - k0[k] for k in km}
        log(f"xdp={expect_xdp} agent deltas {da}")
        log(f"xdp={expect_xdp} kernel deltas {dk}")
        kernel_rx_bytes = dk["rx_bytes"]
        if expect_xdp == "native":
            # With a native XDP program the veth receives through its NAPI/XDP path, which
            # accounts skb->len after eth_type_trans: the kernel's rx_bytes lack the 14-byte
            # Ethernet header of every frame, which the agent (L2 frame length) includes.
            kernel_rx_bytes += L2_HEADER * dk["rx_packets"]
            log(f"kernel rx_bytes + {L2_HEADER} x rx_packets (veth native-XDP accounting) = {kernel_rx_bytes}")
        self.assertWithin(da["rx_packets"], dk["rx_packets"], TOLERANCE, "rx packets")
        self.assertWithin(da["tx_packets"], dk["tx_packets"], TOLERANCE, "tx packets")
        self.assertWithin(da["rx_bytes"], kernel_rx_bytes, TOLERANCE, "rx bytes")
        self.assertWithin(da["tx_bytes"], dk["tx_bytes"], TOLERANCE, "tx bytes")
        # the traffic really went through the window
        self.assertGreater(da["rx_packets"], PING_COUNT + UDP_BLOCKS)
        tcp_received = tcp["end"]["sum_received"]["bytes"]  # what crossed the veth (-n counts writes)
        self.assertGreater(a1["rx_bytes"] - am["rx_bytes"], tcp_received)

        # -- ping: exact flow counts ----------------------------------------------
        icmp_len = PING_SIZE + 8 + 20 + L2_HEADER
        req = self.find_flow(agent, protocol="icmp", direction="ingress", src_ip=v.peer_ip, dst_ip=v.host_ip)
        rep = self.find_flow(agent, protocol="icmp", direction="egress", src_ip=v.host_ip, dst_ip=v.peer_ip)
        log(f"ping flows: requests {req['packets']} pkts {req['bytes']} B, replies {rep['packets']} pkts "
            f"{rep['bytes']} B (ping: {PING_COUNT} x {icmp_len} B + 1 warm-up)")
        # +1: the warm-up ping before the window
        self.assertEqual((req["packets"], req["bytes"]), (PING_COUNT + 1, PING_COUNT * icmp_len + 98))
        self.assertEqual((rep["packets"], rep["bytes"]), (PING_COUNT + 1, PING_COUNT * icmp_len + 98))
        self.assertEqual(req["interface"], v.host)

        # -- UDP: the 5-tuple, iperf3's own count, and tshark's bytes --------------
        conn = udp["start"]["connected"][0]
        self.assertEqual(conn["remote_port"], udp_port)
        sent_pkts = udp["end"]["sum"]["packets"]
        self.assertEqual(sent_pkts, UDP_BLOCKS, "iperf3 did not send the requested number of datagrams")
        uf = self.find_flow(agent, protocol="udp", direction="ingress", src_ip=v.peer_ip,
                            src_port=conn["local_port"], dst_ip=v.host_ip, dst_port=udp_port)
        self.assertEqual((uf["protocol"], uf["interface"], uf["ip_version"]), ("udp", v.host, 4))
        self.assertEqual(uf["tcp_flags"], [])
        frames = run(["tshark", "-n", "-r", pcap, "-Y",
                      f"ip.src=={v.peer_ip} && udp.srcport=={conn['local_port']} && ip.dst=={v.host_ip} && "
                      f"udp.dstport=={udp_port}", "-T", "fields", "-e", "frame.len"]).stdout.split()
        ts_pkts, ts_bytes = len(frames), sum(map(int, frames))
        log(f"UDP flow {v.peer_ip}:{conn['local_port']} -> {v.host_ip}:{udp_port}: agent {uf['packets']} pkts "
            f"{uf['bytes']} B; tshark {ts_pkts} pkts {ts_bytes} B; iperf3 sent {sent_pkts} datagrams of {UDP_LEN} B")
        self.assertWithin(uf["bytes"], ts_bytes, TOLERANCE, "UDP flow bytes vs tshark")
        self.assertWithin(uf["packets"], ts_pkts, TOLERANCE, "UDP flow packets vs tshark")
        # iperf3's datagrams, plus its few connect/handshake datagrams on the same 5-tuple
        self.assertGreaterEqual(uf["packets"], UDP_BLOCKS)
        self.assertLessEqual(uf["packets"], UDP_BLOCKS + 5)
        self.assertGreaterEqual(uf["bytes"], UDP_BLOCKS * (UDP_LEN + 8 + 20 + L2_HEADER))

        # -- TCP: the 5-tuple and flags of the data direction ----------------------
        tconn = tcp["start"]["connected"][0]
        self.assertGreaterEqual(tcp["end"]["sum_sent"]["bytes"], TCP_BYTES)  # -n: whole blocks, at least n
        tf = self.find_flow(agent, protocol="tcp", direction="ingress", src_ip=v.peer_ip,
                            src_port=tcp_port, dst_ip=v.host_ip, dst_port=tconn["local_port"])
        back = self.find_flow(agent, protocol="tcp", direction="egress", src_ip=v.host_ip,
                              src_port=tconn["local_port"], dst_ip=v.peer_ip, dst_port=tcp_port)
        log(f"TCP flow {v.peer_ip}:{tcp_port} -> {v.host_ip}:{tconn['local_port']}: {tf['packets']} pkts "
            f"{tf['bytes']} B flags {tf['tcp_flags']}; reverse {back['packets']} pkts flags {back['tcp_flags']}")
        # wire bytes: the payload (retransmitted segments again: full-sized, MSS 1448) plus
        # Ethernet, IPv4 and TCP (with timestamps) headers of every segment (the SYN's longer
        # options and a few small segments aside)
        # The payload that crossed lies between what the client read (sum_received) and what
        # the server wrote (sum_sent): with -R the server may write one more 128 KiB block
        # after the client stopped counting, and that block still crosses the veth.
        # Segments the veth pair dropped (counted above) never reached the agent: their
        # retransmissions are the only copy it saw, so only the rest are extra payload.
        retrans = max(0, n1["TcpRetransSegs"] - nm["TcpRetransSegs"] - dropped)
        tcp_sent = tcp["end"]["sum_sent"]["bytes"]
        headers = retrans * 1448 + tf["packets"] * (L2_HEADER + 20 + 32)
        low, high = tcp_received + headers, max(tcp_sent, tcp_received) + headers
        log(f"TCP data direction: {tf['bytes']} B counted, payload {tcp_received} B read / {tcp_sent} B written "
            f"+ {retrans} retransmitted (not dropped by the veth pair) x 1448 B + {tf['packets']} x {L2_HEADER + 20 + 32} B headers "
            f"= {low}..{high} B")
        if tf["bytes"] < low:
            self.assertWithin(tf["bytes"], low, 0.002, "TCP flow wire bytes (read payload)")
        elif tf["bytes"] > high:
            self.assertWithin(tf["bytes"], high, 0.002, "TCP flow wire bytes (written payload)")
        # iperf3 ends its data connection with FIN or RST depending on timing: only SYN/ACK are certain
        for flag in ("SYN", "ACK"):
            self.assertIn(flag, tf["tcp_flags"])
            self.assertIn(flag, back["tcp_flags"])
        self.assertLessEqual(tf["first_seen"], tf["last_seen"])

        # -- rates: the gauge is the counter's delta over the collect interval -------
        steady = []
        for prev, cur in zip(samples, samples[1:]):
            if cur.get("netprobe_collections_total") != prev.get("netprobe_collections_total") + 1:
                continue
            dt = cur.get("netprobe_last_collect_timestamp_seconds") - prev.get(
                "netprobe_last_collect_timestamp_seconds")
            dp = cur.get(COUNTERS["rx_packets"], interface=v.host) - prev.get(COUNTERS["rx_packets"], interface=v.host)
            rate = cur.get("netprobe_interface_rx_packets_rate", interface=v.host)
            if dp / dt > UDP_PPS / 2:  # inside the stream, not at its edges
                steady.append((rate, dp / dt))
        log(f"rx_packets_rate (gauge, delta/interval) while streaming {UDP_PPS} pps: "
            + ", ".join(f"({r:.0f}, {d:.0f})" for r, d in steady))
        self.assertGreaterEqual(len(steady), 2, "too few collections during the UDP stream")
        for rate, derived in steady:
            self.assertTrue(within(rate, derived, 0.05), f"rate gauge {rate} vs delta/interval {derived}")
        med = statistics.median(r for r, _ in steady)
        self.assertTrue(UDP_PPS * 0.6 <= med <= UDP_PPS * 1.4, f"median rx_packets_rate {med}, sent {UDP_PPS} pps")

        agent_rc = agent.stop()
        self.assertEqual(agent_rc, 0, agent.output())

    def test_counters_default_modes(self):
        """Default modes (tcx; XDP auto: none on a veth, TC alone)."""
        self.run_traffic_and_compare(expect_xdp="off")

    def test_counters_native_xdp(self):
        """Native XDP: the veth receives through its NAPI/XDP path."""
        self.run_traffic_and_compare("--xdp-mode=native", expect_xdp="native")

    def test_counters_generic_xdp(self):
        """Generic XDP: the veth keeps its normal receive path and its byte accounting."""
        self.run_traffic_and_compare("--xdp-mode=generic", expect_xdp="generic")

if __name__ == "__main__":
    unittest.main(verbosity=2)
