"""History store, forecasts and anomaly detection of the real agent.

History: an agent with a 2 s series step writes its intervals to STATE_DIR/history; the
oracle is Debian's sqlite3 reading the same file. After a restart the anomaly models
come back from the store, and a corrupt file is moved aside with one warning while the
agent carries on.

Forecast: two days of a known daily pattern are written into a store (Python's sqlite3,
the store's own schema) before the agent starts; it warm-starts its model and its
forecast one hour ahead matches the pattern.

Anomalies: a client and a server namespace joined by a TUN link whose relay can add
latency (tun_relay.py); a steady request mix for the learning period (30 intervals of
2 s), then a benign stretch that must raise no event, then injected changes, each
detected within 3 intervals with the right explanation: a new server port, a host
talking to 50 new peers, a tenfold traffic level, a 40 ms latency jump.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
import math
import unittest

from e2e_inspect import nstat_counters
from netprobe_e2e import AGENT, PYTHON, E2ETestCase, kernel_stats, log, require_tools, run, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
IP_A, IP_B = "198.18.9.1", "198.18.9.2"
STEP = 2  # --series-step seconds
LEARNING = 30  # --anomaly-learning intervals

SERVER = """
import socket, sys, threading
def serve(port, size):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(512)
    while True:
        c, _ = s.accept()
        try:
            n = int(c.recv(64) or b"0")
            c.sendall(b"x" * min(n, 10_000_000))
        except OSError:
            pass
        c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p), 0), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""

# Steady mix: a request every 0.05 s asking for SIZE bytes (SIZE read from a file, so the
# test can change the level), to IP:PORT. On a fixed schedule: a request up to 0.2 s late
# under load is caught up at once, so each 2 s interval carries its 40 requests (with
# "sleep after each", a loaded CI run's slower requests were a dip of the level that the
# models, trained on a very steady mix, rightly flagged); a longer stall restarts the
# schedule rather than sending a burst. 40 per interval, not 10: one request more or less
# in an interval is 2.5%, inside the detector's 5% floor (at 10 it was 10%, outside).
CLIENT = """
import os, socket, sys, time
host, port, size_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
due = time.monotonic()
while True:
    try:
        size = int(open(size_file).read().strip() or "0")
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(str(size).encode())
        got = 0
        while got < size:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
        s.close()
    except OSError:
        pass
    due += 0.05
    late = time.monotonic() - due
    if late > 0.2:
        # stalled (a loaded machine): start again from now rather than catch up with
        # back-to-back requests - a catch-up burst is a real rate excursion, which the
        # detector rightly reported once in CI (+8% over the band, score 1.07)
        due = time.monotonic()
    elif late < 0:
        time.sleep(-late)
"""


