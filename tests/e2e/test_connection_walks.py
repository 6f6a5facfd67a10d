"""/api/v1/connections while the kernel opens and closes sockets: every answer lists
each socket at most once.

The agent reads conn_table (open connections) every collection. While it walks the
table, the kernel keeps deleting the records of sockets that close; a walk must not
start over (and list again what it already listed) when the key it holds vanishes.

A namespace holds HOLD established loopback connections (2 x HOLD sockets, their
records stay in conn_table all along) while a load generator (bench/stack_load.py's
approach: one accepting server process, client processes that connect and abort
with SO_LINGER 0, so no TIME_WAIT piles up) opens and closes connections as fast
as it can. The agent, in a namespace of its own, monitors that namespace's sockets
(--socket-netns) and collects every 100 ms (the shortest interval it takes); a client in the agent's namespace reads
/api/v1/connections (all, and state=open) over and over for POLL_SECONDS.

A record's identity in the answer: the socket's namespace, family, direction
(active/passive), both endpoints and its start time (what the JSON exposes of a
socket; two live sockets of one namespace never share both endpoints and a
direction). Open rows (read from conn_table) and closed rows (the agent's list of
recent closes) are checked separately: a socket that closed between the walk and
the copy of the closed list may appear once as each, which is not a walk's
duplicate. Rows whose local port is still 0 (connect() records SYN_SENT before the
port is chosen) cannot be told apart and are left out.
"""

import json
import os
import subprocess
import time
import unittest

from netprobe_e2e import PYTHON, REPO, E2ETestCase, log, netns_file, run, wait_for

HOLD = 1000            # established connections held open (2000 records in conn_table)
POLL_SECONDS = 20
LOAD_SECONDS = POLL_SECONDS + 1
LOAD_PROCS = 2

# Runs in the traffic namespace: holds `hold` loopback connections (both ends here)
# until killed, bounded to 300 s. Prints the server port once they are established.
HOLDER = r"""
import resource, socket, sys, time
hold = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 2 * hold + 64:
    resource.setrlimit(resource.RLIMIT_NOFILE, (2 * hold + 64, max(hard, 2 * hold + 64)))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(hold)
port = srv.getsockname()[1]
keep = []
for _ in range(hold):
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept(); keep += [c, a]
print(port, flush=True)
time.sleep(300)
"""

# The connection storm of the stack benchmark: one server process accepts and closes;
# client processes connect and abort (SO_LINGER 0: RST, no TIME_WAIT) as fast as they
# can (rate 0) for the given seconds. Prints {"connections": N, "seconds": S, "rate": N/S}.
STACK_LOAD = os.path.join(REPO, "bench", "stack_load.py")


# Runs in the agent's namespace (a client there costs no `ip netns exec` per request):
# reads /api/v1/connections (all, and state=open) over one keep-alive connection as
# often as it can for `secs` seconds, and checks every answer for sockets listed more
# than once. Prints a JSON summary.
POLLER = r"""
import collections, http.client, json, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
FIELDS = ("open", "netns", "ip_version", "direction", "src_ip", "src_port", "dst_ip", "dst_port", "start")
queries = ("/api/v1/connections?limit=10000", "/api/v1/connections?state=open&limit=10000")
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
res = {"answers": 0, "answers_with_duplicates": 0, "collections": 0, "rows_compared": 0, "largest": 0,
       "examples": []}
collections_seen = set()
end = time.monotonic() + secs
i = 0
while time.monotonic() < end:
    q = queries[i % 2]
    i += 1
    try:
        conn.request("GET", q)
        r = conn.getresponse()
        body = r.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        continue
    if r.status != 200:
        raise SystemExit(f"GET {q}: {r.status} {body[:300]!r}")
    doc = json.loads(body)
    res["answers"] += 1
    collections_seen.add(doc["collected_at"])
    rows = doc["connections"]
    res["largest"] = max(res["largest"], len(rows))
    seen = collections.Counter()
    for c in rows:
        if "cookie" in c:  # the socket cookie: unique while the socket lives, never reused
            seen[(c["open"], c["netns"], c["cookie"])] += 1
            continue
        # agents without the cookie field: the socket's endpoints and start time (a
        # 5-tuple reused within the same millisecond would look the same)
        if c["src_port"] == 0 or c["dst_port"] == 0:
            continue  # SYN_SENT before the port is chosen: no identity yet
        seen[tuple(c[f] for f in FIELDS)] += 1
    res["rows_compared"] += sum(seen.values())
    dups = {k: n for k, n in seen.items() if n > 1}
    if dups:
        res["answers_with_duplicates"] += 1
        if len(res["examples"]) < 5:
            ex = sorted(dups.items(), key=lambda kv: -kv[1])[:2]
            res["examples"].append({"query": q, "collected_at": doc["collected_at"], "rows": len(rows),
                                    "sockets_listed_more_than_once": len(dups),
                                    "e.g.": [dict(identity=list(k), times=n) for k, n in ex]})
res["collections"] = len(collections_seen)
print(json.dumps(res))
"""


class ConnectionWalks(E2ETestCase):
    def test_no_socket_listed_twice_while_connections_churn(self):
        traffic = self.make_netns()
        agent = self.start_agent("--collect-interval=100ms", "--xdp-mode=off", "--security=off",
                                 "--cgroup-traffic=off", f"--socket-netns={netns_file(traffic)}",
                                 netns=self.make_netns())

        holder = self.spawn([PYTHON, "-c", HOLDER, str(HOLD)], netns=traffic, stdout=subprocess.PIPE, name="holder")
        self.defer("holder's stdout", holder.p.stdout.close)
        hold_port = int(holder.p.stdout.readline() or 0)
        self.assertTrue(hold_port, "the holder did not start")

        def held_listed():
            doc = agent.get_json(f"/api/v1/connections?state=open&port={hold_port}&limit=10000")
            return doc if doc["total"] >= 2 * HOLD else None

        doc = wait_for(held_listed, 30, f"the {2 * HOLD} held sockets in /api/v1/connections")
        log(f"held connections listed: {doc['total']} open rows on port {hold_port}")

        load = self.spawn([PYTHON, STACK_LOAD, "0", str(LOAD_SECONDS), str(LOAD_PROCS), "10000000"], netns=traffic,
                          log_name="load.json", name="stack-load")
        time.sleep(0.5)  # the churn is under way
        p = run([PYTHON, "-c", POLLER, str(agent.port), str(POLL_SECONDS)], netns=agent.netns,
                timeout=POLL_SECONDS + 60)
        res = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(load.wait(LOAD_SECONDS + 60), 0, load.output())
        stats = json.loads(load.output().strip().splitlines()[-1])
        m = agent.metrics()
        log(f"load: {stats['connections']} connections in {stats['seconds']} s = {stats['rate']:.0f}/s; "
            f"{res['answers']} answers from {res['collections']} collections, {res['rows_compared']} rows compared, "
            f"largest answer {res['largest']} rows, answers with a socket listed twice: "
            f"{res['answers_with_duplicates']}; conn_table insert failures "
            f"{m.get_or('netprobe_map_update_errors_total', 0.0, map='conn_table')}")
        # the churn really ran while the answers were read
        self.assertGreater(stats["connections"], 1000)
        self.assertGreaterEqual(res["collections"], 20)
        if res["answers_with_duplicates"]:
            self.fail(f"{res['answers_with_duplicates']} of {res['answers']} answers listed a socket more than "
                      f"once, e.g.:\n" + "\n".join(json.dumps(e) for e in res["examples"]))


if __name__ == "__main__":
    unittest.main()
