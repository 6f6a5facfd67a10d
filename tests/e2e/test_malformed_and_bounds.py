"""Crafted frames (scapy, from inside the namespace) move exactly the right malformed
and protocol counters and create exactly the right flows; a port scan grows the
flow table but not the number of Prometheus series."""

import json
import re
import threading
import unittest

from netprobe_e2e import PYTHON, E2ETestCase, log, require_tools, run

# Frames are sent to a MAC that is not the host end's: the host drops them right
# after TC ingress (PACKET_OTHERHOST), so nothing answers and the counters see
# exactly what was sent.
OTHER_MAC = "02:00:5e:00:53:01"
MAL_SRC = "198.18.254.1"    # source of the malformed frames: must never show up in a flow
VLAN_SRC = "198.18.254.2"
FRAG_SRC = "198.18.254.3"

N_TRUNC_TCP, N_BAD_IHL, N_BAD_UDP, N_VLAN, N_V6EXT, N_FRAG_DGRAMS = 7, 5, 6, 4, 3, 2
FRAG_PAYLOAD, FRAG_SIZE = 3000, 1000

SCAPY = r"""
import json, sys
from scapy.all import Ether, Dot1Q, IP, IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, UDP, Raw, fragment, sendp, conf
conf.verb = 0
a = json.loads(sys.argv[1])
eth = Ether(src=a["src_mac"], dst=a["dst_mac"])
frames = {}
frames["truncated_tcp"] = [eth / IP(src=a["mal"], dst=a["host"], proto=6) / Raw(b"t" * 10)] * a["n_trunc_tcp"]
frames["bad_ihl"] = [eth / IP(src=a["mal"], dst=a["host"], ihl=4) / UDP(sport=1, dport=2)
                     / Raw(b"i" * 10)] * a["n_bad_ihl"]
frames["bad_udp"] = [eth / IP(src=a["mal"], dst=a["host"]) / UDP(sport=3, dport=4, len=300)
                     / Raw(b"u" * 20)] * a["n_bad_udp"]
frames["vlan"] = [Ether(src=a["src_mac"], dst=a["dst_mac"]) / Dot1Q(vlan=100) / IP(src=a["vlan"], dst=a["host"])
                  / UDP(sport=1111, dport=2222) / Raw(b"v" * 30)] * a["n_vlan"]
frames["v6ext"] = [eth / IPv6(src=a["peer6"], dst=a["host6"]) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
                   / UDP(sport=5555, dport=6666) / Raw(b"6" * 40)] * a["n_v6ext"]
frags = []
for i in range(a["n_frag_dgrams"]):
    dgram = IP(src=a["frag"], dst=a["host"], id=4242 + i) / UDP(sport=7777, dport=8888) / Raw(b"f" * a["frag_payload"])
    frags += [eth / f for f in fragment(dgram, fragsize=a["frag_size"])]
frames["frags"] = frags
out = {}
for name, fs in frames.items():
    sendp(fs, iface=a["iface"])
    out[name] = {"count": len(fs), "bytes": sum(len(bytes(f)) for f in fs)}
print(json.dumps(out))
"""

MALFORMED = "netprobe_malformed_packets_total"
PROTOCOLS = "netprobe_protocol_packets_total"


def ingress(m, family: str) -> dict:
    key = "reason" if family == MALFORMED else "protocol"
    return {s.labels[key]: int(s.value) for s in m.find(family, direction="ingress")}