class ModelsTest(E2ETestCase):
    def tun_link(self, delay_ms: str = "0", jitter_ms: str = "0"):
        ns_a, ns_b = self.make_netns(), self.make_netns()
        tun_a, tun_b = "npmodA", "npmodB"
        for ns in (ns_a, ns_b):
            run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"], netns=ns)
        relay = self.spawn([PYTHON, os.path.join(HERE, "tun_relay.py"), ns_a, tun_a, ns_b, tun_b, delay_ms, jitter_ms, "3"],
                           log_name="tun_relay.log")
        wait_for(lambda: "ready" in relay.output(), 10, "the TUN relay")
        for ns, dev, me, peer in ((ns_a, tun_a, IP_A, IP_B), (ns_b, tun_b, IP_B, IP_A)):
            run(["ip", "addr", "add", me, "peer", f"{peer}/32", "dev", dev], netns=ns)
            run(["ip", "link", "set", dev, "up"], netns=ns)
        return ns_a, ns_b, tun_a, tun_b, relay

    # ---------------------------------------------------------------- history

    def test_history_survives_restarts_and_a_corrupt_file(self):
        ns = self.make_netns()
        v = self.make_veth(host_ns=ns)
        state = self.tmpdir()
        db = os.path.join(state, "history", "history.db")
        args = ("--collect-interval=500ms", f"--series-step={STEP}s", "--anomaly-learning=16",
                f"--interface-filter={v.host}", f"--state-dir={state}")
        agent = self.start_agent(*args, netns=ns)
        run(["ping", "-q", "-c", "20", "-i", "0.2", v.peer_ip], netns=ns)
        key = f"iface/{v.host}/tx_packets_rate"
        wait_for(lambda: agent.get_json(f"/api/v1/history?prefix=iface/{v.host}/")["series"], 10, "series in the store")
        # the models' state is written on the background cadence (60 s) and at exit
        self.assertEqual(agent.stop(), 0)

        # the oracle: sqlite3 on the file the agent wrote
        q = run(["sqlite3", db, "SELECT count(*), sum(m.sum) FROM minutes m JOIN series s ON s.id = m.series_id "
                                f"WHERE s.key = '{key}'"]).stdout.strip()
        rows, total = q.split("|")
        self.assertGreater(int(rows), 0, q)
        states = int(run(["sqlite3", db, "SELECT count(*) FROM state WHERE key LIKE 'anomaly/%'"]).stdout.strip())
        self.assertGreater(states, 0, "anomaly models saved at exit")

        agent = self.start_agent(*args, netns=ns)
        h = agent.get_json(f"/api/v1/history?series={key}&from=-1h&resolution=minute")
        log(f"sqlite3: {rows} rows, sum {total}; API: {h['points']}")
        self.assertEqual(len(h["points"]), int(rows))
        self.assertAlmostEqual(sum(p["mean"] * p["count"] for p in h["points"]), float(total), delta=1e-6)
        m = agent.metrics()
        log(f"state models: restored {m.get('netprobe_anomaly_state_models', result='restored')}, rejected {m.get('netprobe_anomaly_state_models', result='rejected')} of {states}")
        self.assertEqual(m.get("netprobe_anomaly_state_models", result="restored"), states)
        self.assertEqual(m.get("netprobe_anomaly_state_models", result="rejected"), 0)
        self.assertGreater(m.get("netprobe_history_file_bytes"), 0)
        self.assertEqual(agent.stop(), 0)

        # garbage over the file: one warning, the file moved aside, a fresh store
        with open(db, "r+b") as f:
            f.write(os.urandom(4096))
        for side in ("-wal", "-shm"):
            if os.path.exists(db + side):
                os.remove(db + side)
        agent = self.start_agent(*args, netns=ns)
        run(["ping", "-q", "-c", "5", "-i", "0.2", v.peer_ip], netns=ns)
        wait_for(lambda: agent.get_json(f"/api/v1/history?prefix=iface/{v.host}/")["series"], 10,
                 "series in the fresh store")
        aside = [f for f in os.listdir(os.path.dirname(db)) if f.startswith("history.db.corrupt-")]
        self.assertEqual(len(aside), 1, os.listdir(os.path.dirname(db)))
        warnings = [l for l in agent.output().splitlines() if "history" in l and ("corrupt" in l or "not a database" in l)]
        self.assertEqual(len(warnings), 1, agent.output())
        self.assertEqual(agent.stop(), 0)

    # ---------------------------------------------------------------- forecast

    def test_forecast_warm_started_from_stored_history(self):
        ns = self.make_netns()
        v = self.make_veth(host_ns=ns)
        state = self.tmpdir()
        db = os.path.join(state, "history", "history.db")
        # an agent run creates the store (its schema), then two days of a daily pattern
        agent = self.start_agent("--collect-interval=500ms", f"--interface-filter={v.host}", f"--state-dir={state}",
                                 netns=ns)
        self.assertEqual(agent.stop(), 0)

        def pattern(t: int) -> float:
            return 100_000 + 50_000 * math.sin(2 * math.pi * (t % 86400) / 86400)
        now = int(time.time())
        end = now - now % 60
        key = f"iface/{v.host}/rx_bytes_rate"
        con = sqlite3.connect(db)
        # (the first run may have stored the series already: a veth's own IPv6 chatter)
        con.execute("INSERT INTO series(key, last_hour) VALUES(?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET last_hour = excluded.last_hour", (key, end - end % 3600))
        sid = con.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()[0]
        con.executemany("INSERT INTO minutes(minute, series_id, sum, count, min, max) VALUES(?, ?, ?, 1, ?, ?)",
                        [(t, sid, pattern(t), pattern(t), pattern(t)) for t in range(end - 2 * 86400, end, 60)])
        con.commit()
        con.close()

        agent = self.start_agent("--collect-interval=500ms", f"--interface-filter={v.host}", f"--state-dir={state}",
                                 netns=ns)
        self.assertIn("warm-started from the history store", agent.output())
        f = wait_for(lambda: agent.get_json(f"/api/v1/forecast?series={key}")["series"], 10, "the forecast")[0]
        log(json.dumps(f))
        self.assertTrue(f["season_ready"])
        hour = next(h for h in f["forecasts"] if h["horizon"] == "1h")
        # the model's last point is the last stored minute (end - 60): one hour = 60 steps on
        want = pattern(end - 60 + 3600)
        self.assertLess(abs(hour["mean"] - want), 0.05 * want, (hour, want))
        # The stored days repeat exactly, so the model's realised errors are all ~0 and its
        # interval has (rightly) no width: the mean then equals the truth up to rounding, and
        # the bounds are checked with a tolerance of a few ulps of that (CI saw mean
        # 62121.750780797534 against the test's own 62121.75078079753).
        slack = 1e-9 * want
        self.assertLessEqual(hour["lower_80"], want + slack, (hour, want))
        self.assertGreaterEqual(hour["upper_80"], want - slack, (hour, want))
        m = agent.metrics()
        got = m.get("netprobe_interface_forecast_bytes_rate", interface=v.host, direction="receive", horizon="1h",
                    bound="mean")
        self.assertAlmostEqual(got, hour["mean"], delta=1e-6 * want)
        self.assertEqual(agent.stop(), 0)

    def test_a_link_filling_up_is_a_capacity_forecast_finding(self):
        # Two days of a receive rate growing steadily on a link of 1 Mbit/s (125000 B/s,
        # --link-speed; a veth reports 10 Gbit/s): from 20000 B/s to 90000 B/s, +35000 B/s
        # a day. The threshold, 76% of the link (95000 B/s), is 3.4 h away on that straight
        # line (the test's own arithmetic); the model damps trends (a forecast flattens), so
        # the lead time it gives is not that figure but must be hours, not now and not never.
        # The finding is in /api/v1/forecast and in /api/v1/diagnosis (capacity_forecast).
        ns = self.make_netns()
        v = self.make_veth(host_ns=ns)
        state = self.tmpdir()
        db = os.path.join(state, "history", "history.db")
        args = ("--collect-interval=500ms", f"--interface-filter={v.host}", f"--state-dir={state}",
                f"--link-speed={v.host}=1M", "--capacity-threshold=0.76")
        agent = self.start_agent(*args, netns=ns)
        self.assertEqual(agent.stop(), 0)
        now = int(time.time())
        end = now - now % 60
        start = end - 2 * 86400
        per_day = 35000.0

        def rate(t: int) -> float:
            return 20000 + per_day * (t - start) / 86400
        key = f"iface/{v.host}/rx_bytes_rate"
        con = sqlite3.connect(db)
        # (the first run may have stored the series already: a veth's own IPv6 chatter)
        con.execute("INSERT INTO series(key, last_hour) VALUES(?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET last_hour = excluded.last_hour", (key, end - end % 3600))
        sid = con.execute("SELECT id FROM series WHERE key = ?", (key,)).fetchone()[0]
        con.executemany("INSERT INTO minutes(minute, series_id, sum, count, min, max) VALUES(?, ?, ?, 1, ?, ?)",
                        [(t, sid, rate(t), rate(t), rate(t)) for t in range(start, end, 60)])
        con.commit()
        con.close()
        expected_h = (0.76 * 125000 - rate(end - 60)) / per_day * 24
        # and the link carries that rate now (the live intervals continue the history: an
        # idle link would be a forecast of no traffic, rightly): 90 datagrams of 1000 bytes a
        # second from the veth's peer
        self.spawn([PYTHON, "-c", "import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                                  "due=time.monotonic()\nwhile True:\n s.sendto(b'x'*958,(sys.argv[1],9))\n"
                                  " due+=1/90\n time.sleep(max(0,due-time.monotonic()))", v.host_ip],
                   netns=v.ns, name="sender")

        agent = self.start_agent(*args, netns=ns)
        self.assertIn("warm-started from the history store", agent.output())

        def finding():
            for f in agent.get_json("/api/v1/diagnosis")["findings"]:
                if f["rule"] == "capacity_forecast" and f["subject"] == f"capacity:{key}":
                    return f
            return None
        try:
            f = wait_for(finding, 15, "a capacity_forecast finding")
        except AssertionError:
            log(f"/api/v1/forecast: {json.dumps(agent.get_json('/api/v1/forecast'))[:3000]}")
            raise
        ev = {e["name"]: e["value"] for e in f["evidence"]}
        fc = agent.get_json("/api/v1/forecast")
        log(f"finding: {f['title']}; evidence {ev}; the trend's own arithmetic: {expected_h:.2f} h")
        self.assertEqual(f["severity"], "warning")  # within a day
        self.assertGreaterEqual(ev["lead_time"], expected_h / 2)
        self.assertLessEqual(ev["lead_time"], expected_h * 2)
        self.assertEqual(ev["threshold"], 0.76 * 125000)
        self.assertIn("reaches 76% of its link speed in", f["title"])
        self.assertIn(key, [x["subject"] for x in fc["findings"] if x["kind"] == "capacity"])
        self.assertEqual(agent.stop(), 0)

    # ---------------------------------------------------------------- cost

    def test_cost_by_destination_class(self):
        """A node namespace with three peers: one in this node's zone, one in another zone,
        one in no zone (its 198.19 address is not private: the internet). The agent watches
        only its own namespace's sockets (--socket-netns=own), so the peers are other hosts.
        An iperf3 client in the node sends a known payload to each; each byte lands in its
        class, between the payload and the veth's own transmit counter, and costs the
        price table's rate."""
        require_tools("iperf3", "ethtool")
        node = self.make_netns()
        peers = [self.make_veth(host_ns=node) for _ in range(3)]
        for v in peers:
            for ifname, ns in ((v.host, node), (v.peer, v.ns)):
                run(["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"], netns=ns, check=False)
            self.spawn(["iperf3", "-s", "-1", "-B", v.peer_ip, "-p", "5201"], netns=v.ns, log_name="iperf3.log")
        for v in peers:
            wait_for(lambda v=v: run(["ss", "-Hltn", "sport = :5201"], netns=v.ns).stdout.strip(), 10, "iperf3")
        cfg = os.path.join(self.tmpdir(), "cost.yaml")
        with open(cfg, "w") as f:
            f.write(f"""zone: zone-a
zones:
  - {{cidr: {peers[0].peer_ip}/30, zone: zone-a}}
  - {{cidr: {peers[1].peer_ip}/30, zone: zone-b}}
prices: {{same_zone: 0.001, cross_zone: 0.01, internet: 0.09}}
""")
        agent = self.start_agent("--collect-interval=500ms", "--socket-netns=own", f"--cost-config={cfg}",
                                 "--interface-filter=" + ",".join(v.host for v in peers), netns=node)
        before = [kernel_stats(v.host, node) for v in peers]
        sent = []
        for v, size in zip(peers, ("1M", "2M", "3M")):
            out = run(["iperf3", "-c", v.peer_ip, "-p", "5201", "-n", size, "-J"], netns=node, timeout=60).stdout
            # what the receiver read: under load iperf3's server may end the test while the
            # sender still holds queued data, which its kernel then discards (never sent)
            sent.append(int(json.loads(out)["end"]["sum_received"]["bytes"]))
        after = [kernel_stats(v.host, node) for v in peers]
        classes = ("same_zone", "cross_zone", "internet")
        prices = {"same_zone": 0.001, "cross_zone": 0.01, "internet": 0.09}

        def entities():
            c = agent.get_json("/api/v1/cost")
            got = {e["entity"]: e for e in c["entities"]}
            ok = all(v.host_ip in got and got[v.host_ip]["bytes_sent"][cls] >= payload
                     for v, cls, payload in zip(peers, classes, sent))
            return got if ok else None
        try:
            got = wait_for(entities, 15, "every transfer in /api/v1/cost")
        except AssertionError:
            log(f"payloads {sent}; /api/v1/cost: {agent.get_json('/api/v1/cost')}")
            raise
        for v, cls, payload, b, a in zip(peers, classes, sent, before, after):
            e = got[v.host_ip]
            tx = a["tx_bytes"] - b["tx_bytes"]
            log(f"{v.host_ip} -> {v.peer_ip} ({cls}): iperf3 payload {payload}, agent {e['bytes_sent']}, veth tx {tx}, "
                f"cost {e['cost']}")
            self.assertGreaterEqual(e["bytes_sent"][cls], payload)
            self.assertLessEqual(e["bytes_sent"][cls], tx)
            self.assertEqual(sum(e["bytes_sent"].values()), e["bytes_sent"][cls], "bytes in one class only")
            self.assertAlmostEqual(e["cost"], e["bytes_sent"][cls] / 1e9 * prices[cls], places=12)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_cost_window_bytes", entity=peers[2].host_ip, **{"class": "internet"},
                               direction="sent"), got[peers[2].host_ip]["bytes_sent"]["internet"])
        # netprobe cost: the same document, and a table row per entity in its class's column
        cli = [os.path.join(os.path.dirname(AGENT), "netprobe"), f"--server=http://127.0.0.1:{agent.port}", "cost"]
        doc = json.loads(run(cli + ["-o", "json"], netns=node).stdout)
        self.assertEqual(set(doc), set(agent.get_json("/api/v1/cost")))
        self.assertEqual(doc["zone"], "zone-a")
        out = run(cli, netns=node).stdout
        log(out)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("zone zone-a (from config)"), lines[0])
        header = next(i for i, line in enumerate(lines) if line.startswith("ENTITY"))
        self.assertEqual(lines[header].split("  ")[0], "ENTITY")
        col = {"same_zone": 2, "cross_zone": 3, "internet": 5}  # ENTITY, SENT SAME NODE, SENT SAME ZONE, ...
        for v, cls in zip(peers, classes):
            row = next(line.split() for line in lines[header + 1:] if line.split()[0] == v.host_ip)
            self.assertNotEqual(row[col[cls]], "0B", (cls, row))
            self.assertEqual([c for i, c in enumerate(row[1:6], 1) if c != "0B"], [row[col[cls]]], row)
        self.assertEqual(agent.stop(), 0)

    # ---------------------------------------------------------------- anomalies

    def test_anomalies_after_learning(self):
        ns_a, ns_b, tun_a, tun_b, relay = self.tun_link("2", "0")
        self.spawn([PYTHON, "-c", SERVER, "8080"], netns=ns_b, log_name="server.log")
        size = os.path.join(self.tmpdir(), "size")
        with open(size, "w") as f:
            f.write("2000")
        # (only this namespace's sockets: another test's namespaces may reuse these addresses)
        agent = self.start_agent("--collect-interval=500ms", f"--series-step={STEP}s", f"--anomaly-learning={LEARNING}",
                                 "--socket-netns=own", netns=ns_a)
        wait_for(lambda: tun_a in agent.interfaces(), 10, f"the agent to monitor {tun_a}")
        self.spawn([PYTHON, "-c", CLIENT, IP_B, "8080", size], netns=ns_a, log_name="client.log")

        def anomalies(**q):
            qs = "&".join(f"{k}={v}" for k, v in q.items())
            return agent.get_json("/api/v1/anomalies" + ("?" + qs if qs else ""))

        # learning, then a benign stretch: no event at all
        wait_for(lambda: anomalies()["scopes"].get("interface", {}).get("learning", 1) == 0
                 and anomalies()["scopes"].get("entity", {}).get("learning", 1) == 0, (LEARNING + 20) * STEP,
                 "the models to finish learning")
        time.sleep(15 * STEP)
        a = anomalies()
        log(f"after the benign stretch: {json.dumps(a['scopes'])}")
        self.assertEqual(a["events"], [], "events during the benign mix")

        def newest():
            return max((e["id"] for e in anomalies()["events"]), default=0)

        def detected(since, pred, what):
            # an event opened after the injection, within 3 intervals (+ a collection and the poll)
            t0 = time.monotonic()
            e = wait_for(lambda: next((e for e in anomalies()["events"] if e["id"] > since and pred(e)), None),
                         3 * STEP + 2, what)
            log(f"{what}: after {time.monotonic() - t0:.1f} s: {e['summary']}")
            return e

        # a new server port
        since = newest()
        self.spawn([PYTHON, "-c", SERVER, "9999"], netns=ns_b, log_name="server9999.log")
        time.sleep(0.5)
        for _ in range(3):
            run([PYTHON, "-c", f"import socket; s=socket.create_connection(('{IP_B}', 9999)); s.sendall(b'10'); s.recv(10)"],
                netns=ns_a)
        e = detected(since, lambda e: e["kind"] == "behaviour" and e["subject"] == IP_B
                     and any(f["name"] == "new_server_port" and "9999" in f["examples"] for f in e["features"]),
                     "new_server_port 9999 on the server")

        # 50 new peers: the client connects once to each of 50 new addresses of the server
        for i in range(1, 51):
            run(["ip", "addr", "add", f"198.19.200.{i}/32", "dev", tun_b], netns=ns_b)
        run(["ip", "route", "add", "198.19.200.0/24", "dev", tun_a], netns=ns_a)
        since = newest()
        burst = ";".join(f"s=socket.create_connection(('198.19.200.{i}', 8080), timeout=5); s.sendall(b'10'); s.recv(10); s.close()"
                         for i in range(1, 51))
        run([PYTHON, "-c", "import socket;" + burst], netns=ns_a)
        e = detected(since, lambda e: e["kind"] == "behaviour" and e["subject"] == IP_A
                     and any(f["name"] == "new_peers" and f["observed"] >= 50 for f in e["features"]),
                     "new_peers on the client")

        # a tenfold traffic level (the server's responses: what the client's link receives),
        # once the burst's own events are over
        time.sleep(4 * STEP)
        since = newest()
        with open(size, "w") as f:
            f.write("20000")
        e = detected(since, lambda e: e["kind"] == "metric" and (e["subject"].endswith("rx_bytes_rate")
                                                                 or e["subject"].endswith("8080/tcp/bytes_rate"))
                     and e["features"][0]["observed"] > e["features"][0]["expected_hi"],
                     "the traffic level shift")

        # a latency jump of 40 ms on the link
        time.sleep(4 * STEP)
        since = newest()
        relay.send(signal.SIGUSR2)
        e = detected(since, lambda e: e["kind"] == "metric" and e["subject"].endswith("/rtt_ms")
                     and e["features"][0]["observed"] > 30, "the latency jump")
        # the diagnosis names the jump on its edge against the edge's own baseline; the relay
        # now holds every packet 40 ms longer, so the RTT is at least that
        def jump():
            return next((f for f in agent.get_json("/api/v1/diagnosis")["findings"] if f["rule"] == "rtt_jump"), None)
        f = wait_for(jump, 2 * STEP + 2, "an rtt_jump finding")
        ev = {x["name"]: x["value"] for x in f["evidence"]}
        log(f"finding: {f['title']}; evidence {ev}")
        self.assertEqual(f["subject"], e["subject"][len("edge/"):-len("/rtt_ms")])
        self.assertGreaterEqual(ev["rtt_p50"], 0.040)
        self.assertLess(ev["expected_high"], 0.040)

        # retransmissions where there were none: nft on the server's side drops half of the
        # client's requests (the segments with data), which the client retransmits. The edge's
        # loss ratio leaves its learnt range and the diagnosis says so on that edge.
        since = newest()
        before = nstat_counters(ns_a).get("TcpRetransSegs", 0)
        table = f"npmodloss{os.getpid()}"
        run(["nft", "-f", "-"], netns=ns_b, input=f"""
table ip {table} {{
  chain in {{ type filter hook input priority 0; policy accept;
    tcp dport 8080 meta length > 52 numgen random mod 2 == 0 counter drop; }}
}}
""")
        self.defer(f"nft table {table}", lambda: run(["nft", "delete", "table", "ip", table], netns=ns_b, check=False))
        e = detected(since, lambda e: e["kind"] == "metric" and e["subject"].endswith("/loss_ratio")
                     and e["features"][0]["observed"] > e["features"][0]["expected_hi"], "the loss jump")

        def loss_jump():
            return next((f for f in agent.get_json("/api/v1/diagnosis")["findings"]
                         if f["rule"] == "retransmit_jump"), None)
        f = wait_for(loss_jump, 2 * STEP + 2, "a retransmit_jump finding")
        rules = json.loads(run(["nft", "-j", "list", "table", "ip", table], netns=ns_b).stdout)
        dropped = next(x["counter"]["packets"] for r in rules["nftables"] if "rule" in r
                       for x in r["rule"]["expr"] if "counter" in x)
        retrans = nstat_counters(ns_a).get("TcpRetransSegs", 0) - before
        ev = {x["name"]: x["value"] for x in f["evidence"]}
        log(f"finding: {f['title']}; evidence {ev}; nft dropped {dropped} requests, client TcpRetransSegs {retrans}")
        self.assertEqual(f["subject"], e["subject"][len("edge/"):-len("/loss_ratio")])
        self.assertGreater(dropped, 0)
        self.assertGreaterEqual(retrans, dropped - 5)  # each drop retransmitted (the last ones maybe not yet)
        self.assertGreater(ev["loss_ratio"], ev["expected_high"])
        m = agent.metrics()
        self.assertGreaterEqual(m.get("netprobe_anomaly_events_total", scope="entity"), 2)
        self.assertGreater(m.get("netprobe_anomaly_model_memory_bytes"), 0)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main()
