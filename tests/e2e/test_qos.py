"""Quality of service (GET /api/v1/qos, netprobe_edge_*) against known delay and loss.

RTT and jitter: two namespaces joined by a TUN link whose relay (tun_relay.py) holds
every client -> server packet 20 ms +- 5 ms (uniform; no netem on this kernel). The
agent watches the client's TUN device; a client opens 300 TCP connections one after the
other. The oracle is the relay's own record of the delays it gave the SYNs: the agent's
median handshake RTT is that median plus the link's small overhead, and its jitter (the
mean deviation between successive handshakes' RTTs) is the relay's mean deviation
between successive SYN delays, within 20%.

Loss: a veth between a client and a server namespace; nft in the server's namespace
drops 2% of the server's segments at random (numgen), iperf3 sends server -> client
with segmentation offloads off (one skb, one segment). The oracle is nft's own counters:
the agent's server_to_client loss ratio (segments the server's socket retransmitted /
segments that reached the client's side) is within [1.5, 2.5]% and within half a point
of nft's drop ratio.
"""

import os
import signal
import unittest

from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
IP_A, IP_B = "198.18.9.1", "198.18.9.2"
CONNECTIONS = 300

# Opens N connections one after the other (each completes its handshake, then closes).
CLIENT = """
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    s = socket.create_connection((host, port), timeout=5)
    s.close()
print("done", n)
"""
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


