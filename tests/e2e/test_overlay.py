"""Overlay decapsulation on the underlay: two namespaces ("nodes") joined by a veth
underlay (198.19.0.0/16), each with a Flannel-like VXLAN device (VNI 42, UDP port 8472,
IPv4 overlay 198.18.42.0/24) and a second one on the IANA port (VNI 43, UDP 4789, IPv6
overlay fd6e:7072:42::/64). The agent runs in the first namespace and monitors the
underlay veth only (not the VXLAN devices). Real traffic crosses the overlay: UDP
datagrams (python sockets, over IPv4 and IPv6) and TCP transfers (one with TSO off on
the VXLAN device, one with it on: GSO packets on the underlay). The agent must report
each inner 5-tuple as a flow with "encap":"vxlan" on the underlay veth, with the bytes
of its inner IP datagrams, equal to the oracles:
  - UDP: the receiver's own count (every datagram arrived) x (IP + UDP header + payload);
  - TCP, TSO off: the VXLAN device's own counters over the transfer (one packet per
    segment; the kernel's VXLAN device counts its frames without their Ethernet header,
    both ways: its bytes are the IP bytes) and the sender socket's TCP_INFO (segs_out,
    bytes_sent);
  - TCP, TSO on (GSO packets of up to 64 KiB through the VXLAN device and the veth): the
    sender socket's TCP_INFO: segs_out packets, bytes_sent + 20 (IPv4) + the TCP header
    of each segment (40 on the SYN, 32 with the timestamp option on the others);
and the outer UDP flows to port 8472 / 4789 must carry exactly those packets, each 64
bytes longer (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
Everything lives in the test's namespaces, deleted at the end even on failure."""

import json
import unittest

from netprobe_e2e import PYTHON, E2ETestCase, kernel_stats, log, require_tools, run, wait_for

OV4_A, OV4_B = "198.18.42.1", "198.18.42.2"
OV6_A, OV6_B = "fd6e:7072:42::1", "fd6e:7072:42::2"
MAC = {("vx0", "a"): "02:00:00:42:00:01", ("vx0", "b"): "02:00:00:42:00:02",
       ("vx1", "a"): "02:00:00:43:00:01", ("vx1", "b"): "02:00:00:43:00:02"}
UDP_COUNT, UDP_PAYLOAD = 200, 700
OUTER_OVERHEAD = 14 + 20 + 8 + 8 + 14  # per packet: outer Ethernet, IPv4, UDP, VXLAN, inner Ethernet

# A UDP receiver: counts datagrams until it has `count` (or 30 s pass), prints "udp N BYTES".
UDP_RECEIVER = r"""
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(30)
want, n, b = int(sys.argv[3]), 0, 0
print("ready", flush=True)
try:
    while n < want:
        d = s.recv(65535)
        n += 1
        b += len(d)
except socket.timeout:
    pass
print("udp", n, b, flush=True)
"""

# A UDP sender: count datagrams of size bytes from (src, sport) to (dst, dport), paced.
UDP_SENDER = r"""
import socket, sys, time
src, sport, dst, dport, count, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
fam = socket.AF_INET6 if ":" in src else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((src, sport))
for i in range(count):
    s.sendto(bytes([i % 256]) * size, (dst, dport))
    time.sleep(0.001)
"""

# A TCP sink: accepts one connection, reads to EOF, answers the byte count, prints it.
TCP_RECEIVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
n = 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    n += len(d)
c.sendall(b"%d\n" % n)
c.close()
print("tcp", n, flush=True)
"""

# A TCP source: sends `total` bytes from (src, sport), half-closes, reads the answer to
# EOF, then prints its socket's TCP_INFO counters (struct tcp_info, linux/tcp.h:
# tcpi_total_retrans at 100, tcpi_segs_out at 136, tcpi_data_segs_out at 156,
# tcpi_bytes_sent at 200) and the answer as JSON.
TCP_SENDER = r"""
import json, socket, struct, sys
src, sport, dst, dport, total = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.connect((dst, dport))
chunk = b"x" * 65536
left = total
while left:
    left -= s.send(chunk[:min(left, len(chunk))])
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    d = s.recv(100)
    if not d:
        break
    answer += d
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
print(json.dumps({"answer": int(answer), "retrans": struct.unpack_from("I", info, 100)[0],
                  "segs_out": struct.unpack_from("I", info, 136)[0],
                  "data_segs_out": struct.unpack_from("I", info, 156)[0],
                  "bytes_sent": struct.unpack_from("Q", info, 200)[0]}))
