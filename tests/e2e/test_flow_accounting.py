"""Flow totals under eviction: when the agent keeps fewer flows (--max-flows) than
the kernel's flow table holds live entries, every kernel entry must still count
once. Pod and workload totals (netprobe_pod_*, netprobe_workload_traffic_*) and
the flows of /api/v1/flows may never exceed what the veths themselves counted
(/sys/class/net/IF/statistics), and once the traffic stopped the pod and workload
totals must equal them (within 0.5 %).

Two "pods" (network namespaces on a bridge, as a bridge CNI lays them out on one
node) known to the agent through tests/k8s/fake_apiserver.py; the ui pod sends
UDP datagrams from FLOWS source ports to the web pod at a steady low rate each,
and the web pod echoes every datagram: 2 x FLOWS live 5-tuples (kernel entries),
far more than --max-flows=500.

The agent watches both pods' host veths, so every packet is in two kernel entries
(the ui veth's and the web veth's), read at slightly different moments. The pod and
workload totals count each 5-tuple at one place, the sending pod's own veth (c2ebe38
took the larger of the two observations each interval, which counts a packet twice
when the two entries are read on either side of it: about +0.1 % here even without
eviction). Any excess is a packet counted twice.

Byte conventions (see test_counters.py): flows count the L2 frame length, as the
veths' rx_bytes/tx_bytes do without a native XDP program (--xdp-mode=off here, so
the host end keeps the normal receive path). A datagram from the ui pod is
received by the ui pod's host veth (rx) and sent by the web pod's host veth (tx):
  ui tx  = rx of the ui host veth      web rx = tx of the web host veth
  web tx = rx of the web host veth     ui rx  = tx of the ui host veth
The veths also count ARP (and any IPv6 control packet), which no flow carries:
the agent may be below the kernel, never above it.
"""

import json
import os
import subprocess
import time
import unittest

from netprobe_e2e import (PID, PYTHON, E2ETestCase, kernel_stats, log, require_tools, run, wait_line,
                          wait_for)
# The fake API server's wrapper and the Pod object builder of the Kubernetes e2e test
# (plain helpers, no TestCase: importing them adds no tests to this module).
from test_k8s import FakeApiServer, pod

NODE = "node-e2e"
SUBNET = f"198.18.{PID % 250}"
IP_UI, IP_WEB = f"{SUBNET}.21", f"{SUBNET}.22"
UI = ("frontend", "ui-7d9f8c6b5-abcde", "ui-7d9f8c6b5")
WEB = ("shop", "web-5f7c9d-xyz12", "web-5f7c9d")
PORT = 9000

MAX_FLOWS = 500
FLOWS = 3000           # source ports of the ui pod: 3000 live 5-tuples each way
RATE_PER_FLOW = 2.0    # datagrams per second per flow (kernel entries idle > 2 intervals are drained)
PAYLOAD = 100
TRAFFIC_SECONDS = 60
SAMPLE_EVERY = 6
TOLERANCE = 0.005

# Runs in the web pod: echoes every datagram to its sender, for at most argv[3] seconds.
ECHO = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1)
end = time.monotonic() + float(sys.argv[3])
print("LISTENING", flush=True)
while time.monotonic() < end:
    try:
        d, a = s.recvfrom(4096)
    except socket.timeout:
        continue
    s.sendto(d, a)
"""

# Runs in the ui pod: N connected UDP sockets (N source ports) to dst:port, paced to
# N*rate datagrams/s in total, for `secs` seconds. Each round sends one datagram per
# socket, in a new random order (real flows are not in lockstep with the agent's
# collections: which flows were seen last before a collection changes every time).
# Replies are not read (a tiny receive buffer drops them after the veths counted them).
# Prints a JSON summary.
SENDER = r"""
import json, random, resource, socket, sys, time
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate, secs, size = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY else want, hard))
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect((dst, port))
    socks.append(s)
payload = b"x" * size
total_rate = n * rate
start = time.monotonic()
end = start + secs
rnd = random.Random(1)
order = list(range(n))
sent = errors = i = 0
while True:
    now = time.monotonic()
    if now >= end:
        break
    ahead = start + sent / total_rate - now
    if ahead > 0:
        time.sleep(ahead)
    for _ in range(50):
        if i == 0:
            rnd.shuffle(order)
        try:
            socks[order[i]].send(payload)
        except OSError:
            errors += 1
        i = (i + 1) % n
        sent += 1
