#!/usr/bin/python3
"""Agent start-up and restart: how long until /metrics answers.

The agent runs in its own namespace npb-rst on a veth pair inside it (npbr0/npbr1, no
addresses: nothing leaves the namespace), listening on 127.0.0.1. Per round: a cold
start (process spawned -> first 200 from /metrics, polled every 20 ms); then a scraper
holds a keep-alive connection and has three scrapes served, the agent gets SIGKILL
(or, the next time, SIGTERM), and a new agent is started on the same port at once:
the time from its spawn to its first 200. A restart whose agent exits (the port still
in use) is a failure. Target (issue 10): <= 2 s after either signal.

The script re-runs itself inside the namespace (--inner), so its HTTP polls are plain
sockets there. Prints RESULT lines for bench/run.sh.

usage: restart_bench.py [AGENT] [ROUNDS]
"""

import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from netns_cleanup import delete_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS = "npb-rst"
PORT = 19183


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def outer(agent: str, rounds: int) -> int:
    delete_netns(NS)
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "-n", NS, "link", "add", "npbr0", "type", "veth", "peer", "name", "npbr1")
        sh("ip", "-n", NS, "link", "set", "npbr0", "up")
        sh("ip", "-n", NS, "link", "set", "npbr1", "up")
        return subprocess.run(["ip", "netns", "exec", NS, sys.executable, os.path.abspath(__file__), "--inner",
                               agent, str(rounds)]).returncode
    finally:
        delete_netns(NS)


def metrics_status(timeout: float = 1.0) -> int:
    try:
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
        c.request("GET", "/metrics")
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except OSError:
        return 0


class Agent:
    def __init__(self, agent: str, state: str, logfile: str):
        self.log = open(logfile, "ab")
        self.p = subprocess.Popen([agent, "--interface-filter=npbr0", "--collect-interval=500ms",
                                   "--metrics-address=127.0.0.1", f"--metrics-port={PORT}", f"--state-dir={state}"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        self.t0 = time.monotonic()

    def wait_ready(self, limit: float = 30.0) -> float | None:
        """Seconds from spawn to the first 200; None if the agent exited or never answered."""
        while time.monotonic() - self.t0 < limit:
            if self.p.poll() is not None:
                return None
            if metrics_status() == 200:
                return time.monotonic() - self.t0
            time.sleep(0.02)
        return None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def inner(agent: str, rounds: int) -> int:
    cold, after = [], {"SIGKILL": [], "SIGTERM": []}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="npb-rst-") as tmp:
        logfile = os.path.join(tmp, "agent.log")
        for r in range(rounds):
            for sig in (signal.SIGKILL, signal.SIGTERM):
                state = tempfile.mkdtemp(dir=tmp)
                a = Agent(agent, state, logfile)
                t = a.wait_ready()
                if t is None:
                    a.stop(signal.SIGKILL)
                    log(f"round {r}: the agent never answered; its log:\n" + open(logfile).read()[-2000:])
                    return 1
                cold.append(t)
                keep = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
                for _ in range(3):
                    keep.request("GET", "/metrics")
                    resp = keep.getresponse()
                    resp.read()
                a.stop(sig)
                b = Agent(agent, state, logfile)
                t2 = b.wait_ready()
                keep.close()
                name = signal.Signals(sig).name
                if t2 is None:
                    failures += 1
                    log(f"round {r}: restart after {name} failed; its log:\n" + open(logfile).read()[-2000:])
                else:
                    after[name].append(t2)
                    log(f"round {r}: cold start {t:.2f} s, restart after {name} with a keep-alive scrape open {t2:.2f} s")
                b.stop()
    def ms(xs):
        return (f"{statistics.median(xs) * 1000:.0f}\t{max(xs) * 1000:.0f}") if xs else "nan\tnan"
    print(f"RESULT\trestart_cold_ms\t{ms(cold)}")
    print(f"RESULT\trestart_sigkill_ms\t{ms(after['SIGKILL'])}")
    print(f"RESULT\trestart_sigterm_ms\t{ms(after['SIGTERM'])}")
    print(f"RESULT\trestart_failures\t{failures}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        sys.exit(inner(sys.argv[2], int(sys.argv[3])))
    AGENT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin", "netprobe-agent")
    ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sys.exit(outer(AGENT, ROUNDS))
