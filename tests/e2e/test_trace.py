"""Packet path tracing (issue 12: GET /api/v1/trace, `netprobe trace`), end to end.

The agent runs inside the namespace whose path is traced (its netfilter hooks are its own
namespace's) and watches that namespace's veths. Oracles the project did not write: nft's
own rule counter (the drop at input), the client's own count (ping's "N received", a UDP
sender's loop), the receiving host's kernel counter (nstat IcmpInEchos), the link list
the kernel reports for the agent's process (bpftool / fdinfo).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import unittest

from e2e_inspect import proc_bpf_ids
from netprobe_e2e import AGENT, PYTHON, E2ETestCase, log, require_tools, run, wait_for

INTERVAL = "200ms"
CLI = os.path.join(os.path.dirname(AGENT), "netprobe")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("NETPROBE_BUILD_DIR") or os.path.join(REPO, "build")
CHROMIUM = "/usr/bin/chromium"
UI_TRACE = os.path.join(os.path.dirname(__file__), "ui_trace.cjs")


def stage_counts(doc: dict, direction: str) -> dict[str, int]:
    return {s["stage"]: s["packets"] for s in doc["path"][direction]}


def nf_links(pid: int) -> int:
    """Netfilter links held by the process (bpftool 7.1 prints the type as a number: 10)."""
    _, links = proc_bpf_ids(pid)
    out = json.loads(run(["bpftool", "-j", "link", "show"]).stdout or "[]")
    return sum(1 for l in out if l.get("id") in links and str(l.get("type")) in ("netfilter", "10"))


def nstat(ns: str, counter: str) -> int:
    for line in run(["nstat", "-asz", counter], netns=ns).stdout.splitlines():
        if line.startswith(counter):
            return int(line.split()[1])
    return 0


class TraceCase(E2ETestCase):
    def agent_in(self, ns: str):
        return self.start_agent(f"--collect-interval={INTERVAL}", "--socket-netns=own", netns=ns)

    def start_trace(self, agent, **params) -> int:
        q = "&".join(f"{k}={v}" for k, v in params.items())
        doc = agent.get_json(f"/api/v1/trace?{q}")
        self.assertEqual(doc["state"], "pending")
        tid = doc["id"]
        wait_for(lambda: agent.get_json(f"/api/v1/trace?id={tid}")["state"] == "running", 10, f"trace {tid} running")
        return tid

    def finished(self, agent, tid: int, timeout: float = 30) -> dict:
        def done():
            d = agent.get_json(f"/api/v1/trace?id={tid}")
            return d if d["state"] in ("finished", "failed") else None
        doc = wait_for(done, timeout, f"trace {tid} to finish")
        self.assertEqual(doc["state"], "finished", doc)
        return doc


    def nft_drop_at_input(self):
        """A client namespace <-> the server namespace, where nft drops the client's UDP to
        port 7777 at input (counted by its rule). Returns (server ns, veth, client ns,
        client ip, server ip)."""
        require_tools("nft")
        server = self.make_netns()
        v = self.make_veth(host_ns=server)  # client (a new namespace) <-> server
        client, client_ip, server_ip = v.ns, v.peer_ip, v.host_ip
        run(["nft", "-f", "-"], netns=server, input=f"""
