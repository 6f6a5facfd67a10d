"""Automatic response end to end: the agent with --kubeconfig (tests/k8s/fake_apiserver.py, which
accepts NetworkPolicy writes like the API server and sends their watch events) watching "pods" that
are network namespaces on a bridge, and a scanner namespace that is no pod. Real nmap scans make
port_scan events; the agent answers with NetworkPolicies:

  on       the scanner is isolated from shop/web (ingress from everything but its /32): the
           first create is refused with 403 (RBAC missing) and retried; the policy exists in the
           API with the expected spec; this test then plays the CNI and enforces exactly what the
           created policy says (an nft drop of its except addresses in web's namespace): the
           scanner's connection to web:8080 times out and the response is verified as enforced
           with the dropped SYNs nft counted; the drop removed, the same connection is answered
           and the response reports an enforcement gap; the benign ui pod keeps its access
           throughout. The TTL ends it: the policy is deleted from the API.
           At start, the agent deletes an expired policy a previous run left and keeps an
           unexpired one until its annotation's expiry (then deletes it).
  dry-run  nothing is written to the API; the YAML is in /api/v1/responses and the log; a
           pod already isolated by another policy (shop/db under default-deny) is refused with
           the policy named; a pod of this node connecting to a threat-intel address is
           quarantined (ingress none, egress DNS only).
Wrong flags exit with an error."""

import json
import os
import select
import subprocess
import time
import unittest

import test_k8s
from netprobe_e2e import AGENT, PID, PYTHON, E2ETestCase, log, require_tools, run, wait_for

NODE = "node-e2e"
SUBNET = f"198.18.{PID % 250}"
IP_UI, IP_WEB, IP_DB, IP_SCANNER = f"{SUBNET}.31", f"{SUBNET}.32", f"{SUBNET}.33", f"{SUBNET}.34"
NFT_TABLE = "nprespond"
TTL = 40

CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error", e)
"""

SECURITY = "scan:\n  window: 5s\n  end_after: 1500ms\n"


def pod(ns: str, name: str, ip: str, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {"app": app}},
            "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "example:1"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": f"uid-ns-{name}", "labels": {"kubernetes.io/metadata.name": name}}}


def leftover(name: str, expires: str) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-np-{name}",
                         "labels": {"app.kubernetes.io/managed-by": "netprobe", "netprobe.io/response": "isolate",
                                    "netprobe.io/node": NODE},
                         "annotations": {"netprobe.io/expires-at": expires}},
            "spec": {"podSelector": {"matchLabels": {"app": "old"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["198.18.255.1/32"]}}]}]}}


def utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class RespondTest(E2ETestCase):
    def setUp(self):
        require_tools("openssl", "nft", "nmap", "timeout")
        self.api = test_k8s.FakeApiServer(self)
        up = lambda res, obj: self.api.control("upsert", {"resource": res, "object": obj})
        for ns in ("frontend", "shop"):
            up("namespaces", namespace(ns))
        up("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "uid": "uid-node-e2e"},
                     "status": {"addresses": [{"type": "InternalIP", "address": f"{SUBNET}.250"}]}})
        up("pods", pod("frontend", "ui", IP_UI, "ui"))
        up("pods", pod("shop", "web", IP_WEB, "web"))
        up("pods", pod("shop", "db", IP_DB, "db"))
        self.up = up
        br = self.make_bridge()
        self.ns_ui, veth_ui = self.make_pod_netns(br, IP_UI)
        self.ns_web, veth_web = self.make_pod_netns(br, IP_WEB)
        self.ns_db, veth_db = self.make_pod_netns(br, IP_DB)
        self.ns_scan, veth_scan = self.make_pod_netns(br, IP_SCANNER)
        self.veths = f"{veth_ui},{veth_web},{veth_db},{veth_scan}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        self.env["NODE_NAME"] = NODE
        self.sec = os.path.join(self.tmpdir(), "security.yaml")
        with open(self.sec, "w") as f:
            f.write(SECURITY)

    def agent(self, *extra: str):
        return self.start_agent(f"--interface-filter={self.veths}", "--collect-interval=300ms",
                                f"--kubeconfig={self.api.kubeconfig()}", "--socket-monitor=off",
                                f"--security-config={self.sec}", *extra, env=self.env)

    def serve(self, ns: str, ip: str, port: int, name: str) -> None:
        p = self.spawn([PYTHON, "-c", test_k8s.SERVER, ip, str(port)], netns=ns, stdout=subprocess.PIPE, name=name)
        self.defer(f"{name}'s stdout", p.p.stdout.close)
        r, _, _ = select.select([p.p.stdout], [], [], 30)
        self.assertTrue(r and p.p.stdout.readline().startswith(b"LISTENING"), f"{name} did not start")

    def scan(self, *targets: str) -> None:
        p = run(["timeout", "60", "nmap", "-n", "-Pn", "-T5", "--max-retries", "0", "-sS", "-p", "1-100",
                 "-e", "eth0", *targets], netns=self.ns_scan)
        log(f"nmap: {p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''}")

    def connect(self, ns: str, ip: str, port: int, timeout: float = 2.5) -> str:
        return run([PYTHON, "-c", CONNECT, ip, str(port), str(timeout)], netns=ns).stdout.strip()

    def stats(self) -> dict:
        return self.api.get("/control/stats")

    def writes(self) -> list[dict]:
        return self.stats()["writes"]

    def api_policies(self) -> dict:
        doc = self.api.get("/apis/networking.k8s.io/v1/networkpolicies")
        return {f'{o["metadata"]["namespace"]}/{o["metadata"]["name"]}': o for o in doc["items"]}

    def responses(self, agent) -> dict:
        return agent.get_json("/api/v1/responses")

    def test_isolate_verify_gap_expire(self):
        now = time.time()
        self.up("networkpolicies", leftover("netprobe-isolate-0expired", utc(now - 60)))
        self.up("networkpolicies", leftover("netprobe-isolate-0adopted", utc(now + 25)))
        self.serve(self.ns_web, IP_WEB, 8080, "web-server")
        a = self.agent("--respond=on", f"--respond-ttl={TTL}s")
        wait_for(lambda: a.get_json("/api/v1/policies")["synced"], 30, "the policy set")
        # at start: the expired leftover deleted, the other kept
        wait_for(lambda: {"method": "DELETE", "status": 200,
                          "path": "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/netprobe-isolate-0expired"}
                 in self.writes(), 20, "the expired leftover to be deleted")
        self.assertIn("shop/netprobe-isolate-0adopted", self.api_policies())
        wait_for(lambda: self.responses(a).get("applier", {}).get("adopted") == 1, 10, "the leftover to be adopted")
        # the next write is refused as without the RBAC of deploy/respond; retried after 10 s
        self.api.control("fail", {"resource": "networkpolicies:write", "status": 403, "count": 1})
        self.assertEqual(self.connect(self.ns_ui, IP_WEB, 8080), "connected")

        self.scan(IP_WEB)
        r = wait_for(lambda: next((x for x in self.responses(a)["responses"] if x["state"] == "failed"), None), 30,
                     "the first create to fail (403)")
        self.assertIn("403", r["error"])
        self.assertIn("forbidden", r["error"])
        r = wait_for(lambda: next((x for x in self.responses(a)["responses"] if x["state"] == "active"), None), 30,
                     "the response policy to be created")
        name = r["name"]
        self.assertTrue(name.startswith("netprobe-isolate-"), name)
        self.assertEqual((r["namespace"], r["action"], r["pod"], r["selected_pods"]),
                         ("shop", "isolate", "shop/web", ["shop/web"]))
        self.assertEqual([x["address"] for x in r["attackers"]], [IP_SCANNER])
        self.assertIn("port_scan", r["event_types"])
        posts = [w for w in self.writes() if w["method"] == "POST"]
        self.assertEqual([w["status"] for w in posts], [403, 201], posts)
        obj = self.api_policies()[f"shop/{name}"]
        self.assertEqual(obj["metadata"]["labels"], {"app.kubernetes.io/managed-by": "netprobe",
                                                     "netprobe.io/response": "isolate", "netprobe.io/node": NODE})
        self.assertEqual(obj["spec"]["podSelector"], {"matchLabels": {"app": "web"}})
        self.assertEqual(obj["spec"]["policyTypes"], ["Ingress"])
        self.assertEqual(obj["spec"]["ingress"], [{"from": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": [f"{IP_SCANNER}/32"]}},
            {"ipBlock": {"cidr": "::/0"}},
            {"namespaceSelector": {}}]}])
        exp = obj["metadata"]["annotations"]["netprobe.io/expires-at"]
        log(f"created {name}: expires {exp}, events {obj['metadata']['annotations']['netprobe.io/events']}")

        # this test is the CNI: it enforces what the created policy says
        excepts = obj["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"]
        rules = "\n".join(f"    ip saddr {c} tcp dport 8080 counter drop" for c in excepts)
        run(["nft", "-f", "-"], netns=self.ns_web, input=f"""
