"""Containers and network namespaces end to end, with and without Kubernetes.

Two "pods" are network namespaces on a bridge (as a bridge CNI wires them), each with a
host-side veth; their processes run in kubelet-style cgroups created under the real
cgroup v2 hierarchy (systemd driver for the server, cgroupfs driver for the client, as
two nodes might use). Oracles: the cgroup directory's inode (= the kernel's cgroup id),
/proc/PID/cgroup, the /run/netns file's inode, `ip -j link` (link_netnsid, peer index)
and `ip netns list-id`; with Kubernetes, tests/k8s/fake_apiserver.py's own request log.
Everything (processes, cgroups, namespaces, veths, the bridge) is removed at cleanup."""

import json
import os
import select
import signal
import subprocess
import time
import unittest

from netprobe_e2e import PID, PREFIX, PYTHON, E2ETestCase, log, require_tools, run, unique_index, wait_for
import test_k8s  # its helpers; importing the test class by name would run its tests here too
from test_k8s import CLIENT, NODE, SERVER, FakeApiServer, pod

SUBNET = f"198.18.{(PID + 97) % 250}"
IP_UI, IP_WEB = f"{SUBNET}.21", f"{SUBNET}.22"
PORT = 8080
CID_WEB = "5e" * 32
CID_UI = "c1" * 32
UID_WEB = "7b2d1a3c-0e4f-4a5b-9c6d-1e2f3a4b5c6d"
UID_UI = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"


def cgroup2_mount() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    raise AssertionError("no cgroup v2 mount")


class ContainersBase(E2ETestCase):
    make_bridge = test_k8s.K8sTest.make_bridge
    make_pod_netns = test_k8s.K8sTest.make_pod_netns

    def make_cgroup(self, rel: str) -> str:
        """Creates <v2 mount>/<npe{pid}c{n}>/<rel>; cleanup kills its processes and removes it."""
        top = os.path.join(cgroup2_mount(), f"{PREFIX}{PID}c{unique_index()}")
        leaf = os.path.join(top, rel)
        os.makedirs(leaf)

        def remove():
            dirs = [d for d, _, _ in os.walk(top)]
            for d in dirs:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        for p in f.read().split():
                            try:
                                os.kill(int(p), signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                except OSError:
                    pass
            for d in sorted(dirs, key=len, reverse=True):
                for _ in range(100):
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)  # processes still exiting

        self.defer(f"cgroup {top}", remove)
        return leaf

    def spawn_in(self, cgroup: str, netns: str, argv: list[str], **kw):
        """A process that moves itself into cgroup, then enters netns and execs argv (one pid)."""
        script = 'echo $$ > "$1/cgroup.procs" && shift && exec ip netns exec "$@"'
        return self.spawn(["sh", "-c", script, "sh", cgroup, netns] + argv, **kw)

    def setUp(self):
        require_tools("openssl")
        br = self.make_bridge()
        self.ns_ui, self.veth_ui = self.make_pod_netns(br, IP_UI)
        self.ns_web, self.veth_web = self.make_pod_netns(br, IP_WEB)
        # the web pod: systemd cgroup driver, containerd; the ui pod: cgroupfs driver
        self.cg_web_rel = ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                           f"{UID_WEB.replace('-', '_')}.slice/cri-containerd-{CID_WEB}.scope")
        self.cg_web = self.make_cgroup(self.cg_web_rel)
        self.cg_ui = self.make_cgroup(f"kubepods/besteffort/pod{UID_UI}/{CID_UI}")

    def traffic(self, rounds: int = 3) -> tuple[int, list[int]]:
        """Server in the web pod, `rounds` client connections from the ui pod (each from its own
        process in the ui cgroup). Returns (server pid, client pids)."""
        srv = self.spawn_in(self.cg_web, self.ns_web, [PYTHON, "-c", SERVER, IP_WEB, str(PORT)],
                            stdout=subprocess.PIPE, name="web-server")
        self.defer("web server's stdout", srv.p.stdout.close)
        r, _, _ = select.select([srv.p.stdout], [], [], 30)
        self.assertTrue(r and srv.p.stdout.readline().startswith(b"LISTENING"), "test server did not start")
        clients = []
        for _ in range(rounds):
            c = self.spawn_in(self.cg_ui, self.ns_ui, [PYTHON, "-c", CLIENT, IP_WEB, str(PORT)],
                              stdout=subprocess.PIPE, name="ui-client")
            self.defer("client's stdout", c.p.stdout.close)
            self.assertEqual(c.wait(30), 0)
            self.assertEqual(c.p.stdout.read().strip(), b"1000")
            clients.append(c.pid)
        return srv.pid, clients

    def connections(self, agent, **params) -> list[dict]:
        from urllib.parse import urlencode
        return agent.get_json("/api/v1/connections?" + urlencode({"limit": 1000, **params}))["connections"]

    def check_cgroup_oracles(self, server_pid: int) -> None:
        with open(f"/proc/{server_pid}/cgroup") as f:
            v2 = [line.strip()[3:] for line in f if line.startswith("0::")][0]
        self.assertTrue(v2.endswith(self.cg_web_rel), v2)
        self.web_cgroup_path = v2