class MalformedAndBoundsTest(E2ETestCase):
    def setUp(self):
        self.veth = self.make_veth()

    def send_frames(self) -> dict:
        v = self.veth
        args = {"iface": v.peer, "src_mac": v.peer_mac, "dst_mac": OTHER_MAC, "host": v.host_ip, "host6": v.host_ip6,
                "peer6": v.peer_ip6, "mal": MAL_SRC, "vlan": VLAN_SRC, "frag": FRAG_SRC,
                "n_trunc_tcp": N_TRUNC_TCP, "n_bad_ihl": N_BAD_IHL, "n_bad_udp": N_BAD_UDP, "n_vlan": N_VLAN,
                "n_v6ext": N_V6EXT, "n_frag_dgrams": N_FRAG_DGRAMS, "frag_payload": FRAG_PAYLOAD,
                "frag_size": FRAG_SIZE}
        p = run([PYTHON, "-c", SCAPY, json.dumps(args)], netns=v.ns, timeout=60)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def measure(self, agent):
        families = (MALFORMED, PROTOCOLS)
        m0 = agent.wait_stable(families, settle=2)
        sent = self.send_frames()
        m1 = agent.wait_stable(families, settle=2)
        mal = {k: v - ingress(m0, MALFORMED)[k] for k, v in ingress(m1, MALFORMED).items()}
        proto = {k: v - ingress(m0, PROTOCOLS)[k] for k, v in ingress(m1, PROTOCOLS).items()}
        log(f"sent {sent}")
        log(f"malformed ingress deltas: { {k: v for k, v in mal.items() if v} }")
        log(f"protocol ingress deltas: { {k: v for k, v in proto.items() if v} }")
        return sent, mal, proto

    def test_crafted_frames(self):
        require_tools(PYTHON)
        run([PYTHON, "-c", "import scapy.all"])  # python3-scapy must be there: fail, don't skip
        v = self.veth
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=300ms")
        sent, mal, proto = self.measure(agent)
        n_frags = sent["frags"]["count"]
        self.assertEqual(n_frags, N_FRAG_DGRAMS * 4)  # 3008 bytes of UDP in 1000-byte pieces

        # malformed: exactly the crafted ones, nothing else
        want_mal = {k: 0 for k in mal}
        want_mal.update(truncated_tcp=N_TRUNC_TCP, ipv4_bad_ihl=N_BAD_IHL, udp_bad_length=N_BAD_UDP)
        self.assertEqual(mal, want_mal)

        # protocol classes (a packet counts in each class it carries; IHL<5 is not IPv4 we parsed)
        self.assertEqual(proto["ipv4"], N_TRUNC_TCP + N_BAD_UDP + N_VLAN + n_frags)
        self.assertEqual(proto["ipv6"], N_V6EXT)
        self.assertEqual(proto["udp"], N_VLAN + N_V6EXT + N_FRAG_DGRAMS)  # L4 only in first fragments
        self.assertEqual(proto["fragment"], n_frags)
        for k in ("tcp", "icmp", "icmpv6", "arp", "other_l3", "other_l4", "mpls"):
            self.assertEqual(proto[k], 0, k)

        # flows: none from the malformed frames ...
        self.assertEqual(agent.flows(ip=MAL_SRC)["total"], 0, agent.flows(ip=MAL_SRC))
        # ... the VLAN-tagged UDP (its byte count: see test_vlan_tag_counted) ...
        f = agent.flows(src_ip=VLAN_SRC)["flows"]
        self.assertEqual([(x["protocol"], x["src_port"], x["dst_ip"], x["dst_port"], x["direction"], x["packets"])
                          for x in f], [("udp", 1111, v.host_ip, 2222, "ingress", N_VLAN)])
        # ... the IPv6 UDP behind hop-by-hop + destination options ...
        f = agent.flows(src_ip=v.peer_ip6, protocol="udp")["flows"]
        self.assertEqual([(x["src_port"], x["dst_ip"], x["dst_port"], x["ip_version"], x["packets"], x["bytes"])
                          for x in f], [(5555, v.host_ip6, 6666, 6, N_V6EXT, sent["v6ext"]["bytes"])])
        # ... and the fragments, all of them in their datagram's flow (ports from the first)
        f = agent.flows(src_ip=FRAG_SRC, limit=100)["flows"]
        self.assertEqual([(x["protocol"], x["src_port"], x["dst_port"], x["packets"], x["bytes"]) for x in f],
                         [("udp", 7777, 8888, n_frags, sent["frags"]["bytes"])], f)
        self.assertEqual(agent.metrics().get("netprobe_map_update_errors_total", map="flow_stats"), 0)

    def test_vlan_tag_counted(self):
        """On receive the kernel moves the 802.1Q tag into skb->vlan_tci before TC ingress; the
        datapath must still count the VLAN class and the 4 tag bytes (a 76-byte frame is 76)."""
        v = self.veth
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=300ms")
        sent, mal, proto = self.measure(agent)
        f = agent.flows(src_ip=VLAN_SRC)["flows"]
        log(f"VLAN flow: {[(x['packets'], x['bytes']) for x in f]}, sent {sent['vlan']}; vlan class {proto['vlan']}")
        self.assertEqual(proto["vlan"], N_VLAN)
        self.assertEqual([(x["packets"], x["bytes"]) for x in f], [(N_VLAN, sent["vlan"]["bytes"])])

    def test_scan_keeps_series_bounded(self):
        require_tools("nmap", "timeout")
        v = self.veth
        top = 5
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=500ms", f"--top-talkers={top}")
        run(["ping", "-q", "-c", "3", "-i", "0.05", v.host_ip], netns=v.ns)
        base = agent.wait_collections(2)
        base_series = base.series_count()
        log(f"series before the scan: {base_series}")

        # sample /metrics all through the scan
        stop = threading.Event()
        samples = []

        def sampler():
            while not stop.is_set():
                try:
                    samples.append(agent.metrics())
                except Exception as e:  # noqa: BLE001 - reported below
                    samples.append(e)
                stop.wait(0.25)

        t = threading.Thread(target=sampler, daemon=True)
        t.start()
        try:
            p = run(["timeout", "90", "nmap", "-n", "-sS", "-p", "1-2000", "--max-rate", "2000", "-T4",
                     "--host-timeout", "60s", "-e", v.host, v.peer_ip], timeout=120)
        finally:
            stop.set()
            t.join(10)
        log("nmap: " + " | ".join(line for line in p.stdout.splitlines() if line.strip())[-300:])
        self.assertTrue(re.search(r"2000 closed tcp ports|All 2000 scanned ports", p.stdout), p.stdout)
        final = agent.wait_collections(3)
        samples.append(final)

        errors = [s for s in samples if isinstance(s, Exception)]
        self.assertEqual(errors, [])
        # independent of the number of ports scanned; + 9: the sampler's own scrapes over
        # loopback become one established topology edge (netprobe_topology_edge_*: 9 series)
        bound = base_series + 2 * top + 10 + 9
        counts = []
        for m in samples:
            self.assertLessEqual(m.series_count("netprobe_top_talker_bytes_rate"), top + 1)
            self.assertLessEqual(m.series_count("netprobe_top_talker_packets_rate"), top + 1)
            self.assertEqual(len(m.find("netprobe_top_talker_bytes_rate", interface="other")), 1)
            self.assertLessEqual(m.series_count(), bound)
            # no scanned port has a topology edge series of its own (a scan's edges never
            # get established: docs/topology.md)
            scanned = [x.labels for x in m.find("netprobe_topology_edge_packets_total")
                       if x.labels.get("port", "other") != "other" and 1 <= int(x.labels["port"]) <= 2000]
            self.assertEqual(scanned, [])
            counts.append(m.series_count())
        flows = agent.flows(limit=10000)
        tracked = final.get("netprobe_flows_tracked")
        log(f"series during/after the scan: max {max(counts)} (bound {bound}, {len(samples)} scrapes); "
            f"flows total {flows['total']} returned {flows['returned']}; netprobe_flows_tracked {tracked}")
        self.assertGreaterEqual(flows["total"], 2000)
        self.assertEqual(flows["returned"], min(flows["total"], 10000))
        self.assertGreaterEqual(tracked, 2000)
        syn = agent.flows(direction="egress", protocol="tcp", src_ip=v.host_ip, limit=10000)["flows"]
        self.assertGreaterEqual(len({f["dst_port"] for f in syn}), 2000)
        self.assertEqual(final.get("netprobe_map_update_errors_total", map="flow_stats"), 0)
        # the flows endpoint itself is bounded by limit
        self.assertEqual(agent.flows(limit=7)["returned"], 7)


if __name__ == "__main__":
    unittest.main(verbosity=2)