table inet {NFT_TABLE} {{
  chain input {{ type filter hook input priority 0; policy accept;
{rules}
  }}
}}
""")
        self.defer("nft table", lambda: run(["nft", "delete", "table", "inet", NFT_TABLE], netns=self.ns_web,
                                            check=False))
        wait_for(lambda: next(x for x in self.responses(a)["responses"] if x["name"] == name)["verification"]
                 ["in_policy_set"], 20, "the policy to reach the agent's policy set")
        self.assertEqual(self.connect(self.ns_scan, IP_WEB, 8080), "timeout")
        self.assertEqual(self.connect(self.ns_ui, IP_WEB, 8080), "connected")  # everyone else still admitted
        doc = json.loads(run(["nft", "-j", "list", "table", "inet", NFT_TABLE], netns=self.ns_web).stdout)
        dropped = next(e["counter"]["packets"] for i in doc["nftables"] if "rule" in i
                       for e in i["rule"]["expr"] if "counter" in e)
        self.assertGreaterEqual(dropped, 2)  # the SYN and its retransmission

        def verified(state):
            def f():
                x = next(x for x in self.responses(a)["responses"] if x["name"] == name)
                fl = next((fl for fl in x["verification"]["flows"] if fl["port"] == 8080), None)
                return x if x["verification"]["state"] == state and fl and fl["enforcement"] == state else None
            return f
        r = wait_for(verified("enforced"), 20, "the response to be verified as enforced")
        fl = next(fl for fl in r["verification"]["flows"] if fl["port"] == 8080)
        self.assertEqual((fl["client"], fl["server"], fl["server_pod"], fl["packets_out"], fl["packets_in"]),
                         (IP_SCANNER, IP_WEB, "shop/web", dropped, 0))
        self.assertEqual(r["verification"]["gaps"], 0)
        log(f"enforced: {dropped} SYNs dropped (nft), agent {fl['packets_out']} out / {fl['packets_in']} in; "
            f"{r['verification']['denied_conversations']} denied conversations")
        m = a.metrics()
        self.assertEqual(m.get("netprobe_response_policies", action="isolate", state="active"), 1)
        self.assertEqual(m.get("netprobe_response_verification", state="enforced"), 1)
        self.assertEqual(m.get("netprobe_response_api_requests_total", op="create"), 1)
        self.assertGreaterEqual(m.get("netprobe_response_api_failures_total"), 1)

        # the CNI stops enforcing: the same connection is answered, an enforcement gap
        run(["nft", "flush", "table", "inet", NFT_TABLE], netns=self.ns_web)
        self.assertEqual(self.connect(self.ns_scan, IP_WEB, 8080), "connected")
        r = wait_for(verified("gap"), 20, "the response to report an enforcement gap")
        self.assertEqual(r["verification"]["gaps"], 1)
        self.assertEqual(a.metrics().get("netprobe_response_verification", state="gap"), 1)

        # the adopted leftover is deleted at its expiry, the response at its TTL
        wait_for(lambda: "shop/netprobe-isolate-0adopted" not in self.api_policies(), 40,
                 "the adopted leftover to be deleted at its expiry")
        wait_for(lambda: f"shop/{name}" not in self.api_policies(), TTL + 30, "the response to expire")
        doc = self.responses(a)
        self.assertEqual(doc["responses"], [])
        ended = next(x for x in doc["ended"] if x["name"] == name)
        wait_for(lambda: next(x for x in self.responses(a)["ended"] if x["name"] == name)["state"] == "deleted", 10,
                 "the ended response to show as deleted")
        m = a.metrics()
        self.assertEqual(m.get("netprobe_response_expired_total"), 1)
        self.assertEqual(m.get("netprobe_response_api_requests_total", op="delete"), 3)
        log(f"expired at {ended['ended_at']} (annotation {exp}); writes: "
            f"{[(w['method'], w['path'].rsplit('/', 1)[-1], w['status']) for w in self.writes()]}")

    def test_dry_run_refusal_and_quarantine(self):
        # db is isolated by someone else's default-deny: a deny cannot be added to it
        self.up("networkpolicies", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                    "metadata": {"name": "default-deny", "namespace": "shop", "uid": "uid-np-dd"},
                                    "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                                             "policyTypes": ["Ingress"]}})
        feed = os.path.join(self.tmpdir(), "bad.txt")
        with open(feed, "w") as f:
            f.write(f"{IP_SCANNER}\n")
        intel = os.path.join(self.tmpdir(), "intel.yaml")
        with open(intel, "w") as f:
            f.write(f"feeds:\n  - name: c2\n    type: plain\n    path: {feed}\n    confidence: 90\n")
        a = self.agent("--respond=dry-run", f"--intel-config={intel}")
        wait_for(lambda: a.get_json("/api/v1/policies")["synced"], 30, "the policy set")
        wait_for(lambda: (d := a.get_json("/api/v1/intel")).get("generation", 0) >= 1 and d["feeds"] and
                 all(f["status"] == "ok" for f in d["feeds"]), 30, "the feed")
        self.scan(IP_WEB, IP_DB)
        doc = wait_for(lambda: (d := self.responses(a))["responses"] and d["refused"] and d, 30,
                       "a dry-run response and a refusal")
        self.assertEqual(doc["mode"], "dry-run")
        r = doc["responses"][0]
        self.assertEqual((r["state"], r["action"], r["pod"]), ("dry_run", "isolate", "shop/web"))
        self.assertEqual(r["verification"]["state"], "not_applied")
        self.assertIn(f"- {IP_SCANNER}/32", r["yaml"])
        self.assertIn("kind: NetworkPolicy", r["yaml"])
        # the scanner is also listed: its probes make threat_intel_match events too, refused alike
        f = doc["refused"][0]
        self.assertEqual((f["pod"], f["action"], f["attackers"]), ("shop/db", "isolate", [IP_SCANNER]))
        self.assertIn(f["event_type"], ("port_scan", "threat_intel_match"))
        self.assertIn("isolated for ingress by shop/default-deny", f["reason"])

        # ui talks to the listed address: an outbound intel match, ui quarantined
        self.serve(self.ns_scan, IP_SCANNER, 8443, "c2-server")
        self.assertEqual(self.connect(self.ns_ui, IP_SCANNER, 8443), "connected")
        q = wait_for(lambda: next((x for x in self.responses(a)["responses"] if x["action"] == "quarantine"), None),
                     30, "a quarantine of the ui pod")
        self.assertEqual((q["pod"], q["namespace"], q["event_types"]), ("frontend/ui", "frontend", "threat_intel_match"))
        spec = q["manifest"]["spec"]
        self.assertEqual(spec["policyTypes"], ["Ingress", "Egress"])
        self.assertEqual(spec["ingress"], [])
        self.assertEqual(spec["egress"], [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}])
        # the applier logs each once, on its own thread (every second)
        wait_for(lambda: f"response (dry-run): would apply NetworkPolicy shop/{r['name']}" in (o := a.proc.output())
                 and f"would apply NetworkPolicy frontend/{q['name']}" in o, 10, "the dry-run log lines")
        self.assertEqual(self.writes(), [])  # nothing written in dry-run
        m = a.metrics()
        self.assertEqual(m.get("netprobe_response_mode", mode="dry-run"), 1)
        self.assertEqual(m.get("netprobe_response_policies", action="isolate", state="dry_run"), 1)
        self.assertEqual(m.get("netprobe_response_policies", action="quarantine", state="dry_run"), 1)
        self.assertGreaterEqual(m.get("netprobe_response_refused_total"), 1)
        status, _, text = a.request("/metrics")
        p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), "promtool check metrics")

    def test_flags(self):
        for args, msg in ((["--respond=yes"], 'invalid --respond "yes"'),
                          (["--respond-ttl=0s"], "--respond-ttl 0s: must be 1s-30d"),
                          (["--respond-events=port_scan,nope"], 'invalid --respond-events type "nope"'),
                          (["--respond-min-severity=urgent"], 'invalid --respond-min-severity "urgent"'),
                          (["--respond=on", "--k8s=off"], "--respond needs Kubernetes")):
            p = subprocess.run([AGENT, *args, "--interface-filter=lo", "--metrics-port=18998", "--socket-monitor=off"],
                               capture_output=True, text=True, timeout=60, env=self.env)
            self.assertNotEqual(p.returncode, 0, args)
            self.assertIn(msg, p.stdout + p.stderr, args)
        b = self.start_agent("--interface-filter=lo", "--socket-monitor=off", env=self.env)
        self.assertEqual(b.get_json("/api/v1/responses"), {"enabled": False})


if __name__ == "__main__":
    unittest.main()