class ContainersWithoutKubernetes(ContainersBase):
    def test_container_ids_and_veth_namespaces(self):
        env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        a = self.start_agent(f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=300ms",
                             env=env)
        server_pid, client_pids = self.traffic()
        self.check_cgroup_oracles(server_pid)
        web_cg_id = os.stat(self.cg_web).st_ino
        ui_cg_id = os.stat(self.cg_ui).st_ino
        web_netns = os.stat(f"/run/netns/{self.ns_web}").st_ino
        ui_netns = os.stat(f"/run/netns/{self.ns_ui}").st_ino

        # /api/v1/connections: the server's accepted sockets (created in softirq, cgroup
        # inherited from the listener) and the clients' sockets carry their container
        def records():
            srv = [c for c in self.connections(a, src_port=PORT) if c["src_ip"] == IP_WEB]
            cli = [c for c in self.connections(a, dst_port=PORT) if c["dst_ip"] == IP_WEB and c["direction"] == "active"]
            return (srv, cli) if len(srv) >= 3 and len(cli) >= 3 else None

        srv, cli = wait_for(records, 30, "3 server and 3 client connection records")
        for c in srv:
            self.assertEqual(c["direction"], "passive")
            self.assertEqual(c["cgroup_id"], web_cg_id)
            self.assertEqual(c["cgroup_path"], self.web_cgroup_path)
            self.assertEqual(c["container_id"], CID_WEB)
            self.assertEqual(c["pod_uid"], UID_WEB)
            self.assertEqual(c["netns"], web_netns)
            self.assertEqual(c["host_interface"], self.veth_web)
            self.assertNotIn("pod", c)  # no Kubernetes API
        self.assertEqual(sorted(c["pid"] for c in cli), sorted(client_pids))  # connect() ran in these processes
        for c in cli:
            self.assertEqual(c["cgroup_id"], ui_cg_id)
            self.assertEqual(c["container_id"], CID_UI)
            self.assertEqual(c["pod_uid"], UID_UI)
            self.assertEqual(c["netns"], ui_netns)
            self.assertEqual(c["host_interface"], self.veth_ui)
        # processes outside containers: no container fields (this test's own sockets, say)
        for c in self.connections(a):
            if c["cgroup_id"] not in (web_cg_id, ui_cg_id):
                self.assertNotIn("container_id", c, c)

        # /api/v1/flows: a flow matched to its connection records (same 5-tuple)
        client_ports = {c["src_port"] for c in cli}
        flows = a.flows(src_ip=IP_UI, dst_ip=IP_WEB, dst_port=PORT, protocol="tcp", limit=1000)["flows"]
        self.assertTrue(flows)
        for f in flows:
            self.assertIn(f["src_port"], client_ports)
            self.assertEqual((f["src_container_id"], f["src_pod_uid"]), (CID_UI, UID_UI), f)
            self.assertEqual((f["dst_container_id"], f["dst_pod_uid"]), (CID_WEB, UID_WEB), f)
            self.assertEqual(f["container_id"], CID_UI)  # the sender's
            self.assertNotIn("src_pod", f)
        # container= (the 12-digit short id): that container's flows, both directions, and records
        by_short = a.flows(container=CID_UI[:12], limit=1000)["flows"]
        self.assertTrue(by_short)
        self.assertEqual({(f["src_ip"], f["dst_ip"]) for f in by_short}, {(IP_UI, IP_WEB), (IP_WEB, IP_UI)})
        self.assertEqual(len(self.connections(a, container=CID_WEB[:12])), 3)
        self.assertEqual(a.get_json("/api/v1/flows?container=XYZ", expect=400)["error"][:40],
                         'invalid value "XYZ" for parameter "conta')
        back = a.flows(src_ip=IP_WEB, dst_ip=IP_UI, protocol="tcp", limit=1000)["flows"]
        self.assertTrue(back)
        for f in back:
            self.assertEqual((f["container_id"], f["src_container_id"], f["dst_container_id"]), (CID_WEB, CID_WEB, CID_UI))

        # /api/v1/containers: one entry per container, its records, namespace, veth and the
        # traffic of its sockets' flows (each 5-tuple once, though seen on both veths)
        a.wait_collections(3)
        cont = {c["container_id"]: c for c in a.get_json("/api/v1/containers")["containers"]}
        self.assertEqual(set(cont), {CID_WEB, CID_UI})
        web, ui = cont[CID_WEB], cont[CID_UI]
        self.assertEqual((web["pod_uid"], web["cgroup_ids"], web["cgroup_paths"], web["netns"], web["host_interfaces"]),
                         (UID_WEB, [web_cg_id], [self.web_cgroup_path], [web_netns], [self.veth_web]))
        self.assertEqual((ui["pod_uid"], ui["cgroup_ids"], ui["netns"], ui["host_interfaces"]),
                         (UID_UI, [ui_cg_id], [ui_netns], [self.veth_ui]))
        self.assertEqual((web["connections_open"], web["connections_closed"]), (0, 3))
        self.assertEqual((ui["connections_open"], ui["connections_closed"]), (0, 3))

        def dedup(src, dst):
            seen = {}
            for f in a.flows(src_ip=src, dst_ip=dst, protocol="tcp", limit=1000)["flows"]:
                t = (f["src_port"], f["dst_port"])
                old = seen.get(t, (0, 0))
                seen[t] = (max(old[0], f["packets"]), max(old[1], f["bytes"]))
            return tuple(map(sum, zip(*seen.values())))

        up, down = dedup(IP_UI, IP_WEB), dedup(IP_WEB, IP_UI)
        self.assertGreater(up[1], 9000)
        self.assertEqual((ui["tx_packets"], ui["tx_bytes"]), up)
        self.assertEqual((web["rx_packets"], web["rx_bytes"]), up)
        self.assertEqual((web["tx_packets"], web["tx_bytes"]), down)
        self.assertEqual((ui["rx_packets"], ui["rx_bytes"]), down)
        # all protocols of each namespace: its veth's counters (ingress on the host side = sent;
        # test_counters checks those against the kernel's), at least the TCP flows' bytes
        ifs = a.interfaces()
        for c, veth, ns in ((web, self.veth_web, self.ns_web), (ui, self.veth_ui, self.ns_ui)):
            self.assertEqual((c["netns_tx_bytes"], c["netns_rx_bytes"]),
                             (ifs[veth]["ingress_bytes"], ifs[veth]["egress_bytes"]))
            self.assertGreaterEqual(c["netns_tx_bytes"], up[1] if c is ui else down[1])

        # the service map without Kubernetes: the containers are the nodes (group_by=container,
        # and workload falls back to them), the edge client container -> server container:port
        want_edge = (f"ctr:{CID_UI[:12]}", f"ctr:{CID_WEB[:12]}", PORT)
        for group in ("container", "workload"):
            def edge(group=group):
                doc = a.get_json(f"/api/v1/topology?group_by={group}&window=5m")
                edges = {(e["source"], e["target"], e["port"]): e for e in doc["edges"]}
                return (doc, edges[want_edge]) if want_edge in edges else None
            doc, e = wait_for(edge, 15, f"the containers' edge grouped by {group}")
            nodes = {n["id"]: n for n in doc["nodes"]}
            for cid, ip in ((CID_UI, IP_UI), (CID_WEB, IP_WEB)):
                n = nodes[f"ctr:{cid[:12]}"]
                self.assertEqual((n["kind"], n["container"], n["ips"]), ("container", cid[:12], [ip]), n)
            self.assertEqual(e["connections_opened"], 3)
            self.assertEqual(e["bytes_out"], up[1])  # the clients' bytes (each 5-tuple once), as the flows say
        log(f"topology by container: {e['source']} -> {e['target']}:{e['port']}, {e['connections_opened']} connections")

        # /api/v1/interfaces: the veths' peer namespaces, compared with iproute2
        ids = {e["nsid"]: e.get("name") for e in json.loads(run(["ip", "-j", "netns", "list-id"]).stdout or "[]")}
        ifs = a.interfaces()
        for veth, ns, ip, inode in ((self.veth_ui, self.ns_ui, IP_UI, ui_netns),
                                    (self.veth_web, self.ns_web, IP_WEB, web_netns)):
            link = json.loads(run(["ip", "-j", "link", "show", "dev", veth]).stdout)[0]
            peer_link = json.loads(run(["ip", "-j", "link", "show", "dev", "eth0"], netns=ns).stdout)[0]
            p = ifs[veth]["peer"]
            self.assertEqual(p["kind"], "veth")
            self.assertEqual(p["netnsid"], link["link_netnsid"])
            self.assertEqual(ids.get(p["netnsid"]), ns)
            self.assertEqual(p["netns_name"], ns)
            self.assertEqual(p["netns_inode"], inode)
            self.assertEqual(p["ifindex"], peer_link["ifindex"])
            self.assertEqual(p["name"], "eth0")
            self.assertIn(ip, p["addresses"])
            self.assertNotIn("pod", p)

        # no Kubernetes: /api/v1/pods disabled, no pod/workload/k8s series
        doc = a.get_json("/api/v1/pods")
        self.assertEqual((doc["enabled"], doc["pods"]), (False, []))
        m = a.metrics()
        for name in ("netprobe_pod_tx_bytes_total", "netprobe_workload_traffic_bytes_total", "netprobe_k8s_objects"):
            self.assertEqual(m.find(name), [], name)
        self.assertNotIn("error", a.output().lower())