class QosTest(E2ETestCase):
    def relay_syn(self, relay) -> tuple[int, float, float]:
        before = relay.output().count("syn ")
        relay.send(signal.SIGUSR1)
        wait_for(lambda: relay.output().count("syn ") > before, 5, "the relay's figures")
        line = [x for x in relay.output().splitlines() if x.startswith("syn ")][-1]
        n, median, jitter = line.split()[1:4]
        return int(n), float(median), float(jitter)

    def test_handshake_rtt_and_jitter_through_a_delaying_link(self):
        ns_a, ns_b = self.make_netns(), self.make_netns()
        tun_a, tun_b = "npqosA", "npqosB"
        for ns in (ns_a, ns_b):
            run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], netns=ns)
        relay = self.spawn([PYTHON, os.path.join(HERE, "tun_relay.py"), ns_a, tun_a, ns_b, tun_b, "20", "5", "7"],
                           log_name="tun_relay.log")
        wait_for(lambda: "ready" in relay.output(), 10, "the TUN relay")
        for ns, dev, me, peer in ((ns_a, tun_a, IP_A, IP_B), (ns_b, tun_b, IP_B, IP_A)):
            run(["ip", "addr", "add", me, "peer", f"{peer}/32", "dev", dev], netns=ns)
            run(["ip", "link", "set", dev, "up"], netns=ns)
        srv = self.spawn([PYTHON, "-c", SERVER, IP_B, "8080"], netns=ns_b, log_name="server.log")
        wait_for(lambda: "listening" in srv.output(), 10, "the server")

        agent = self.start_agent("--collect-interval=500ms", netns=ns_a)
        wait_for(lambda: tun_a in agent.interfaces(), 10, f"the agent to monitor {tun_a}")
        c = run([PYTHON, "-c", CLIENT, IP_B, "8080", str(CONNECTIONS)], netns=ns_a, timeout=120)
        self.assertIn(f"done {CONNECTIONS}", c.stdout)
        n, relay_median, relay_jitter = self.relay_syn(relay)
        self.assertEqual(n, CONNECTIONS, "the relay saw one SYN per connection (none retransmitted)")

        def edge():
            q = agent.get_json("/api/v1/qos?group_by=host")
            for e in q["edges"]:
                if e["client"] == IP_A and e["server"] == IP_B and e["port"] == 8080:
                    return e if e["handshakes"] >= CONNECTIONS else None
            return None
        e = wait_for(edge, 10, "every handshake in /api/v1/qos")
        log(f"agent: {e}")
        log(f"relay: {n} SYNs, median delay {relay_median} ms, mean successive deviation {relay_jitter} ms")
        self.assertEqual(e["handshakes"], CONNECTIONS)
        p50 = e["rtt_ms"]["p50"]
        # the median RTT is the relay's median delay plus the link's overhead (the relay
        # forwards the SYN/ACK and the ACK too, in Python): a millisecond at most here
        self.assertGreaterEqual(p50, relay_median, "RTT below the delay the relay gave")
        self.assertLessEqual(p50, relay_median + 1.5)
        self.assertTrue(19 <= p50 <= 25, p50)
        # the server's side (SYN -> SYN/ACK) carries the delay; the client's side is local
        self.assertGreater(e["server_side_rtt_ms_p50"], 14)
        self.assertLess(e["client_side_rtt_ms_p50"], 2)
        self.assertWithin(e["jitter_ms"], relay_jitter, 0.20, "jitter vs the relay's own figure")

        # the same in the metrics: a histogram of the edge and its jitter
        m = agent.metrics()
        labels = {"client": IP_A, "server": IP_B, "port": "8080"}
        self.assertEqual(m.get("netprobe_edge_rtt_seconds_count", **labels), CONNECTIONS)
        self.assertEqual(m.get("netprobe_edge_rtt_seconds_bucket", le="0.01", **labels), 0)
        self.assertEqual(m.get("netprobe_edge_rtt_seconds_bucket", le="0.05", **labels), CONNECTIONS)
        self.assertWithin(m.get("netprobe_edge_jitter_seconds", **labels) * 1000, relay_jitter, 0.20,
                          "netprobe_edge_jitter_seconds")
        self.assertGreaterEqual(m.get("netprobe_qos_handshakes_total"), CONNECTIONS)
        self.assertEqual(agent.stop(), 0)

    def test_loss_ratio_against_nft_random_drop(self):
        require_tools("iperf3", "ethtool", "nft")
        client = self.make_netns()
        v = self.make_veth(host_ns=client)
        for ifname, ns in ((v.host, client), (v.peer, v.ns)):
            run(["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"], netns=ns, check=False)
        # 2% of the server's segments dropped at random where they arrive (after the agent's
        # TC hook, which counts them as sent; before GRO could merge them: GRO is off), the
        # rest counted: nft's counters are the oracle of what was lost
        run(["nft", "-f", "-"], netns=client, input=f"""
table inet npqos {{
  chain in {{
    type filter hook prerouting priority -300; policy accept;
    ip saddr {v.peer_ip} tcp sport 5201 numgen random mod 1000 < 20 counter drop
    ip saddr {v.peer_ip} tcp sport 5201 counter accept
  }}
}}
""")
        self.spawn(["iperf3", "-s", "-B", v.peer_ip, "-p", "5201"], netns=v.ns, log_name="iperf3-server.log")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :5201"], netns=v.ns).stdout.strip(), 10, "iperf3 to listen")
        agent = self.start_agent("--collect-interval=500ms", f"--interface-filter={v.host}", netns=client)
        wait_for(lambda: v.host in agent.interfaces(), 10, f"the agent to monitor {v.host}")
        run(["iperf3", "-c", v.peer_ip, "-p", "5201", "-R", "-n", "24M", "-J"], netns=client, timeout=120)

        out = run(["nft", "-j", "list", "table", "inet", "npqos"], netns=client).stdout
        import json
        counts = [r["rule"] for r in json.loads(out)["nftables"] if "rule" in r]
        packets = [next(x["counter"]["packets"] for x in r["expr"] if "counter" in x) for r in counts]
        dropped, passed = packets
        nft_ratio = dropped / (dropped + passed)

        def edge():
            q = agent.get_json("/api/v1/qos?group_by=host")
            for e in q["edges"]:
                if e["client"] == v.host_ip and e["server"] == v.peer_ip and e["port"] == 5201:
                    return e if e["packets_in"] >= passed * 0.99 else None
            return None
        e = wait_for(edge, 10, "the transfer in /api/v1/qos")
        got = e["loss_ratio"]["server_to_client"]
        log(f"nft: {dropped} dropped, {passed} passed ({nft_ratio:.4%}); agent: {e['retransmits_server']} "
            f"retransmitted of {e['packets_in']} ({got:.4%}); {e}")
        self.assertGreater(passed, 10000, "too little traffic to measure 2%")
        self.assertTrue(0.015 <= got <= 0.025, got)
        self.assertLess(abs(got - nft_ratio), 0.005)
        m = agent.metrics()
        self.assertAlmostEqual(m.get("netprobe_edge_loss_ratio", client=v.host_ip, server=v.peer_ip, port="5201",
                                     direction="server_to_client"), got, delta=0.003)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
