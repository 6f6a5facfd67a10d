"""The JSON API: /api/v1/flows filters, sorts and limits, bad parameters (400),
unknown paths (404), other methods (405), /api/v1/interfaces, /healthz, /readyz."""

import json
import socket
import time
import unittest
from datetime import datetime

from netprobe_e2e import AGENT, L2_HEADER, PYTHON, Agent, E2ETestCase, log, require_tools, run, wait_for

# Runs in the namespace: sends UDP/TCP from the namespace to the host end, prints the ports used.
SENDER = r"""
import json, socket, sys
host4, host6, udp1, udp2, udp6, tcp = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
peer4, peer6 = sys.argv[7], sys.argv[8]
out = {}
def udp(dst, port, count, size, fam=socket.AF_INET, src=peer4):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src, 0))
    for _ in range(count):
        s.sendto(b"u" * size, (dst, port))
    p = s.getsockname()[1]
    s.close()
    return p
out["udp1_src"] = udp(host4, udp1, 5, 100)
out["udp2_src"] = udp(host4, udp2, 3, 500)
out["udp6_src"] = udp(host6, udp6, 2, 64, socket.AF_INET6, peer6)
c = socket.create_connection((host4, tcp), timeout=5, source_address=(peer4, 0))
out["tcp_src"] = c.getsockname()[1]
c.sendall(b"t" * 1000)
c.shutdown(socket.SHUT_WR)
c.settimeout(5)
c.recv(10)   # EOF once the server side closes
c.close()
print(json.dumps(out))
"""

FLOW_KEYS = {"src_ip": str, "dst_ip": str, "src_port": int, "dst_port": int, "protocol": str, "packets": int,
             "bytes": int, "interface": str, "direction": str, "first_seen": str, "last_seen": str,
             "tcp_flags": list}


def parse_time(s: str) -> datetime:
    if not s.endswith("Z"):
        raise ValueError(f"not UTC RFC 3339: {s}")
    return datetime.fromisoformat(s[:-1] + "+00:00")