class ContainersWithKubernetes(ContainersBase):
    def setUp(self):
        super().setUp()
        self.api = FakeApiServer(self)
        up = lambda res, obj: self.api.control("upsert", {"resource": res, "object": obj})
        ui = pod("frontend", "ui-7d9f8c6b5-abcde", IP_UI, "ui-7d9f8c6b5")
        ui["metadata"]["uid"] = UID_UI
        ui["status"]["containerStatuses"][0]["containerID"] = "containerd://" + CID_UI
        web = pod("shop", "web-5f7c9d-xyz12", IP_WEB, "web-5f7c9d")
        web["metadata"]["uid"] = UID_WEB
        web["status"]["containerStatuses"][0]["containerID"] = "containerd://" + CID_WEB
        up("pods", ui)
        up("pods", web)
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "NODE_NAME")}
        self.env["NODE_NAME"] = NODE

    def test_pods_workloads_and_client_health(self):
        started = time.time()
        a = self.start_agent(f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=300ms",
                             f"--kubeconfig={self.api.kubeconfig()}", env=self.env)
        # a second agent on the same veths with a workload budget of 0 (XDP off: one XDP program per device)
        b = self.start_agent(f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=300ms",
                             f"--kubeconfig={self.api.kubeconfig()}", "--xdp-mode=off", "--socket-monitor=off",
                             "--workload-metrics-limit=0", env=self.env)
        wait_for(lambda: a.get_json("/api/v1/pods")["synced"] and b.get_json("/api/v1/pods")["synced"], 30,
                 "both agents synced")
        server_pid, _ = self.traffic()
        self.check_cgroup_oracles(server_pid)

        # connections: the container's pod from the API (by UID from the cgroup path)
        def attributed():
            srv = [c for c in self.connections(a, src_port=PORT) if c["src_ip"] == IP_WEB]
            return srv if len(srv) >= 3 and all(c.get("pod") for c in srv) else None

        for c in wait_for(attributed, 30, "server records with their pod"):
            self.assertEqual((c["namespace"], c["pod"], c["workload"]), ("shop", "web-5f7c9d-xyz12", "web"))
            self.assertEqual((c["container_id"], c["pod_uid"]), (CID_WEB, UID_WEB))
        cont = {c["container_id"]: c for c in a.get_json("/api/v1/containers")["containers"]}
        self.assertEqual((cont[CID_WEB]["namespace"], cont[CID_WEB]["pod"], cont[CID_WEB]["workload"]),
                         ("shop", "web-5f7c9d-xyz12", "web"))
        self.assertEqual((cont[CID_UI]["namespace"], cont[CID_UI]["pod"]), ("frontend", "ui-7d9f8c6b5-abcde"))

        # host-side veth -> pod: on /api/v1/pods and /api/v1/interfaces
        pods = {p["name"]: p for p in a.get_json("/api/v1/pods")["pods"]}
        self.assertEqual(pods["ui-7d9f8c6b5-abcde"]["host_interfaces"], [self.veth_ui])
        self.assertEqual(pods["web-5f7c9d-xyz12"]["host_interfaces"], [self.veth_web])
        ifs = a.interfaces()
        self.assertEqual((ifs[self.veth_web]["peer"]["pod_namespace"], ifs[self.veth_web]["peer"]["pod"],
                          ifs[self.veth_web]["peer"]["pod_uid"]), ("shop", "web-5f7c9d-xyz12", UID_WEB))
        self.assertEqual(ifs[self.veth_ui]["peer"]["pod"], "ui-7d9f8c6b5-abcde")

        # workload-to-workload counters: the same packets as the pod counters (each 5-tuple
        # once, though seen on both veths) once the counters settle
        ui_web = dict(src_namespace="frontend", src_workload="ui", dst_namespace="shop", dst_workload="web")
        web_ui = dict(src_namespace="shop", src_workload="web", dst_namespace="frontend", dst_workload="ui")
        names = ["netprobe_workload_traffic_bytes_total", "netprobe_workload_traffic_packets_total",
                 "netprobe_pod_tx_bytes_total", "netprobe_pod_rx_bytes_total", "netprobe_pod_tx_packets_total"]
        m = a.wait_stable(names)
        wl_bytes = m.get("netprobe_workload_traffic_bytes_total", **ui_web)
        self.assertGreater(wl_bytes, 9000)  # 3 x 3000 bytes of payload, plus headers
        self.assertEqual(wl_bytes, m.get("netprobe_pod_tx_bytes_total", namespace="frontend", pod="ui-7d9f8c6b5-abcde"))
        self.assertEqual(wl_bytes, m.get("netprobe_pod_rx_bytes_total", namespace="shop", pod="web-5f7c9d-xyz12"))
        self.assertEqual(m.get("netprobe_workload_traffic_packets_total", **ui_web),
                         m.get("netprobe_pod_tx_packets_total", namespace="frontend", pod="ui-7d9f8c6b5-abcde"))
        self.assertEqual(m.get("netprobe_workload_traffic_bytes_total", **web_ui),
                         m.get("netprobe_pod_tx_bytes_total", namespace="shop", pod="web-5f7c9d-xyz12"))
        self.assertEqual(len(m.find("netprobe_workload_traffic_bytes_total")), 2)
        # ... and the sum of the flows, one observation per 5-tuple
        seen = {}
        for f in a.flows(src_ip=IP_UI, dst_ip=IP_WEB, limit=1000)["flows"]:
            t = (f["src_port"], f["dst_port"], f["protocol"])
            seen[t] = max(seen.get(t, 0), f["bytes"])
        self.assertEqual(sum(seen.values()), wl_bytes)

        # the budgeted agent: every pair folded into "other", same totals
        mb = b.wait_stable(["netprobe_workload_traffic_bytes_total"])
        wb = mb.find("netprobe_workload_traffic_bytes_total")
        self.assertEqual([s.labels for s in wb], [dict(src_namespace="other", src_workload="other",
                                                       dst_namespace="other", dst_workload="other")])
        self.assertEqual(wb[0].value, wl_bytes + m.get("netprobe_workload_traffic_bytes_total", **web_ui))

        # client health: objects, sync state, last-sync time; restarts and relists against
        # the fake server's own request log
        h = a.metrics()
        self.assertEqual(h.get("netprobe_k8s_objects", kind="pods"), 2)
        self.assertEqual(h.get("netprobe_k8s_synced", resource="pods"), 1)
        ts = h.get("netprobe_k8s_last_sync_timestamp_seconds", resource="pods")
        self.assertTrue(started - 1 <= ts <= time.time() + 1, ts)
        restarts0 = h.get("netprobe_k8s_watch_restarts_total", resource="pods")
        relists0 = h.get("netprobe_k8s_relists_total", resource="pods")
        self.api.control("drop", {"resource": "pods"})  # watches cut: reconnect
        wait_for(lambda: a.metrics().get("netprobe_k8s_watch_restarts_total", resource="pods") > restarts0, 30,
                 "the agent to reconnect its watch")
        self.api.control("bump", {})    # the agents' resourceVersion is now older than the newest
        self.api.control("expire", {})  # ... and compacted away: ERROR 410 on open watches, relist
        wait_for(lambda: a.metrics().get("netprobe_k8s_relists_total", resource="pods") > relists0, 30,
                 "the agent to relist after 410 Gone")

        # two agents talk to the server: their requests add up to the server's own count
        def counts_agree():
            stats = json.loads(urlopen_json(self.api, "/control/stats"))
            ms = (a.metrics(), b.metrics())
            watches = sum(x.get("netprobe_k8s_watch_restarts_total", resource="pods") + 1 for x in ms)
            lists = sum(x.get("netprobe_k8s_relists_total", resource="pods") + 1 for x in ms)
            got = (watches, lists)
            # this node's pods only: with NetworkPolicy monitoring (on by default) the agents
            # also watch the other nodes' pods (fieldSelector spec.nodeName!=...), counted as
            # resource="remote_pods"
            def local(reqs):
                return [q for q in reqs if "spec.nodeName!=" not in q.get("fieldSelector", "")]
            want = (len(local(stats["watches"]["pods"])), len(local(stats["lists"]["pods"])))
            log(f"pods watches/lists: agents {got}, fake API server {want}")
            return got == want and all(x.get("netprobe_k8s_synced", resource="pods") == 1 for x in ms)

        wait_for(counts_agree, 30, "the agents' watch/list counts to match the server's request log", interval=0.5)
        mm = a.metrics()
        self.assertGreaterEqual(mm.get("netprobe_k8s_gone_total", resource="pods"), 1)
        status, _, text = a.request("/metrics")
        p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), "promtool check metrics")

        # the web pod goes away: every pair with the web workload disappears
        self.api.control("delete", {"resource": "pods", "uid": UID_WEB})
        wait_for(lambda: not a.metrics().find("netprobe_workload_traffic_bytes_total", dst_workload="web"), 30,
                 "the deleted workload's series to disappear")
        m2 = a.metrics()
        self.assertEqual(m2.find("netprobe_workload_traffic_bytes_total", src_workload="web"), [])
        self.assertEqual(m2.find("netprobe_workload_traffic_packets_total", dst_workload="web"), [])
        self.assertEqual(m2.get("netprobe_k8s_objects", kind="pods"), 1)

    def test_workload_metrics_off(self):
        a = self.start_agent(f"--interface-filter={self.veth_ui},{self.veth_web}", "--collect-interval=300ms",
                             f"--kubeconfig={self.api.kubeconfig()}", "--workload-metrics=off", env=self.env)
        wait_for(lambda: a.get_json("/api/v1/pods")["synced"], 30, "synced")
        self.traffic(rounds=1)
        m = a.wait_stable(["netprobe_pod_tx_bytes_total"])
        self.assertGreater(m.get("netprobe_pod_tx_bytes_total", namespace="frontend", pod="ui-7d9f8c6b5-abcde"), 3000)
        self.assertEqual(m.find("netprobe_workload_traffic_bytes_total"), [])
        self.assertEqual(m.find("netprobe_workload_traffic_packets_total"), [])
        self.assertEqual(m.get("netprobe_k8s_synced", resource="pods"), 1)  # health series stay


def urlopen_json(api: FakeApiServer, path: str) -> str:
    import urllib.request
    with urllib.request.urlopen(f"https://127.0.0.1:{api.port}{path}", context=api.ssl, timeout=10) as r:
        return r.read().decode()


if __name__ == "__main__":
    unittest.main()
