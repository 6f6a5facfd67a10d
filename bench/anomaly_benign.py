"""Anomaly detection on a benign mix: no event in 10 minutes after learning (make bench).

The topology of tests/e2e/test_models.py (a client and a server namespace joined by a TUN
link with 2 +- 1 ms of delay): the agent runs with 2 s intervals and a learning period of
60 of them; the client keeps a mix going for the whole run - a request every 0.2 s whose
response size varies at random between 1 and 8 KB, and every 20 s a 256 KB download from a
second port. After learning, NP_BENIGN_ANOMALY_SECONDS (600) of the same mix; the events
the agent raised in that time are the result (target: none).

Prints "RESULT<TAB>anomaly_benign<TAB>EVENTS<TAB>SECONDS<TAB>SERIES<TAB>MEMORY_BYTES" for
bench/run.sh; exit status non-zero only when the run could not be made.
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from netprobe_e2e import PYTHON, log, wait_for  # noqa: E402
from test_models import IP_B, SERVER, ModelsTest  # noqa: E402

SECONDS = int(os.environ.get("NP_BENIGN_ANOMALY_SECONDS", "600"))
LEARNING = 60
STEP = 2

MIX = """
import random, socket, sys, time
host = sys.argv[1]
rng = random.Random(11)
last_bulk = time.monotonic()
def get(port, size):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(str(size).encode())
    got = 0
    while got < size:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    s.close()
while True:
    try:
        get(8080, rng.randint(1000, 8000))
        if time.monotonic() - last_bulk >= 20:
            last_bulk = time.monotonic()
            get(8081, 256 * 1024)
    except OSError:
        pass
    time.sleep(0.2)
"""


class Benign(ModelsTest):
    def test_benign_mix(self):
        ns_a, ns_b, tun_a, _, _ = self.tun_link("2", "1")
        srv = self.spawn([PYTHON, "-c", SERVER, "8080", "8081"], netns=ns_b, log_name="server.log")
        wait_for(lambda: "listening" in srv.output(), 10, "the server")
        # (only this namespace's sockets: another test's namespaces may reuse these addresses)
        agent = self.start_agent("--collect-interval=500ms", f"--series-step={STEP}s", f"--anomaly-learning={LEARNING}",
                                 "--socket-netns=own", netns=ns_a)
        wait_for(lambda: tun_a in agent.interfaces(), 10, f"the agent to monitor {tun_a}")
        self.spawn([PYTHON, "-c", MIX, IP_B], netns=ns_a, log_name="mix.log")

        def learnt():
            s = agent.get_json("/api/v1/anomalies")["scopes"]
            return all(s.get(k, {}).get("learning", 1) == 0 for k in ("interface", "edge", "entity"))
        wait_for(learnt, (LEARNING + 30) * STEP, "the models to finish learning")
        first = max((e["id"] for e in agent.get_json("/api/v1/anomalies")["events"]), default=0)
        log(f"learnt; {SECONDS} s of the benign mix")
        time.sleep(SECONDS)
        a = agent.get_json("/api/v1/anomalies?limit=1000")
        events = [e for e in a["events"] if e["id"] > first]
        for e in events:
            log(f"event: {e['summary']}")
        series = sum(s.get("series", 0) for s in a["scopes"].values())
        print(f"RESULT\tanomaly_benign\t{len(events)}\t{SECONDS}\t{series}\t{a['memory_bytes']}", flush=True)
        self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main(defaultTest="Benign.test_benign_mix", argv=[sys.argv[0]])