class ApiTest(E2ETestCase):
    def setUp(self):
        require_tools("ping")
        v = self.veth = self.make_veth()
        self.agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=300ms")
        # listeners on the host end (nothing reads the UDP ones; TCP is answered from the backlog)
        socks = []
        for fam, addr, kind in ((socket.AF_INET, v.host_ip, socket.SOCK_DGRAM),
                                (socket.AF_INET, v.host_ip, socket.SOCK_DGRAM),
                                (socket.AF_INET6, v.host_ip6, socket.SOCK_DGRAM),
                                (socket.AF_INET, v.host_ip, socket.SOCK_STREAM)):
            s = socket.socket(fam, kind)
            self.addCleanup(s.close)
            s.bind((addr, 0))
            socks.append(s)
        self.listener = socks[3]
        self.listener.listen(4)
        self.ports = {"udp1": socks[0].getsockname()[1], "udp2": socks[1].getsockname()[1],
                      "udp6": socks[2].getsockname()[1], "tcp": socks[3].getsockname()[1]}
        sender = self.spawn([PYTHON, "-c", SENDER, v.host_ip, v.host_ip6, str(self.ports["udp1"]),
                             str(self.ports["udp2"]), str(self.ports["udp6"]), str(self.ports["tcp"]), v.peer_ip,
                             v.peer_ip6], netns=v.ns, log_name="sender.log")
        conn, _ = wait_for(lambda: self._accept(), 10, "the TCP connection from the namespace")
        self.addCleanup(conn.close)
        conn.settimeout(5)
        wait_for(lambda: conn.recv(2000) == b"" or None, 10, "the client's data and FIN", interval=0.01)
        conn.close()
        self.assertEqual(sender.wait(15), 0, sender.output())
        self.src = json.loads(sender.output())
        # host -> namespace UDP (egress)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((v.host_ip, 0))
            self.egress_src = s.getsockname()[1]
            for _ in range(4):
                s.sendto(b"e" * 200, (v.peer_ip, 9))  # discard port; the namespace answers port-unreachable
        run(["ping", "-q", "-c", "3", "-i", "0.01", v.host_ip], netns=v.ns)
        self.agent.wait_collections(2)

    def _accept(self):
        self.listener.settimeout(0.2)
        try:
            return self.listener.accept()
        except socket.timeout:
            return None

    def flows(self, query: str = "") -> dict:
        res = self.agent.get_json("/api/v1/flows" + (f"?{query}" if query else ""))
        self.assertEqual(res["returned"], len(res["flows"]))
        self.assertLessEqual(res["returned"], res["total"])
        return res

    # -- /api/v1/flows ---------------------------------------------------------------

    def test_flow_schema(self):
        res = self.flows("limit=10000")
        self.assertGreaterEqual(res["total"], 6)
        self.assertEqual(res["returned"], res["total"])
        parse_time(res["collected_at"])
        for f in res["flows"]:
            for k, t in FLOW_KEYS.items():
                self.assertIsInstance(f[k], t, f"{k} of {f}")
            self.assertIn(f["direction"], ("ingress", "egress"))
            self.assertEqual(f["interface"], self.veth.host)
            self.assertLessEqual(parse_time(f["first_seen"]), parse_time(f["last_seen"]))
            self.assertGreater(f["packets"], 0)
            self.assertGreaterEqual(f["bytes"], f["packets"] * 42)  # every frame at least Ethernet + IPv4 + 8
            self.assertTrue(set(f["tcp_flags"]) <= {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"})
            if f["protocol"] != "tcp":
                self.assertEqual(f["tcp_flags"], [])
        # first_seen is at most a minute old, last_seen not in the future
        now = time.time()
        for f in res["flows"]:
            self.assertLess(abs(parse_time(f["last_seen"]).timestamp() - now), 60)

    def test_filters(self):
        v, p, s = self.veth, self.ports, self.src
        udp = self.flows("protocol=udp&limit=10000")
        self.assertTrue(udp["flows"] and all(f["protocol"] == "udp" for f in udp["flows"]))
        self.assertEqual(self.flows("protocol=17&limit=10000")["total"], udp["total"])

        one = self.flows(f"port={p['udp1']}")
        self.assertEqual(one["total"], 1, one)
        f = one["flows"][0]
        self.assertEqual((f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["protocol"], f["direction"]),
                         (v.peer_ip, s["udp1_src"], v.host_ip, p["udp1"], "udp", "ingress"))
        self.assertEqual((f["packets"], f["bytes"]), (5, 5 * (100 + 8 + 20 + L2_HEADER)))
        self.assertEqual(self.flows(f"dst_port={p['udp1']}")["flows"], one["flows"])
        self.assertEqual(self.flows(f"src_port={s['udp1_src']}&protocol=udp")["flows"], one["flows"])
        self.assertEqual(self.flows(f"port={p['udp1']}&direction=egress")["total"], 0)

        two = self.flows(f"port={p['udp2']}")["flows"]
        self.assertEqual([(x["packets"], x["bytes"]) for x in two], [(3, 3 * (500 + 8 + 20 + L2_HEADER))])

        eg = self.flows("direction=egress&limit=10000")["flows"]
        self.assertTrue(eg and all(x["direction"] == "egress" for x in eg))
        mine = [x for x in eg if x["protocol"] == "udp" and x["src_port"] == self.egress_src]
        self.assertEqual(len(mine), 1, eg)
        self.assertEqual((mine[0]["src_ip"], mine[0]["dst_ip"], mine[0]["dst_port"], mine[0]["packets"]),
                         (v.host_ip, v.peer_ip, 9, 4))
        ing = self.flows("direction=ingress&limit=10000")
        self.assertTrue(all(x["direction"] == "ingress" for x in ing["flows"]))
        self.assertEqual(ing["total"] + len(eg), self.flows("limit=10000")["total"])

        # addresses: src_ip, dst_ip, ip (either end), IPv6
        src = self.flows(f"src_ip={v.peer_ip}&limit=10000")["flows"]
        self.assertTrue(src and all(x["src_ip"] == v.peer_ip for x in src))
        dst = self.flows(f"dst_ip={v.peer_ip}&limit=10000")["flows"]
        self.assertTrue(dst and all(x["dst_ip"] == v.peer_ip for x in dst))
        both = self.flows(f"ip={v.peer_ip}&limit=10000")
        self.assertEqual(both["total"], len(src) + len(dst))
        six = self.flows(f"ip={v.peer_ip6}&protocol=udp")["flows"]
        self.assertEqual([(x["src_ip"], x["src_port"], x["dst_ip"], x["dst_port"], x["ip_version"], x["packets"])
                          for x in six], [(v.peer_ip6, s["udp6_src"], v.host_ip6, p["udp6"], 6, 2)])

        # TCP: both directions of the connection, with the flags seen
        tcp = self.flows(f"protocol=tcp&port={p['tcp']}")["flows"]
        self.assertEqual(sorted(x["direction"] for x in tcp), ["egress", "ingress"], tcp)
        client = next(x for x in tcp if x["direction"] == "ingress")
        self.assertEqual((client["src_port"], client["dst_port"]), (s["tcp_src"], p["tcp"]))
        for flag in ("SYN", "ACK", "PSH", "FIN"):
            self.assertIn(flag, client["tcp_flags"])
        self.assertGreater(client["bytes"], 1000)

        # ICMP: the host's echo replies (the namespace's requests share their flow with its
        # port-unreachable answers to the egress UDP above)
        icmp = self.flows(f"protocol=icmp&direction=egress&src_ip={v.host_ip}")["flows"]
        self.assertEqual([(x["dst_ip"], x["packets"], x["bytes"]) for x in icmp], [(v.peer_ip, 3, 3 * 98)])
        icmp_in = self.flows(f"protocol=icmp&direction=ingress&src_ip={v.peer_ip}")["flows"]
        self.assertEqual(len(icmp_in), 1)
        self.assertGreaterEqual(icmp_in[0]["packets"], 3)

        # interface
        self.assertEqual(self.flows(f"interface={v.host}&limit=10000")["total"], self.flows("limit=10000")["total"])
        self.assertEqual(self.flows("interface=nope0")["total"], 0)

        # limit: returned is cut, total is not
        all_ = self.flows("limit=10000")
        lim = self.flows("limit=1")
        self.assertEqual((lim["returned"], lim["total"]), (1, all_["total"]))
        self.assertEqual(lim["flows"][0], all_["flows"][0])
        self.assertEqual(self.flows("protocol=udp&direction=ingress&limit=2")["returned"], 2)

    def test_sorts(self):
        for key, field in (("bytes", "bytes"), ("packets", "packets"), ("last_seen", "last_seen")):
            res = self.flows(f"sort={key}&limit=10000")["flows"]
            vals = [parse_time(x[field]) if field == "last_seen" else x[field] for x in res]
            self.assertEqual(vals, sorted(vals, reverse=True), f"sort={key}")
        default = self.flows("limit=10000")["flows"]
        self.assertEqual([x["bytes"] for x in default], sorted((x["bytes"] for x in default), reverse=True))
        self.assertEqual(len(self.flows("sort=rate&limit=10000")["flows"]), len(default))

    def test_bad_parameters(self):
        for q, param in (("limit=0", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"),
                         ("limit=99999999999999999999", "limit"), ("protocol=bogus", "protocol"),
                         ("protocol=256", "protocol"), ("foo=1", "foo"), ("direction=up", "direction"),
                         ("src_ip=1.2.3", "src_ip"), ("dst_ip=x", "dst_ip"), ("ip=::g", "ip"),
                         ("port=70000", "port"), ("src_port=x", "src_port"), ("dst_port=-1", "dst_port"),
                         ("sort=name", "sort"), ("protocol=udp&bar=2", "bar")):
            status, headers, body = self.agent.request(f"/api/v1/flows?{q}")
            self.assertEqual(status, 400, f"{q}: {status} {body}")
            self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
            err = json.loads(body)["error"]
            self.assertIn(param, err, f"{q}: {err}")
        status, _, body = self.agent.request("/api/v1/interfaces?x=1")
        self.assertEqual(status, 400, body)
        self.assertIn("error", json.loads(body))

    def test_unknown_path_and_methods(self):
        for path in ("/nope", "/api/v1/flow", "/api/v2/flows", "/metrics/x"):
            status, _, body = self.agent.request(path)
            self.assertEqual(status, 404, f"{path}: {status} {body}")
            self.assertIn("error", json.loads(body))
        for path in ("/metrics", "/api/v1/interfaces", "/api/v1/flows", "/api/v1/events", "/healthz", "/readyz"):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                status, headers, body = self.agent.request(path, method=method)
                self.assertEqual(status, 405, f"{method} {path}: {status} {body}")
                self.assertEqual(headers.get("allow"), "GET, HEAD", f"{method} {path}: {headers}")

    def test_health_and_ready(self):
        status, _, body = self.agent.request("/healthz")
        self.assertEqual((status, body.strip()), (200, "ok"))
        status, _, body = self.agent.request("/readyz")
        self.assertEqual((status, body.strip()), (200, "ready"))
        self.assertGreaterEqual(self.agent.metrics().get("netprobe_collections_total"), 1)

    def test_readyz_before_first_collection(self):
        """/readyz never says ready before a collection; once ready it stays ready."""
        vs = [self.make_veth() for _ in range(4)]  # more attach work before the first collection
        a = Agent(self, ["--interface-filter=" + ",".join(x.host for x in vs), "--collect-interval=10s"])
        a.proc = self.spawn([AGENT] + a.args, log_name="agent-ready.log", name="netprobe-agent")
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status, _, body = a.request("/readyz")
            except OSError:
                continue
            seen.append((status, body.strip()))
            if status == 200:
                break
        statuses = [s for s, _ in seen]
        log(f"/readyz while starting: {len(seen)} answers, first {seen[:1]}, 503s: {statuses.count(503)}")
        self.assertTrue(statuses and statuses[-1] == 200, a.proc.output())
        self.assertTrue(set(statuses) <= {200, 503}, seen)
        # attaching 4 interfaces (XDP + tcx each) takes long enough to see the not-ready state
        self.assertIn(503, statuses, "never saw /readyz answer 503 before the first collection")
        for s, b in seen:
            if s == 503:
                self.assertIn("not ready", b)
        # ready means collected: the counter says so, and it does not go back
        m = a.metrics()
        self.assertGreaterEqual(m.get("netprobe_collections_total"), 1)
        for _ in range(5):
            self.assertEqual(a.request("/readyz")[0], 200)
        self.assertEqual(a.stop(), 0)

    def test_flow_expiry_and_eviction(self):
        """--flow-timeout forgets idle flows, --max-flows evicts the least recently seen."""
        v = self.veth
        a = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=200ms", "--flow-timeout=1s",
                             "--max-flows=4")
        sender = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                  "[s.sendto(b'x',(sys.argv[1],p)) for p in range(30001,30011)]")
        run([PYTHON, "-c", sender, v.host_ip], netns=v.ns)  # 10 flows (plus the answers)
        m = a.wait_collections(2)
        self.assertLessEqual(m.get("netprobe_flows_tracked"), 4)
        self.assertEqual(m.get("netprobe_flows_tracked_capacity"), 4)
        self.assertGreaterEqual(m.get("netprobe_flows_removed_total", reason="evicted"), 6)
        self.assertLessEqual(a.flows(limit=100)["total"], 4)
        # the newest flows are the ones kept
        kept = {f["dst_port"] for f in a.flows(protocol="udp", direction="ingress", limit=100)["flows"]}
        self.assertTrue(kept and kept <= set(range(30001, 30011)), kept)
        wait_for(lambda: a.flows()["total"] == 0, 10, "idle flows to expire")
        m = a.metrics()
        self.assertEqual(m.get("netprobe_flows_tracked"), 0)
        self.assertGreaterEqual(m.get("netprobe_flows_removed_total", reason="idle"), 1)
        self.assertEqual(a.stop(), 0)

    # -- /api/v1/interfaces -----------------------------------------------------------

    def test_interfaces(self):
        v = self.veth
        for _ in range(20):  # read both views within one collection
            c0 = self.agent.collections()
            res = self.agent.get_json("/api/v1/interfaces")
            m = self.agent.metrics()
            if m.get("netprobe_collections_total") == c0:
                break
        parse_time(res["collected_at"])
        self.assertEqual([i["name"] for i in res["interfaces"]], [v.host])
        i = res["interfaces"][0]
        for k in ("name", "index", "ingress_packets", "ingress_bytes", "egress_packets", "egress_bytes",
                  "ingress_packets_rate", "ingress_bytes_rate", "egress_packets_rate", "egress_bytes_rate",
                  "tc_mode", "xdp_mode"):
            self.assertIn(k, i)
        self.assertEqual(i["index"], v.host_ifindex)
        self.assertEqual(i["tc_mode"], "tcx")
        self.assertEqual(i["xdp_mode"], "off")  # auto: native XDP on physical devices only, TC alone on a veth
        self.assertEqual(i["ingress_packets"], m.get("netprobe_interface_rx_packets_total", interface=v.host))
        self.assertEqual(i["ingress_bytes"], m.get("netprobe_interface_rx_bytes_total", interface=v.host))
        self.assertEqual(i["egress_packets"], m.get("netprobe_interface_tx_packets_total", interface=v.host))
        self.assertEqual(i["egress_bytes"], m.get("netprobe_interface_tx_bytes_total", interface=v.host))
        self.assertGreater(i["ingress_packets"], 10)
        self.assertGreater(i["egress_packets"], 5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
