"""NetworkPolicy monitoring end to end: the agent with --kubeconfig against
tests/k8s/fake_apiserver.py serving pods, namespaces, a node and two NetworkPolicies of
namespace shop (default-deny of ingress; web admits namespace frontend on its "http"
port), and three "pods" that are network namespaces on a bridge (no CNI: nothing enforces
the policies). Real traffic from the ui pod:
  A  ui -> web:8080/tcp   allowed (allow-frontend)
  B  ui -> db:5432/tcp    denied (default-deny), answered: an enforcement gap
  C  ui -> db:5353/udp    denied, echoed: an enforcement gap
  D  ui -> web:9090/tcp   denied, and dropped by an nft rule in web's namespace: SYNs
                          without answer, confirmed enforcement
Every packet count is checked against nft counters in the servers' namespaces (what
really arrived and left; segmentation offloads off, so that a packet is one skb) and the
datagrams sent; then a policy is deleted and the
set is rebuilt. An agent without a kubeconfig has no policy monitoring."""

import json
import os
import select
import subprocess
import unittest

import test_k8s
from netprobe_e2e import PID, PYTHON, E2ETestCase, log, require_tools, run, wait_for

NODE = "node-e2e"
SUBNET = f"198.18.{PID % 250}"
IP_UI, IP_WEB, IP_DB = f"{SUBNET}.21", f"{SUBNET}.22", f"{SUBNET}.23"
IP_ELSEWHERE = f"{SUBNET}.24"  # a pod of another node (no namespace here): only in the policy set
IP_NODE = f"{SUBNET}.250"
UDP_DATAGRAMS = 20

# Answers one UDP datagram with one datagram, forever.
UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("LISTENING", flush=True)
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
"""

# Sends n datagrams one at a time, each waiting for its echo; prints the echoes received.
UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
got = 0
for i in range(int(sys.argv[3])):
    s.send(b"q%03d" % i)
    try:
        s.recv(2048)
        got += 1
    except socket.timeout:
        pass
print(got)
"""

# One connection attempt that nobody answers: prints "timeout".
CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error", e)
"""


def pod(ns: str, name: str, ip: str, app: str, node: str = NODE, ports: list | None = None) -> dict:
    container = {"name": "app", "image": "example:1"}
    if ports:
        container["ports"] = ports
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [container]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": f"uid-ns-{name}", "labels": {"kubernetes.io/metadata.name": name}}}


def policy(name: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-np-{name}"}, "spec": spec}


DEFAULT_DENY = policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
ALLOW_FRONTEND = policy("allow-frontend", {
    "podSelector": {"matchLabels": {"app": "web"}},
    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "frontend"}}}],
                 "ports": [{"port": "http"}]}]})

# nft counters of one server namespace: per (protocol, port) the packets from the ui pod
# (input) and to it (output); drop_ports: input packets counted, then dropped.
NFT_TABLE = "nppolicy"


def nft_counters(ns: str, ports: list[tuple[str, int]], drop_ports: list[int] = ()) -> None:
    rules_in = "\n".join(f"    ip saddr {IP_UI} {p} dport {n} counter" for p, n in ports)
    rules_in += "\n" + "\n".join(f"    ip saddr {IP_UI} tcp dport {n} counter drop" for n in drop_ports)
    rules_out = "\n".join(f"    ip daddr {IP_UI} {p} sport {n} counter" for p, n in ports)
    run(["nft", "-f", "-"], netns=ns, input=f"""
