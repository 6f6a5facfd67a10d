"""Layer-3 devices (tun, WireGuard, ipip: no link-layer header) are monitored with the
layer-3 TC programs. Two namespaces joined by a TUN point-to-point link (tun_relay.py
copies packets between a TUN device in each, as a tunnel would); the agent runs in
the first namespace, follows all its interfaces, and its counters for the TUN device
must equal what the relay copied (the oracle: every packet the device sent and
received) and the kernel's own counters for the device; pings and an iperf3 TCP
transfer show up as flows with their 5-tuples; nothing is left attached afterwards."""

import json
import os
import signal
import unittest

from netprobe_e2e import (PYTHON, E2ETestCase, kernel_stats, log, netprobe_attachments, require_tools, run,
                          wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
IP_A, IP_B = "198.18.9.1", "198.18.9.2"
PING_COUNT, PING_SIZE = 50, 400


class Layer3DeviceTest(E2ETestCase):
    def setUp(self):
        require_tools("ping", "iperf3")

    def relay_counts(self, relay) -> tuple[int, int, int, int]:
        before = relay.output().count("counts ")
        relay.send(signal.SIGUSR1)
        wait_for(lambda: relay.output().count("counts ") > before, 5, "the relay's counts")
        line = [x for x in relay.output().splitlines() if x.startswith("counts ")][-1]
        out_p, out_b, in_p, in_b = map(int, line.split()[1:5])
        return out_p, out_b, in_p, in_b

    def test_tun_link_counted_by_the_layer3_programs(self):
        ns_a, ns_b = self.make_netns(), self.make_netns()
        tun_a, tun_b = "nptunA", "nptunB"
        for ns in (ns_a, ns_b):  # no IPv6 autoconfiguration chatter on the link
            run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], netns=ns)
        relay = self.spawn([PYTHON, os.path.join(HERE, "tun_relay.py"), ns_a, tun_a, ns_b, tun_b],
                           log_name="tun_relay.log")
        wait_for(lambda: "ready" in relay.output(), 10, "the TUN relay")
        self.assertEqual(run(["cat", f"/sys/class/net/{tun_a}/type"], netns=ns_a).stdout.strip(), "65534")
        for ns, dev, me, peer in ((ns_a, tun_a, IP_A, IP_B), (ns_b, tun_b, IP_B, IP_A)):
            run(["ip", "addr", "add", me, "peer", f"{peer}/32", "dev", dev], netns=ns)
            run(["ip", "link", "set", dev, "up"], netns=ns)

        # the agent follows every interface of its namespace (lo is skipped): the TUN device
        agent = self.start_agent("--collect-interval=500ms", netns=ns_a)
        wait_for(lambda: tun_a in agent.interfaces(), 10, f"the agent to monitor {tun_a}")
        info = agent.interfaces()[tun_a]
        log(f"{tun_a}: {info}")
        self.assertEqual(info["xdp_mode"], "off", info)  # XDP parses Ethernet frames: TC only
        att = netprobe_attachments(tun_a, ns_a)
        names = sorted(name.split(":")[0] for v in att.values() for _, name in v)
        self.assertEqual(names, ["netprobe_tc_eg_l3", "netprobe_tc_in_l3"], att)
        k0 = kernel_stats(tun_a, ns_a)
        r0 = self.relay_counts(relay)

        # pings A -> B and an iperf3 TCP transfer B -> A (server in A)
        p = run(["ping", "-q", "-c", str(PING_COUNT), "-i", "0.01", "-s", str(PING_SIZE), IP_B], netns=ns_a)
        self.assertIn(f"{PING_COUNT} received", p.stdout)
        srv = self.spawn(["iperf3", "-s", "-1", "-B", IP_A, "-p", "5201"], netns=ns_a, log_name="iperf3-server.log")
        wait_for(lambda: run(["ss", "-Hltn", "sport = :5201"], netns=ns_a).stdout.strip(), 10, "iperf3 listening")
        c = run(["iperf3", "-c", IP_A, "-p", "5201", "-n", "2M", "--cport", "40123", "-J"], netns=ns_b, timeout=60)
        self.assertEqual(srv.wait(20), 0, srv.output() + c.stdout)
        # what the server read: iperf3 ends the data connection when the control one says the
        # test is over, and what the client's kernel still queued is discarded (a loaded
        # machine: a third of the 2 MiB), so the nominal size is not what crossed
        received = int(json.loads(c.stdout)["end"]["sum_received"]["bytes"])

        # quiet: the relay and the agent agree once nothing moves
        counters = ("netprobe_interface_rx_packets_total", "netprobe_interface_tx_packets_total")
        m = agent.wait_stable(counters, settle=2)
        r1 = self.relay_counts(relay)
        k1 = kernel_stats(tun_a, ns_a)
        self.assertEqual(self.relay_counts(relay), r1, "traffic still moving")
        got = {k: int(m.get(f"netprobe_interface_{k}_total", interface=tun_a))
               for k in ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes")}
        relay_total = {"tx_packets": r1[0], "tx_bytes": r1[1], "rx_packets": r1[2], "rx_bytes": r1[3]}
        log(f"agent {got}; relay {relay_total} (window {tuple(b - a for a, b in zip(r0, r1))}); kernel {k1}")
        # the agent attached before any traffic: its totals are the relay's totals
        self.assertEqual(got, relay_total)
        self.assertEqual({k: k1[k] - k0[k] for k in k1},
                         {"tx_packets": r1[0] - r0[0], "tx_bytes": r1[1] - r0[1],
                          "rx_packets": r1[2] - r0[2], "rx_bytes": r1[3] - r0[3]})
        # at least the payload iperf3's server read crossed (plus headers, the pings, ACKs)
        self.assertGreater(received, 256 * 1024, "iperf3 moved too little to test anything")
        self.assertGreater(got["rx_bytes"], received)

        # flows: the pings and the TCP transfer with their 5-tuples, from the network header
        icmp = agent.flows(protocol="icmp", direction="egress", src_ip=IP_A, dst_ip=IP_B)
        self.assertEqual(icmp["total"], 1, icmp)
        self.assertEqual(icmp["flows"][0]["packets"], PING_COUNT)
        self.assertEqual(icmp["flows"][0]["bytes"], PING_COUNT * (PING_SIZE + 8 + 20))
        tcp = agent.flows(protocol="tcp", direction="ingress", src_ip=IP_B, src_port=40123, dst_ip=IP_A,
                          dst_port=5201)
        self.assertEqual(tcp["total"], 1, tcp)
        # the payload the server read, plus the headers (not the nominal 2 MiB: see above)
        self.assertGreater(tcp["flows"][0]["bytes"], received)
        self.assertLessEqual(tcp["flows"][0]["bytes"], got["rx_bytes"])
        self.assertIn("SYN", tcp["flows"][0]["tcp_flags"])

        self.assertEqual(agent.stop(), 0)
        left = {k: v for k, v in netprobe_attachments(tun_a, ns_a).items() if v}
        self.assertEqual(left, {}, "programs left on the TUN device")


if __name__ == "__main__":
    unittest.main()