s.close()
"""


class OverlayTest(E2ETestCase):
    def setUp(self):
        require_tools("ethtool")

    def vxlan(self, ns: str, side: str, name: str, vni: int, port: int, local: str, remote: str, dev: str,
              addr: str, peer_addr: str, peer_side: str) -> None:
        run(["ip", "link", "add", name, "address", MAC[(name, side)], "type", "vxlan", "id", str(vni), "dstport",
             str(port), "local", local, "remote", remote, "dev", dev, "nolearning"], netns=ns)
        v6 = ":" in addr
        if v6:  # IPv6 on this device only, without DAD, router solicitations or RA processing
            run(["sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=0", f"net.ipv6.conf.{name}.accept_dad=0",
                 f"net.ipv6.conf.{name}.router_solicitations=0", f"net.ipv6.conf.{name}.accept_ra=0"], netns=ns)
            run(["ip", "addr", "add", f"{addr}/64", "dev", name, "nodad"], netns=ns)
        else:
            run(["ip", "addr", "add", f"{addr}/24", "dev", name], netns=ns)
        run(["ip", "link", "set", name, "up"], netns=ns)
        # static neighbours, as Flannel installs them: no ARP / ND across the overlay
        run(["ip", "neigh", "replace", peer_addr, "lladdr", MAC[(name, peer_side)], "dev", name, "nud", "permanent"],
            netns=ns)

    def test_vxlan_inner_flows_on_the_underlay(self):
        ns_a, ns_b = self.make_netns(), self.make_netns()
        ul = self.make_veth(ns=ns_b, host_ns=ns_a)  # the underlay: ul.host in A, ul.peer in B
        for ns in (ns_a, ns_b):  # the VXLAN devices get no IPv6 unless asked for (no MLD/ND chatter)
            run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], netns=ns)
        for name, vni, port, a, b in (("vx0", 42, 8472, OV4_A, OV4_B), ("vx1", 43, 4789, OV6_A, OV6_B)):
            self.vxlan(ns_a, "a", name, vni, port, ul.host_ip, ul.peer_ip, ul.host, a, b, "b")
            self.vxlan(ns_b, "b", name, vni, port, ul.peer_ip, ul.host_ip, ul.peer, b, a, "a")
        run(["ping", "-c", "1", "-W", "2", ul.peer_ip], netns=ns_a)  # underlay ARP settled

        agent = self.start_agent("--collect-interval=500ms", f"--interface-filter={ul.host}", "--security=off",
                                 "--cgroup-traffic=off", netns=ns_a)
        wait_for(lambda: ul.host in agent.interfaces(), 10, f"the agent to monitor {ul.host}")
        for dst in (OV4_B, OV6_B):  # traffic both ways through both devices
            self.assertEqual(run(["ping", "-c", "2", "-i", "0.2", dst], netns=ns_a).returncode, 0)

        # ---- UDP over both devices: IPv4 inside port 8472, IPv6 inside port 4789 ----
        udp = {}
        for src, dst, sport, dport in ((OV4_A, OV4_B, 41001, 9001), (OV6_A, OV6_B, 41002, 9002)):
            rx = self.spawn([PYTHON, "-c", UDP_RECEIVER, dst, str(dport), str(UDP_COUNT)], netns=ns_b,
                            log_name=f"udp-{dport}.log")
            wait_for(lambda: "ready" in rx.output(), 10, "the UDP receiver")
            run([PYTHON, "-c", UDP_SENDER, src, str(sport), dst, str(dport), str(UDP_COUNT), str(UDP_PAYLOAD)],
                netns=ns_a, timeout=60)
            self.assertEqual(rx.wait(40), 0, rx.output())
            got = [line.split() for line in rx.output().splitlines() if line.startswith("udp ")][-1]
            udp[(src, dst, sport, dport)] = (int(got[1]), int(got[2]))
        log(f"UDP received: {udp}")
        for (src, dst, sport, dport), (n, b) in udp.items():
            self.assertEqual((n, b), (UDP_COUNT, UDP_COUNT * UDP_PAYLOAD), f"datagrams lost to {dst}")

        # ---- TCP with TSO off on vx0: the device's counters are per wire packet ----
        run(["ethtool", "-K", "vx0", "tso", "off", "gso", "off"], netns=ns_a)
        vx_before = kernel_stats("vx0", ns_a)
        tcp_off = self.tcp_transfer(ns_a, ns_b, 42001, 5001, 3 << 20)
        vx_after = kernel_stats("vx0", ns_a)
        vx = {k: vx_after[k] - vx_before[k] for k in vx_after}
        log(f"TCP (TSO off): {tcp_off}; vx0 delta {vx}")
        # ---- TCP with TSO on (the default): GSO packets on the underlay ----
        run(["ethtool", "-K", "vx0", "tso", "on", "gso", "on"], netns=ns_a)
        tcp_on = self.tcp_transfer(ns_a, ns_b, 42002, 5002, 8 << 20)
        log(f"TCP (TSO on): {tcp_on}")

        # quiet: the agent's counters stop moving
        m = agent.wait_stable(("netprobe_overlay_packets_total", "netprobe_overlay_bytes_total"), settle=3)

        def flow(**q) -> dict:
            f = agent.flows(interface=ul.host, limit=1000, **q)
            self.assertEqual(f["total"], 1, f"{q}: {f}")
            return f["flows"][0]

        # UDP: exact datagrams and IP bytes, inner 5-tuples, encap vxlan, on the underlay veth
        for (src, dst, sport, dport), (n, _) in udp.items():
            f = flow(encap="vxlan", protocol="udp", src_ip=src, dst_ip=dst, src_port=sport, dst_port=dport)
            ip_hdr = 40 if ":" in src else 20
            log(f"agent UDP {src}:{sport} -> {dst}:{dport}: {f['packets']} packets {f['bytes']} bytes")
            self.assertEqual((f["packets"], f["bytes"]), (n, n * (ip_hdr + 8 + UDP_PAYLOAD)))
            self.assertEqual((f["direction"], f["encap"], f["ip_version"]), ("egress", "vxlan", 6 if ip_hdr == 40 else 4))

        # TCP, TSO off: the VXLAN device's counters and the sender socket's
        f = flow(encap="vxlan", protocol="tcp", src_ip=OV4_A, src_port=42001, dst_ip=OV4_B, dst_port=5001)
        r = flow(encap="vxlan", protocol="tcp", src_ip=OV4_B, src_port=5001, dst_ip=OV4_A, dst_port=42001)
        log(f"agent TCP (TSO off) A->B {f['packets']} packets {f['bytes']} bytes, B->A {r['packets']} / {r['bytes']}")
        self.assertEqual(f["direction"], "egress")
        self.assertEqual(r["direction"], "ingress")
        self.assertEqual((f["packets"], f["bytes"]), (vx["tx_packets"], vx["tx_bytes"]))
        self.assertEqual((r["packets"], r["bytes"]), (vx["rx_packets"], vx["rx_bytes"]))
        self.assertEqual((f["packets"], f["bytes"]), self.tcp_oracle(tcp_off))
        self.assertIn("SYN", f["tcp_flags"])
        self.assertIn("FIN", f["tcp_flags"])

        # TCP, TSO on: the sender socket's counters (segments, not GSO buffers)
        g = flow(encap="vxlan", protocol="tcp", src_ip=OV4_A, src_port=42002, dst_ip=OV4_B, dst_port=5002)
        log(f"agent TCP (TSO on) A->B {g['packets']} packets {g['bytes']} bytes")
        self.assertEqual((g["packets"], g["bytes"]), self.tcp_oracle(tcp_on))

        # the outer (underlay) flows carry exactly the inner packets, each OUTER_OVERHEAD longer
        flows = agent.flows(interface=ul.host, limit=1000)["flows"]
        for direction in ("egress", "ingress"):
            for port in (8472, 4789):
                outer = [x for x in flows if x["encap"] == "none" and x["protocol"] == "udp" and
                         x["dst_port"] == port and x["direction"] == direction]
                # vx0 (8472) carries IPv4 only, vx1 (4789) IPv6 only (its MLD reports included)
                vx_name, family = ("vx0", 4) if port == 8472 else ("vx1", 6)
                inner = [x for x in flows if x["encap"] == "vxlan" and x["direction"] == direction and
                         x["ip_version"] == family]
                op, ob = sum(x["packets"] for x in outer), sum(x["bytes"] for x in outer)
                ip_, ib = sum(x["packets"] for x in inner), sum(x["bytes"] for x in inner)
                log(f"{direction} {vx_name} (port {port}): outer {op} packets {ob} bytes; inner {ip_} / {ib}")
                self.assertGreater(ip_, 0)
                self.assertEqual((op, ob), (ip_, ib + OUTER_OVERHEAD * ip_))
                for x in outer:
                    self.assertEqual((x["src_ip"], x["dst_ip"]),
                                     (ul.host_ip, ul.peer_ip) if direction == "egress" else (ul.peer_ip, ul.host_ip))
                m_p = m.get("netprobe_overlay_packets_total", encap="vxlan", direction=direction)
                self.assertGreaterEqual(m_p, ip_)
        # every tunnel packet decapsulated, nothing else seen as a tunnel
        for s in m.find("netprobe_overlay_undecoded_packets_total"):
            self.assertEqual(s.value, 0, s)
        total = {d: sum(x["packets"] for x in flows if x["encap"] == "vxlan" and x["direction"] == d)
                 for d in ("egress", "ingress")}
        for d, n in total.items():
            self.assertEqual(m.get("netprobe_overlay_packets_total", encap="vxlan", direction=d), n)
        self.assertEqual(m.get("netprobe_overlay_packets_total", encap="gre", direction="egress"), 0)

        self.assertEqual(agent.stop(), 0)
        self.assertNothingAttached(ul.host, ns_a)

    def tcp_transfer(self, ns_a: str, ns_b: str, sport: int, dport: int, total: int) -> dict:
        rx = self.spawn([PYTHON, "-c", TCP_RECEIVER, OV4_B, str(dport)], netns=ns_b, log_name=f"tcp-{dport}.log")
        wait_for(lambda: "ready" in rx.output(), 10, "the TCP receiver")
        out = run([PYTHON, "-c", TCP_SENDER, OV4_A, str(sport), OV4_B, str(dport), str(total)], netns=ns_a,
                  timeout=120).stdout
        self.assertEqual(rx.wait(30), 0, rx.output())
        info = json.loads(out)
        self.assertEqual(info["answer"], total, "the receiver did not read everything")
        return info

    @staticmethod
    def tcp_oracle(info: dict) -> tuple[int, int]:
        """The sender's segments and their IP bytes: every segment has a 20-byte IPv4
        header and a TCP header of 40 bytes (the SYN: MSS, SACK permitted, timestamps,
        window scale) or 32 (the timestamp option); bytes_sent is the payload sent,
        retransmissions included."""
        n = info["segs_out"]
        return n, info["bytes_sent"] + 20 * n + 40 + 32 * (n - 1)


if __name__ == "__main__":
    unittest.main()
