"""Per-cgroup (per-container) traffic of every protocol, end to end.

A process inside a kubelet-style container cgroup (created under the real cgroup v2
hierarchy) and inside a test network namespace sends a known number of UDP datagrams
and ICMP echo requests (raw socket) over a veth to a second namespace, where a UDP echo
responder answers and the kernel answers the pings. Oracle: the sender's own counts of
what it sent and received (and their IP sizes). The agent's cgroup_skb programs on the
cgroup v2 root must report exactly those numbers for the container in
/api/v1/containers (by protocol) and in netprobe_container_* series, and drop the
series once the cgroup is gone. Addresses: 198.18.0.0/15 only (make_veth). Everything
(processes, cgroups, namespaces, veths, the agent and its BPF links) is removed at cleanup."""

import json
import os
import select
import subprocess
import unittest

from netprobe_e2e import PID, PYTHON, E2ETestCase, log, require_tools, run, wait_for
import test_containers  # its helpers; importing its classes by name would run their tests here too
import test_k8s

CID = "ab" * 32
UID = "3f2e1d0c-9b8a-4766-9554-433221100fed"
UDP_PORT = 7777
N_UDP, UDP_SIZE = 40, 300
N_ICMP, ICMP_SIZE = 7, 56

RESPONDER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("READY", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""

SENDER = r"""
import json, os, select, socket, struct, sys, time
dst, port, n_udp, udp_size, n_icmp, icmp_size = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:7])
out = {"udp_tx": 0, "udp_tx_bytes": 0, "udp_rx": 0, "udp_rx_bytes": 0,
       "icmp_tx": 0, "icmp_tx_bytes": 0, "icmp_rx": 0, "icmp_rx_bytes": 0}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n_udp):
    u.sendto(bytes([i % 256]) * udp_size, (dst, port))
    out["udp_tx"] += 1
    out["udp_tx_bytes"] += 20 + 8 + udp_size
    time.sleep(0.002)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
for seq in range(n_icmp):
    payload = bytes([seq]) * icmp_size
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    pkt = struct.pack("!BBHHH", 8, 0, csum(h + payload), ident, seq) + payload
    r.sendto(pkt, (dst, 0))
    out["icmp_tx"] += 1
    out["icmp_tx_bytes"] += 20 + len(pkt)
    time.sleep(0.002)
deadline = time.monotonic() + 5
while time.monotonic() < deadline and (out["udp_rx"] < n_udp or out["icmp_rx"] < n_icmp):
    ready, _, _ = select.select([u, r], [], [], 0.2)
    if u in ready:
        data = u.recv(65535)
        out["udp_rx"] += 1
        out["udp_rx_bytes"] += 20 + 8 + len(data)
    if r in ready:
        data = r.recv(65535)  # the whole IP packet; every ICMP message of the namespace
        out["icmp_rx"] += 1   # the agent counts every delivery to this socket, so do we
        out["icmp_rx_bytes"] += len(data)
time.sleep(0.5)
# anything else the raw socket received (none expected) is counted too
while select.select([r], [], [], 0)[0]:
    data = r.recv(65535); out["icmp_rx"] += 1; out["icmp_rx_bytes"] += len(data)
print(json.dumps(out), flush=True)
"""


class CgroupTraffic(E2ETestCase):
    make_cgroup = test_containers.ContainersBase.make_cgroup
    spawn_in = test_containers.ContainersBase.spawn_in

    def setUp(self):
        # the agent needs an interface of its own: a veth whose host end is here (never eth0)
        self.agent_veth = self.make_veth()
        # sender namespace A <-> responder namespace B
        self.ns_a = self.make_netns()
        self.link = self.make_veth(host_ns=self.ns_a)  # host end in A, peer end in B
        self.cg_rel = f"kubepods/besteffort/pod{UID}/{CID}"
        self.cg = self.make_cgroup(self.cg_rel)
        self.cg_id = os.stat(self.cg).st_ino

    def responder(self):
        p = self.spawn([PYTHON, "-c", RESPONDER, self.link.peer_ip, str(UDP_PORT)], netns=self.link.ns,
                       stdout=subprocess.PIPE, name="udp-echo")
        self.defer("responder's stdout", p.p.stdout.close)
        r, _, _ = select.select([p.p.stdout], [], [], 30)
        self.assertTrue(r and p.p.stdout.readline().startswith(b"READY"), "UDP responder did not start")
        return p

    def send(self) -> dict:
        s = self.spawn_in(self.cg, self.ns_a,
                          [PYTHON, "-c", SENDER, self.link.peer_ip, str(UDP_PORT), str(N_UDP), str(UDP_SIZE),
                           str(N_ICMP), str(ICMP_SIZE)],
                          stdout=subprocess.PIPE, name="sender")
        self.defer("sender's stdout", s.p.stdout.close)
        self.assertEqual(s.wait(60), 0, "sender failed")
        out = json.loads(s.p.stdout.read())
        log(f"sender's own counts: {out}")
        self.assertEqual(out["udp_tx"], N_UDP)
        self.assertEqual(out["icmp_tx"], N_ICMP)
        self.assertGreater(out["udp_rx"], 0)
        self.assertGreater(out["icmp_rx"], 0)
        return out

    def container(self, agent) -> dict | None:
        doc = agent.get_json("/api/v1/containers")
        self.assertTrue(doc["cgroup_traffic_enabled"], doc)
        for c in doc["containers"]:
            if c["container_id"] == CID:
                return c
        return None

    def root_links(self) -> set[int]:
        """Program ids attached to the cgroup v2 root (any attach type)."""
        out = run(["bpftool", "-j", "cgroup", "show", test_containers.cgroup2_mount()], check=False).stdout
        out = out.strip()
        return {p["id"] for p in json.loads(out)} if out else set()

    def test_udp_and_icmp_of_a_container_exactly(self):
        a = self.start_agent(f"--interface-filter={self.agent_veth.host}", "--collect-interval=300ms",
                             "--security=off", "--container-metrics-limit=1000")
        progs, _ = a.bpf_ids()
        attached = self.root_links() & progs
        self.assertEqual(len(attached), 2, f"the agent's two cgroup_skb programs on the cgroup v2 root: {attached}")
        self.responder()
        sent = self.send()

        expect = {
            "udp": {"tx_packets": sent["udp_tx"], "tx_bytes": sent["udp_tx_bytes"],
                    "rx_packets": sent["udp_rx"], "rx_bytes": sent["udp_rx_bytes"]},
            "icmp": {"tx_packets": sent["icmp_tx"], "tx_bytes": sent["icmp_tx_bytes"],
                     "rx_packets": sent["icmp_rx"], "rx_bytes": sent["icmp_rx_bytes"]},
            "tcp": {"tx_packets": 0, "tx_bytes": 0, "rx_packets": 0, "rx_bytes": 0},
            "other": {"tx_packets": 0, "tx_bytes": 0, "rx_packets": 0, "rx_bytes": 0},
        }

        def settled():
            c = self.container(a)
            if not c or not c.get("traffic"):
                return None
            t = {k: v for k, v in c["traffic"].items() if k != "all"}
            return c if t == expect else None

        try:
            c = wait_for(settled, 20, "the container's traffic to equal the sender's counts")
        except AssertionError:
            raise AssertionError(f"agent: {self.container(a)}\nsender: {expect}") from None
        self.assertEqual(c["cgroup_ids"], [self.cg_id])
        self.assertTrue(c["cgroup_paths"][0].endswith(self.cg_rel), c["cgroup_paths"])
        self.assertEqual(c["pod_uid"], UID)
        tx_p = sent["udp_tx"] + sent["icmp_tx"]
        rx_p = sent["udp_rx"] + sent["icmp_rx"]
        tx_b = sent["udp_tx_bytes"] + sent["icmp_tx_bytes"]
        rx_b = sent["udp_rx_bytes"] + sent["icmp_rx_bytes"]
        self.assertEqual(c["traffic"]["all"], {"tx_packets": tx_p, "tx_bytes": tx_b, "rx_packets": rx_p,
                                               "rx_bytes": rx_b})

        m = a.metrics()
        lbl = {"container_id": CID}
        self.assertEqual(m.get("netprobe_container_tx_packets_total", **lbl), tx_p)
        self.assertEqual(m.get("netprobe_container_tx_bytes_total", **lbl), tx_b)
        self.assertEqual(m.get("netprobe_container_rx_packets_total", **lbl), rx_p)
        self.assertEqual(m.get("netprobe_container_rx_bytes_total", **lbl), rx_b)
        self.assertEqual(m.get("netprobe_map_update_errors_total", map="cgroup_traffic"), 0)
        self.assertGreater(m.get("netprobe_map_entries", map="cgroup_traffic"), 0)

        # the cgroup goes away (its process has exited): its series and entry follow
        os.rmdir(self.cg)
        wait_for(lambda: not a.metrics().find("netprobe_container_tx_packets_total", container_id=CID), 40,
                 "the removed container's series to disappear", interval=0.5)
        self.assertIsNone(self.container(a))

        # the BPF links go with the agent
        self.assertEqual(a.stop(), 0)
        self.assertFalse(self.root_links() & progs, "cgroup_skb programs left on the cgroup v2 root")

    def test_agent_under_ip_netns_exec(self):
        # `ip netns exec` gives the agent a mount namespace with a fresh /sys and no cgroup2
        # mount: it attaches to the hierarchy of an ancestor process (through /proc/PID/root)
        a = self.start_agent(f"--interface-filter={self.link.host}", "--collect-interval=300ms", "--security=off",
                             netns=self.ns_a)
        self.assertIn("cgroup traffic: cgroup_skb ingress/egress attached to /proc/self/fd/", a.output())
        progs, _ = a.bpf_ids()
        self.assertEqual(len(self.root_links() & progs), 2)
        self.responder()
        sent = self.send()

        def udp():
            t = (self.container(a) or {}).get("traffic") or {}
            return t.get("udp") == {"tx_packets": sent["udp_tx"], "tx_bytes": sent["udp_tx_bytes"],
                                    "rx_packets": sent["udp_rx"], "rx_bytes": sent["udp_rx_bytes"]}

        wait_for(udp, 20, "the container's UDP traffic to equal the sender's counts")

    def test_pod_labels_with_kubernetes(self):
        require_tools("openssl")
        api = test_k8s.FakeApiServer(self)
        p = test_k8s.pod("shop", "web-5f7c9d-xyz12", self.link.host_ip, "web-5f7c9d")
        p["metadata"]["uid"] = UID
        p["status"]["containerStatuses"][0]["containerID"] = "containerd://" + CID
        api.control("upsert", {"resource": "pods", "object": p})
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        env["NODE_NAME"] = test_k8s.NODE
        a = self.start_agent(f"--interface-filter={self.agent_veth.host}", "--collect-interval=300ms",
                             "--security=off", f"--kubeconfig={api.kubeconfig()}", env=env)
        wait_for(lambda: a.get_json("/api/v1/pods")["synced"], 30, "the agent to sync with the API")
        self.responder()
        sent = self.send()
        tx = sent["udp_tx"] + sent["icmp_tx"]
        lbl = {"container_id": CID, "namespace": "shop", "pod": "web-5f7c9d-xyz12"}
        wait_for(lambda: a.metrics().get_or("netprobe_container_tx_packets_total", -1, **lbl) == tx, 20,
                 "the container's series with its pod's namespace and name")
        c = self.container(a)
        self.assertEqual((c["namespace"], c["pod"], c["workload"]), ("shop", "web-5f7c9d-xyz12", "web"))
        self.assertEqual(c["traffic"]["all"]["tx_packets"], tx)

    def test_off(self):
        a = self.start_agent(f"--interface-filter={self.agent_veth.host}", "--collect-interval=300ms",
                             "--security=off", "--cgroup-traffic=off")
        progs, _ = a.bpf_ids()
        self.assertFalse(self.root_links() & progs)
        self.responder()
        self.send()
        m = a.wait_collections(2)
        self.assertFalse(m.find("netprobe_container_tx_packets_total"))
        self.assertFalse(m.find("netprobe_map_entries", map="cgroup_traffic"))
        doc = a.get_json("/api/v1/containers")
        self.assertFalse(doc["cgroup_traffic_enabled"])
        self.assertIn("per-cgroup traffic off", a.output())

    def test_container_metrics_off_and_budget(self):
        a = self.start_agent(f"--interface-filter={self.agent_veth.host}", "--collect-interval=300ms",
                             "--security=off", "--container-metrics-limit=0")
        self.responder()
        self.send()
        wait_for(lambda: (self.container(a) or {}).get("traffic"), 20, "the container's traffic")
        m = a.metrics()
        # limit 0: every container is summed into the "other" series
        self.assertFalse(m.find("netprobe_container_tx_packets_total", container_id=CID))
        self.assertGreaterEqual(m.get("netprobe_container_tx_packets_total", container_id="other", namespace="other",
                                      pod="other"), N_UDP + N_ICMP)
        a.stop()
        b = self.start_agent(f"--interface-filter={self.agent_veth.host}", "--collect-interval=300ms",
                             "--security=off", "--container-metrics=off")
        self.send()
        wait_for(lambda: (self.container(b) or {}).get("traffic"), 20, "the container's traffic")
        self.assertFalse(b.metrics().find("netprobe_container_tx_packets_total"))


if __name__ == "__main__":
    unittest.main()