table inet nptrace {{
  chain input {{ type filter hook input priority 0; policy accept;
    ip saddr {client_ip} udp dport 7777 counter drop
  }}
}}
""")
        self.defer("nft table nptrace", lambda: run(["nft", "delete", "table", "inet", "nptrace"], netns=server, check=False))
        run(["ping", "-c", "1", "-W", "2", server_ip], netns=client)  # ARP, so only the datagrams are left
        return server, v, client, client_ip, server_ip

    def send_udp(self, client: str, client_ip: str, server_ip: str, n: int) -> None:
        run([PYTHON, "-c", "import socket;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             f"u.bind(('{client_ip}',40000))\n"
             f"for _ in range({n}): u.sendto(b'x'*100,('{server_ip}',7777))\n"], netns=client)

    def nft_dropped(self, server: str) -> int:
        counters = json.loads(run(["nft", "-j", "list", "table", "inet", "nptrace"], netns=server).stdout)
        return [e["counter"]["packets"] for item in counters["nftables"] if "rule" in item
                for e in item["rule"]["expr"] if "counter" in e][0]


class NftDropAtInput(TraceCase):
    def test_drop_at_input_with_reason_and_nft_counter(self):
        server, v, client, client_ip, server_ip = self.nft_drop_at_input()
        agent = self.agent_in(server)
        agent.wait_collections(2)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_trace_active"), 0.0)
        self.assertEqual(m.get("netprobe_trace_hook_links"), 0.0)
        base_nf = nf_links(agent.pid)

        tid = self.start_trace(agent, src=client_ip, dst=server_ip, proto="udp", dport=7777, seconds=4)
        during = agent.metrics()
        self.assertGreater(during.get("netprobe_trace_hook_links"), 0)
        self.assertEqual(nf_links(agent.pid), base_nf + 10)  # 5 hooks x 2 families, only while tracing
        n = 25
        self.send_udp(client, client_ip, server_ip, n)
        doc = self.finished(agent, tid)
        log(f"trace: {json.dumps(doc)}")
        fwd = stage_counts(doc, "forward")
        nft_drops = self.nft_dropped(server)
        log(f"stages {fwd}, drops {doc['drops']}, nft counter {nft_drops}")
        self.assertEqual(nft_drops, n)
        # the path up to input, in order, every datagram at each stage
        self.assertEqual([s["stage"] for s in doc["path"]["forward"]][-3:], ["tc_ingress", "prerouting", "input"])
        self.assertEqual((fwd["tc_ingress"], fwd["prerouting"], fwd["input"]), (n, n, n))
        for s in ("forward", "output", "postrouting", "socket", "tc_egress"):
            self.assertNotIn(s, fwd)
        self.assertEqual(doc["path"]["reply"], [])
        # the drop at input, by the kernel's reason, as many as nft's own rule counted
        self.assertEqual([(d["stage"], d["reason"], d["direction"]) for d in doc["drops"]],
                         [("input", "NETFILTER_DROP", "forward")])
        self.assertEqual(doc["drops"][0]["packets"], nft_drops)
        ing = [s for s in doc["path"]["forward"] if s["stage"] == "tc_ingress"][0]
        self.assertEqual([(d["name"], d["packets"]) for d in ing["in"]], [(v.host, n)])

        # finished: nothing of the trace stays attached
        wait_for(lambda: agent.metrics().get("netprobe_trace_hook_links") == 0.0, 10, "trace hooks detached")
        self.assertEqual(nf_links(agent.pid), base_nf)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_trace_started_total"), 1.0)
        self.assertEqual(m.get("netprobe_trace_active"), 0.0)
        self.assertEqual(sum(s.value for s in m.find("netprobe_trace_records_lost_total")), 0.0)

        # no trace active: more traffic, and the finished trace's counts stay as they were
        run([PYTHON, "-c", "import socket;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             f"for _ in range(5): u.sendto(b'x',('{server_ip}',7777))\n"], netns=client)
        agent.wait_collections(3)
        again = agent.get_json(f"/api/v1/trace?id={tid}")
        self.assertEqual(stage_counts(again, "forward"), fwd)

        progs, _ = proc_bpf_ids(agent.pid)
        agent.stop()
        self.assertNothingAttached(v.host, netns=server, agent_prog_ids=progs)


class TraceInTheBrowser(TraceCase):
    """The web UI's packet path view (tests/e2e/ui_trace.cjs in Debian's Chromium): the form
    filled by keyboard starts the trace, and the page draws the path and the drop as the
    agent measured them, equal to nft's own rule counter."""

    def test_the_page_draws_the_path_and_the_drop(self):
        require_tools("node")
        modules = os.path.join(BUILD, "ui", "node_modules")
        if not os.path.isdir(os.path.join(modules, "playwright-core")):
            self.fail(f"{modules}/playwright-core missing (the UI build installs it)")
        server, v, client, client_ip, server_ip = self.nft_drop_at_input()
        agent = self.agent_in(server)
        agent.wait_collections(2)
        out_dir = self.tmpdir()
        spec = {"src": client_ip, "dst": server_ip, "proto": "udp", "sport": "", "dport": 7777, "seconds": 4}
        page = subprocess.Popen(
            ["ip", "netns", "exec", server, "node", UI_TRACE, f"http://127.0.0.1:{agent.port}/ui/", out_dir, json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NODE_PATH": modules, "CHROMIUM": CHROMIUM})
        self.defer("ui_trace", lambda: page.poll() is None and page.kill())
        line = page.stdout.readline()
        self.assertEqual(line.strip(), "RUNNING", line + page.stderr.read() if page.poll() is not None else line)
        n = 12
        self.send_udp(client, client_ip, server_ip, n)
        stdout, stderr = page.communicate(timeout=60)
        log(f"ui_trace: {stdout.strip()}")
        if stderr.strip():
            log(f"ui_trace stderr: {stderr.strip()[:2000]}")
        self.assertEqual(page.returncode, 0, stdout + stderr)
        res = json.loads(stdout.strip().splitlines()[-1])
        nft_drops = self.nft_dropped(server)
        self.assertEqual(nft_drops, n)
        self.assertEqual(res["console_errors"], [])
        self.assertEqual(res["state"], "finished", res)
        # what the page drew is what the agent measured, and what nft counted
        doc = agent.get_json("/api/v1/trace")["traces"][0]
        self.assertEqual([tuple(x) for x in res["paths"]["forward"]],
                         [(s["stage"], s["packets"]) for s in doc["path"]["forward"]])
        self.assertEqual([tuple(x) for x in res["paths"]["forward"]][-3:],
                         [("tc_ingress", n), ("prerouting", n), ("input", n)])
        self.assertNotIn("reply", res["paths"])
        self.assertEqual([tuple(x) for x in res["drops"]], [("input", "NETFILTER_DROP", nft_drops)])
        shot = os.path.join(out_dir, "ui-trace.png")
        self.assertGreater(os.path.getsize(shot), 1000)
        keep = os.path.join(BUILD, "test-artifacts")
        os.makedirs(keep, exist_ok=True)
        shutil.copy(shot, os.path.join(keep, "ui-trace.png"))


class ForwardedThroughRouter(TraceCase):
    def test_prerouting_forward_postrouting_and_egress_device(self):
        require_tools("ping", "nstat")
        router = self.make_netns()
        host_a, host_b = self.make_netns(), self.make_netns()
        va = self.make_veth(ns=router, host_ns=host_a)  # a (va.host_ip) <-> router (va.peer)
        vb = self.make_veth(ns=router, host_ns=host_b)  # b (vb.host_ip) <-> router (vb.peer)
        run(["sysctl", "-qw", "net.ipv4.ip_forward=1"], netns=router)
        run(["ip", "route", "add", f"{vb.host_ip}/32", "via", va.peer_ip], netns=host_a)
        run(["ip", "route", "add", f"{va.host_ip}/32", "via", vb.peer_ip], netns=host_b)
        run(["ping", "-c", "1", "-W", "2", vb.host_ip], netns=host_a)  # ARP on both legs
        agent = self.agent_in(router)
        agent.wait_collections(2)

        # through the CLI: it starts the trace, waits for it and prints the path as JSON
        cli = self.spawn([CLI, "--server", f"http://127.0.0.1:{agent.port}", "-o", "json", "trace", "icmp", va.host_ip,
                          vb.host_ip, "--seconds", "4"], netns=router, log_name="cli.json", name="netprobe-trace")
        wait_for(lambda: agent.get_json("/api/v1/trace")["active"] == 1, 10, "the CLI's trace to run")
        echos0 = nstat(host_b, "IcmpInEchos")
        k = 20
        out = run(["ping", "-c", str(k), "-i", "0.05", "-W", "2", vb.host_ip], netns=host_a).stdout
        received = int(re.search(r"(\d+) received", out).group(1))
        echos = nstat(host_b, "IcmpInEchos") - echos0
        self.assertEqual(cli.wait(30), 0, cli.output())
        doc = json.loads(cli.output())
        log(f"ping: {k} sent, {received} replies; host b IcmpInEchos +{echos}; trace {json.dumps(doc)}")
        self.assertEqual((received, echos), (k, k))
        fwd, rep = stage_counts(doc, "forward"), stage_counts(doc, "reply")
        path = ["tc_ingress", "prerouting", "forward", "postrouting", "tc_egress"]
        self.assertEqual([s["stage"] for s in doc["path"]["forward"] if s["stage"] != "xdp"], path)
        self.assertEqual({s: fwd[s] for s in path}, {s: echos for s in path})
        self.assertEqual({s: rep[s] for s in path}, {s: received for s in path})
        if "xdp" in fwd:  # XDP attached on the router's veths (native or generic)
            self.assertEqual((fwd["xdp"], rep["xdp"]), (echos, received))
        self.assertNotIn("input", fwd)
        self.assertNotIn("output", fwd)
        self.assertEqual(doc["drops"], [])
        egress = {(e["direction"], e["stage"]): (e["name"], e["packets"]) for e in doc["egress"]}
        self.assertEqual(egress[("forward", "forward")], (vb.peer, k))
        self.assertEqual(egress[("forward", "postrouting")], (vb.peer, k))
        self.assertEqual(egress[("reply", "forward")], (va.peer, k))
        # the table form names the device too
        table = run([CLI, "--server", f"http://127.0.0.1:{agent.port}", "trace", "--id", str(doc["id"])],
                    netns=router).stdout
        log(table)
        self.assertIn(f"forwarded out of {vb.peer}", table)
        self.assertRegex(table, rf"forward\s+forward\s+{k}\s")


class ApiBounds(TraceCase):
    def test_bad_parameters_full_table_and_processes(self):
        ns = self.make_netns()
        agent = self.agent_in(ns)
        for q, param in (("src=not-an-ip", "src"), ("dst=198.18.0.1&seconds=0", "seconds"),
                         ("dst=198.18.0.1&seconds=301", "seconds"), ("dst=198.18.0.1&dport=70000", "dport"),
                         ("dst=198.18.0.1&proto=bogus", "proto"), ("dport=80", "src"), ("id=abc", "id"),
                         ("src=198.18.0.1&dst=fd6e:7072::1", "dst"), ("bogus=1", "bogus"), ("id=3&dst=198.18.0.1", "id")):
            status, _, body = agent.request(f"/api/v1/trace?{q}")
            self.assertEqual(status, 400, (q, body))
            self.assertIn(param, body, q)
        self.assertEqual(agent.request("/api/v1/trace?id=999")[0], 404)
        # every slot taken -> 429 with a clear message; the table frees as traces end
        ids = [agent.get_json(f"/api/v1/trace?dst=127.0.0.1&proto=udp&dport={9000 + i}&seconds={8 if i == 0 else 2}")["id"]
               for i in range(4)]
        status, _, body = agent.request("/api/v1/trace?dst=127.0.0.1&seconds=2")
        self.assertEqual(status, 429, body)
        self.assertIn("slot", body)
        # loopback UDP in the agent's namespace: input, socket, and the receiving process
        srv = self.spawn([PYTHON, "-c", "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                          "s.bind(('127.0.0.1',9000));print('ready',flush=True)\n"
                          "for _ in range(7): s.recv(100)\n"], netns=ns, name="udp-server")
        wait_for(lambda: "9000" in run(["ss", "-lun"], netns=ns).stdout, 10, "udp server")
        wait_for(lambda: agent.get_json(f"/api/v1/trace?id={ids[0]}")["state"] == "running", 10, "traces running")
        run([PYTHON, "-c", "import socket;u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             "for _ in range(7): u.sendto(b'y'*10,('127.0.0.1',9000))\n"], netns=ns)
        self.assertEqual(srv.wait(10), 0)
        doc = self.finished(agent, ids[0])
        fwd = stage_counts(doc, "forward")
        log(f"loopback trace: {fwd}, processes {doc['processes']}")
        self.assertEqual((fwd["output"], fwd["postrouting"], fwd["prerouting"], fwd["input"]), (7, 7, 7, 7))
        self.assertEqual(fwd["socket"], 14)  # 7 sendto by the sender, 7 recv by the server
        procs = {(p["direction"], p["pid"]): p["calls"] for p in doc["processes"]}
        self.assertEqual(procs.get(("forward", srv.pid)), 7, doc["processes"])
        for i in ids[1:]:
            self.finished(agent, i)
        wait_for(lambda: agent.metrics().get("netprobe_trace_hook_links") == 0.0, 10, "trace hooks detached")
        self.assertEqual(agent.get_json(f"/api/v1/trace?dst=127.0.0.1&seconds=1")["state"], "pending")


if __name__ == "__main__":
    unittest.main()