table inet {NFT_TABLE} {{
  chain input {{ type filter hook input priority 0; policy accept;
{rules_in}
  }}
  chain output {{ type filter hook output priority 0; policy accept;
{rules_out}
  }}
}}
""")


def nft_read(ns: str) -> dict[tuple[str, str, int], int]:
    """(chain, protocol, port) -> packets."""
    doc = json.loads(run(["nft", "-j", "list", "table", "inet", NFT_TABLE], netns=ns).stdout)
    out = {}
    for item in doc["nftables"]:
        r = item.get("rule")
        if not r:
            continue
        packets, proto, port = None, None, None
        for e in r["expr"]:
            if "counter" in e:
                packets = e["counter"]["packets"]
            m = e.get("match")
            if m and isinstance(m.get("left"), dict) and "payload" in m["left"]:
                pl = m["left"]["payload"]
                if pl.get("field") in ("dport", "sport"):
                    proto, port = pl["protocol"], m["right"]
        if packets is not None and port is not None:
            out[(r["chain"], proto, port)] = packets
    return out


class PolicyTest(E2ETestCase):
    def setUp(self):
        require_tools("openssl", "nft", "ethtool")
        self.api = test_k8s.FakeApiServer(self)
        up = lambda res, obj: self.api.control("upsert", {"resource": res, "object": obj})
        for ns in ("frontend", "shop"):
            up("namespaces", namespace(ns))
        up("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": "uid-node-e2e"},
                     "status": {"addresses": [{"type": "InternalIP", "address": IP_NODE},
                                              {"type": "Hostname", "address": NODE}]}})
        up("pods", pod("frontend", "ui", IP_UI, "ui"))
        up("pods", pod("shop", "web", IP_WEB, "web", ports=[{"name": "http", "containerPort": 8080}]))
        up("pods", pod("shop", "db", IP_DB, "db"))
        up("pods", pod("shop", "elsewhere", IP_ELSEWHERE, "web", node="node-other",
                       ports=[{"name": "http", "containerPort": 8080}]))
        up("networkpolicies", DEFAULT_DENY)
        up("networkpolicies", ALLOW_FRONTEND)
        br = self.make_bridge()
        self.ns_ui, veth_ui = self.make_pod_netns(br, IP_UI)
        self.veth_ui = veth_ui
        self.ns_web, veth_web = self.make_pod_netns(br, IP_WEB)
        self.ns_db, veth_db = self.make_pod_netns(br, IP_DB)
        # The agent counts wire packets (a TSO/GSO skb as its segments); nft counts skbs:
        # without segmentation offloads each packet is one skb for both.
        for ns in (self.ns_ui, self.ns_web, self.ns_db):
            run(["ethtool", "-K", "eth0", "tso", "off", "gso", "off"], netns=ns)
        nft_counters(self.ns_web, [("tcp", 8080)])
        nft_counters(self.ns_db, [("tcp", 5432), ("udp", 5353)])
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        env["NODE_NAME"] = NODE
        self.agent = self.start_agent(f"--interface-filter={veth_ui},{veth_web},{veth_db}",
                                      "--collect-interval=300ms", f"--kubeconfig={self.api.kubeconfig()}",
                                      "--socket-monitor=off", env=env)

    def serve(self, code: str, ns: str, ip: str, port: int, name: str) -> None:
        p = self.spawn([PYTHON, "-c", code, ip, str(port)], netns=ns, stdout=subprocess.PIPE, name=name)
        self.defer(f"{name}'s stdout", p.p.stdout.close)
        r, _, _ = select.select([p.p.stdout], [], [], 30)
        self.assertTrue(r and p.p.stdout.readline().startswith(b"LISTENING"), f"{name} did not start")

    def policies(self) -> dict:
        return self.agent.get_json("/api/v1/policies")

    def test_verdicts_gaps_and_enforcement(self):
        a = self.agent
        # the set: both policies, the pods of this node and of the other one
        doc = wait_for(lambda: (d := self.policies())["synced"] and len(d["policies"]) == 2 and d, 30,
                       "the policy set")
        self.assertEqual(doc["set"]["generation"], 1)
        self.assertEqual(doc["set"]["pods"], 4)
        self.assertEqual(doc["rejected"], [])
        pols = {p["name"]: p for p in doc["policies"]}
        self.assertEqual(pols["default-deny"]["pods"], ["shop/db", "shop/elsewhere", "shop/web"])
        self.assertEqual(pols["default-deny"]["policy_types"], ["Ingress"])
        self.assertEqual(pols["allow-frontend"]["pods"], ["shop/elsewhere", "shop/web"])
        m = a.metrics()
        for res in ("networkpolicies", "namespaces", "nodes", "remote_pods"):
            self.assertEqual(m.get("netprobe_k8s_synced", resource=res), 1, res)
        self.assertEqual(m.get("netprobe_k8s_objects", kind="networkpolicies"), 2)
        self.assertEqual(m.get("netprobe_k8s_objects", kind="remote_pods"), 1)
        self.assertEqual(m.get("netprobe_k8s_objects", kind="pods"), 3)  # attribution: this node's only

        # A, B, C: no CNI, nothing enforced
        self.serve(test_k8s.SERVER, self.ns_web, IP_WEB, 8080, "web-server")
        self.serve(test_k8s.SERVER, self.ns_db, IP_DB, 5432, "db-server")
        self.serve(UDP_ECHO, self.ns_db, IP_DB, 5353, "udp-echo")
        for _ in range(3):
            self.assertEqual(run([PYTHON, "-c", test_k8s.CLIENT, IP_WEB, "8080"], netns=self.ns_ui).stdout.strip(), "1000")
        for _ in range(2):
            self.assertEqual(run([PYTHON, "-c", test_k8s.CLIENT, IP_DB, "5432"], netns=self.ns_ui).stdout.strip(), "1000")
        out = run([PYTHON, "-c", UDP_CLIENT, IP_DB, "5353", str(UDP_DATAGRAMS)], netns=self.ns_ui).stdout.strip()
        self.assertEqual(out, str(UDP_DATAGRAMS))

        web, db = nft_read(self.ns_web), nft_read(self.ns_db)
        a_out, a_in = web[("input", "tcp", 8080)], web[("output", "tcp", 8080)]
        b_out, b_in = db[("input", "tcp", 5432)], db[("output", "tcp", 5432)]
        c_out, c_in = db[("input", "udp", 5353)], db[("output", "udp", 5353)]
        self.assertEqual((c_out, c_in), (UDP_DATAGRAMS, UDP_DATAGRAMS))
        log(f"sent (nft): A ui->web:8080 {a_out}+{a_in}, B ui->db:5432 {b_out}+{b_in}, C ui->db:5353/udp {c_out}+{c_in}")

        def fig(m, ns, pol, verdict, what="packets"):
            return m.get_or(f"netprobe_policy_{what}_total", 0, namespace=ns, policy=pol, verdict=verdict)

        want = {("shop", "allow-frontend", "allowed"): (1, a_out + a_in),
                ("shop", "default-deny", "denied"): (2, b_out + b_in + c_out + c_in),
                ("frontend", "", "not_selected"): (3, a_out + a_in + b_out + b_in + c_out + c_in)}

        def counted():
            m = a.metrics()
            got = {k: (fig(m, *k, what="flows"), fig(m, *k)) for k in want}
            return got if got == want else log(f"agent so far: {got}, want {want}")
        wait_for(counted, 30, "the policy counters to reach the packets sent", interval=0.5)
        m = a.metrics()
        self.assertEqual(m.get("netprobe_policy_enforcement_gaps_total"), 2)
        self.assertEqual(m.get("netprobe_policy_enforcement_confirmed_total"), 0)
        self.assertEqual(m.get("netprobe_policy_denied_conversations_total"), 2)
        self.assertEqual(m.find("netprobe_policy_flows_total", verdict="denied", policy="allow-frontend"), [])
        doc = self.policies()
        gaps = {(g["port"], g["protocol"]): g for g in doc["gaps"]}
        self.assertEqual(set(gaps), {(5432, "tcp"), (5353, "udp")})
        for g in gaps.values():
            self.assertEqual((g["client"], g["server"], g["client_pod"], g["server_pod"]),
                             (IP_UI, IP_DB, "frontend/ui", "shop/db"))
            self.assertEqual(g["egress"]["decision"], "not_selected")
            self.assertEqual((g["ingress"]["decision"], g["ingress"]["policies"]), ("denied", ["shop/default-deny"]))
            self.assertEqual(g["enforcement"], "gap")
            self.assertGreater(g["packets_in"], 0)
        denied = {d["port"]: d for d in doc["denied"]}
        self.assertEqual((denied[5432]["packets_out"], denied[5432]["packets_in"]), (b_out, b_in))
        self.assertEqual((denied[5353]["packets_out"], denied[5353]["packets_in"]), (c_out, c_in))
        pols = {p["name"]: p for p in doc["policies"]}
        self.assertEqual(pols["default-deny"]["enforcement_gaps"], 2)
        self.assertEqual(pols["default-deny"]["hits"]["denied"], {"flows": 2, "packets": b_out + b_in + c_out + c_in})
        self.assertEqual(pols["allow-frontend"]["hits"]["allowed"], {"flows": 1, "packets": a_out + a_in})
        # the gaps are a security event: one incident for db's isolation by default-deny
        ev = wait_for(lambda: next((e for e in a.get_json("/api/v1/events")["events"]
                                    if e["type"] == "policy_enforcement_gap"), None), 20,
                      "a policy_enforcement_gap event")
        self.assertEqual((ev["severity"], ev["src_ip"], ev["dst_ip"]), ("high", IP_UI, IP_DB))
        self.assertEqual((ev["evidence"]["side"], ev["evidence"]["pod"], ev["evidence"]["policies"]),
                         ("ingress", "shop/db", ["shop/default-deny"]))
        wait_for(lambda: next(e for e in a.get_json("/api/v1/events")["events"] if e["id"] == ev["id"])
                 ["evidence"]["conversations"] == 2, 10, "both gaps in the event")
        self.assertEqual(a.metrics().get("netprobe_security_events_total", type="policy_enforcement_gap"), 1)
        log(f"agent: gaps {m.get('netprobe_policy_enforcement_gaps_total')}, "
            f"denied packets {fig(m, 'shop', 'default-deny', 'denied')}, allowed packets "
            f"{fig(m, 'shop', 'allow-frontend', 'allowed')}")

        # D: web's namespace drops ui -> web:9090 (the policy allows only "http"): confirmed
        run(["nft", "add", "rule", "inet", NFT_TABLE, "input", "ip", "saddr", IP_UI, "tcp", "dport", "9090",
             "counter", "drop"], netns=self.ns_web)
        out = run([PYTHON, "-c", CONNECT, IP_WEB, "9090", "2.5"], netns=self.ns_ui).stdout.strip()
        self.assertEqual(out, "timeout")
        d_out = nft_read(self.ns_web)[("input", "tcp", 9090)]
        self.assertGreaterEqual(d_out, 2)  # the SYN and its retransmission

        def confirmed():
            doc = self.policies()
            d = next((d for d in doc["denied"] if d["port"] == 9090), None)
            return d if d and d["enforcement"] == "enforced" else None
        d = wait_for(confirmed, 20, "ui -> web:9090 to be confirmed as enforced")
        self.assertEqual((d["packets_out"], d["packets_in"]), (d_out, 0))
        self.assertEqual(d["ingress"]["policies"], ["shop/allow-frontend", "shop/default-deny"])
        m = a.metrics()
        self.assertEqual(m.get("netprobe_policy_enforcement_confirmed_total"), 1)
        self.assertEqual(m.get("netprobe_policy_enforcement_gaps_total"), 2)
        self.assertEqual(m.get("netprobe_policy_denied_conversations_total"), 3)
        self.assertEqual(fig(m, "shop", "allow-frontend", "denied", "flows"), 1)
        self.assertEqual(fig(m, "shop", "allow-frontend", "denied"), d_out)
        self.assertEqual(fig(m, "shop", "default-deny", "denied", "flows"), 3)
        self.assertEqual(fig(m, "shop", "default-deny", "denied"), b_out + b_in + c_out + c_in + d_out)
        log(f"D ui->web:9090: {d_out} SYNs dropped by nft, agent: {d['packets_out']} out / {d['packets_in']} in, "
            f"enforced; confirmed total {m.get('netprobe_policy_enforcement_confirmed_total')}")
        status, _, text = a.request("/metrics")
        p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), "promtool check metrics")

        # the allow policy deleted: a new set (debounced), its series gone
        self.api.control("delete", {"resource": "networkpolicies", "uid": "uid-np-allow-frontend"})
        doc = wait_for(lambda: (d := self.policies())["set"]["generation"] >= 2 and d, 30, "a new policy set")
        self.assertEqual([p["name"] for p in doc["policies"]], ["default-deny"])
        self.assertEqual(a.metrics().find("netprobe_policy_flows_total", policy="allow-frontend"), [])

    def test_off_without_kubeconfig(self):
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        b = self.start_agent(f"--interface-filter={self.veth_ui}", "--collect-interval=300ms", "--socket-monitor=off", env=env)
        self.assertEqual(b.get_json("/api/v1/policies"), {"enabled": False})
        self.assertFalse([s for s in b.metrics().samples if s.name.startswith("netprobe_policy_")])


if __name__ == "__main__":
    unittest.main()