print(json.dumps({"sent": sent, "errors": errors, "seconds": round(time.monotonic() - start, 3)}), flush=True)
"""


class FlowAccounting(E2ETestCase):
    def setUp(self):
        require_tools("openssl", "ping")
        self.api = FakeApiServer(self)
        for ns, name, rs in (UI, WEB):
            ip = IP_UI if name == UI[1] else IP_WEB
            self.api.control("upsert", {"resource": "pods", "object": pod(ns, name, ip, rs, node=NODE)})
        br = self.make_bridge()
        self.ns_ui, self.veth_ui = self.make_pod_netns(br, IP_UI)
        self.ns_web, self.veth_web = self.make_pod_netns(br, IP_WEB)
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        env["NODE_NAME"] = NODE
        self.agent = self.start_agent(
            f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=1s",
            f"--max-flows={MAX_FLOWS}", "--xdp-mode=off", f"--kubeconfig={self.api.kubeconfig()}",
            "--socket-monitor=off", "--security=off", "--cgroup-traffic=off", env=env)

    # -- what the agent says, what the kernel says -------------------------------------

    def agent_totals(self) -> dict:
        """Pod and workload byte/packet totals from one /metrics scrape."""
        m = self.agent.metrics()
        t = {}
        for key, (ns, name, _) in (("ui", UI), ("web", WEB)):
            for d in ("rx", "tx"):
                for unit in ("bytes", "packets"):
                    t[f"{key}_{d}_{unit}"] = m.get_or(f"netprobe_pod_{d}_{unit}_total", 0.0, namespace=ns, pod=name)
        for key, src, dst in (("ui_to_web", UI, WEB), ("web_to_ui", WEB, UI)):
            for unit in ("bytes", "packets"):
                t[f"wl_{key}_{unit}"] = m.get_or(f"netprobe_workload_traffic_{unit}_total", 0.0,
                                                 src_namespace=src[0], src_workload=src[2].rsplit("-", 1)[0],
                                                 dst_namespace=dst[0], dst_workload=dst[2].rsplit("-", 1)[0])
        for unit in ("bytes", "packets"):
            t[f"wl_all_{unit}"] = sum(s.value for s in m.find(f"netprobe_workload_traffic_{unit}_total"))
        t["_evicted"] = m.get_or("netprobe_flows_removed_total", 0.0, reason="evicted")
        t["_kernel_entries"] = m.get_or("netprobe_map_entries", 0.0, map="flow_stats")
        t["_flow_map_errors"] = m.get_or("netprobe_map_update_errors_total", 0.0, map="flow_stats")
        return t

    def kernel(self) -> dict:
        k = {}
        for key, ifname in (("ui", self.veth_ui), ("web", self.veth_web)):
            for name, v in kernel_stats(ifname).items():
                k[f"{key}_{name}"] = v
        return k

    @staticmethod
    def reference(k: dict) -> dict:
        """For each agent total, the kernel counter that bounds it (see the module docstring)."""
        ref = {}
        for unit in ("bytes", "packets"):
            ref[f"ui_tx_{unit}"] = k[f"ui_rx_{unit}"]
            ref[f"ui_rx_{unit}"] = k[f"ui_tx_{unit}"]
            ref[f"web_tx_{unit}"] = k[f"web_rx_{unit}"]
            ref[f"web_rx_{unit}"] = k[f"web_tx_{unit}"]
            ref[f"wl_ui_to_web_{unit}"] = k[f"ui_rx_{unit}"]
            ref[f"wl_web_to_ui_{unit}"] = k[f"web_rx_{unit}"]
            ref[f"wl_all_{unit}"] = k[f"ui_rx_{unit}"] + k[f"web_rx_{unit}"]
        return ref

    def flow_sums(self) -> dict:
        """Bytes/packets of the flows /api/v1/flows lists, per (host veth, direction)."""
        out = {}
        for ifname in (self.veth_ui, self.veth_web):
            for direction in ("ingress", "egress"):
                doc = self.agent.flows(interface=ifname, direction=direction, limit=10000)
                self.assertEqual(doc["returned"], len(doc["flows"]))
                out[(ifname, direction)] = (sum(f["bytes"] for f in doc["flows"]),
                                            sum(f["packets"] for f in doc["flows"]), doc["total"])
        return out

    def check_never_above(self, a0: dict, k0: dict, when: str) -> tuple[dict, dict, dict]:
        """Agent first, then kernel (the kernel can only have counted more by then)."""
        a = self.agent_totals()
        flows = self.flow_sums()
        k = self.kernel()
        da = {x: a[x] - a0[x] for x in a}
        ref = self.reference({x: k[x] - k0[x] for x in k})
        log(f"{when}: " + ", ".join(f"{x} {da[x]:.0f}/{ref[x]}" for x in sorted(ref) if x.endswith("bytes"))
            + f"; kernel entries {a['_kernel_entries']:.0f}, evicted {a['_evicted']:.0f}")
        over = [f"{x} +{da[x]:.0f} > +{ref[x]}" for x in sorted(ref) if da[x] > ref[x]]
        if over:
            self.fail(f"{when}: agent totals above what the veths counted since the traffic started "
                      f"(traffic counted more than once): " + ", ".join(over))
        # flows are cumulative since the agent attached: bounded by the veths' totals
        kdir = {"ingress": "rx", "egress": "tx"}
        for (ifname, direction), (fb, fp, total) in flows.items():
            key = "ui" if ifname == self.veth_ui else "web"
            kb, kp = k[f"{key}_{kdir[direction]}_bytes"], k[f"{key}_{kdir[direction]}_packets"]
            self.assertLessEqual(fb, kb, f"{when}: /api/v1/flows {ifname} {direction}: {total} flows with {fb} bytes, "
                                         f"the veth counted {kb}")
            self.assertLessEqual(fp, kp, f"{when}: /api/v1/flows {ifname} {direction}: {total} flows with {fp} "
                                         f"packets, the veth counted {kp}")
        return a, k, da

    # -- the test ----------------------------------------------------------------------

    def test_totals_count_each_kernel_entry_once_under_eviction(self):
        a = self.agent
        # both pods known, each with its host veth (where its traffic is counted)
        want = {UI[1]: [self.veth_ui], WEB[1]: [self.veth_web]}
        doc = wait_for(lambda: (d := a.get_json("/api/v1/pods"))["synced"] and
                       {p["name"]: p["host_interfaces"] for p in d["pods"]} == want and d, 30,
                       "the agent to know both pods and their host veths")
        self.assertEqual(sorted(p["name"] for p in doc["pods"]), sorted([UI[1], WEB[1]]))

        echo = self.spawn([PYTHON, "-c", ECHO, IP_WEB, str(PORT), str(TRAFFIC_SECONDS + 60)], netns=self.ns_web,
                          stdout=subprocess.PIPE, name="udp-echo")
        self.defer("echo server's stdout", echo.p.stdout.close)
        wait_line(echo, b"LISTENING", 30)
        # neighbours resolved before the window (ARP is no flow)
        run(["ping", "-c", "2", "-i", "0.2", "-W", "2", IP_WEB], netns=self.ns_ui)
        run(["ping", "-c", "2", "-i", "0.2", "-W", "2", IP_UI], netns=self.ns_web)

        # a quiet moment: agent and kernel totals before the traffic
        def quiet():
            before = self.agent_totals()
            k = self.kernel()
            a.wait_collections(3)
            after = self.agent_totals()
            return (before, k) if before == after and self.kernel() == k else None

        a0, k0 = wait_for(quiet, 60, "the pods' veths to go quiet", interval=0.5)

        sender = self.spawn([PYTHON, "-c", SENDER, IP_WEB, str(PORT), str(FLOWS), str(RATE_PER_FLOW),
                             str(TRAFFIC_SECONDS), str(PAYLOAD)], netns=self.ns_ui, log_name="sender.log",
                            name="udp-sender")
        t0 = time.monotonic()
        samples = 0
        max_entries = 0.0
        while sender.running() and time.monotonic() - t0 < TRAFFIC_SECONDS + 30:
            time.sleep(SAMPLE_EVERY)
            if not sender.running():
                break
            at, _, _ = self.check_never_above(a0, k0, f"t+{time.monotonic() - t0:.0f}s")
            max_entries = max(max_entries, at["_kernel_entries"])
            samples += 1
        self.assertEqual(sender.wait(60), 0, sender.output())
        summary = json.loads(sender.output().strip().splitlines()[-1])
        log(f"sender: {summary}; samples during the traffic: {samples}")
        self.assertGreaterEqual(samples, 5)
        self.assertEqual(summary["errors"], 0, summary)

        # the traffic is over: kernel entries go idle and are drained; the totals settle
        def totals_key(m):
            return [s.value for s in m.samples if s.name.startswith(("netprobe_pod_", "netprobe_workload_traffic_"))]

        a.wait_stable([], settle=3, timeout=60, key=totals_key)
        a1, k1, da = self.check_never_above(a0, k0, "after the traffic")
        ref = self.reference({x: k1[x] - k0[x] for x in k1})

        # eviction really happened: the kernel held far more live entries than the agent keeps
        log(f"kernel flow entries (max sampled) {max_entries:.0f}, agent keeps {MAX_FLOWS}, "
            f"evicted {a1['_evicted'] - a0['_evicted']:.0f}, flow_stats insert failures {a1['_flow_map_errors']:.0f}")
        self.assertGreater(max_entries, 4 * MAX_FLOWS)
        self.assertGreater(a1["_evicted"] - a0["_evicted"], 0)
        self.assertEqual(a1["_flow_map_errors"], a0["_flow_map_errors"], "the kernel flow table overflowed")
        # the traffic really ran: each way at least the datagrams sent and echoed
        frame = PAYLOAD + 8 + 20 + 14
        self.assertGreaterEqual(ref["ui_tx_bytes"], summary["sent"] * frame)
        self.assertGreater(ref["web_tx_bytes"], summary["sent"] * frame // 2)

        for x in sorted(ref):
            self.assertWithin(da[x], ref[x], TOLERANCE, x)


if __name__ == "__main__":
    unittest.main()
