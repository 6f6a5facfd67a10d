#!/usr/bin/python3
"""Interface churn: PAIRS veth pairs created and deleted within ~SECONDS while the
agent follows every interface of its namespace (no --interface-filter). For each new
interface: the time from `ip link set up` returning to the agent's log line saying
its programs are attached (monitored: counting from then on), and to the agent's
/api/v1/interfaces listing it (polled every 10 ms; the API shows the latest
collection, so this adds up to one --collect-interval). Afterwards, with all
pairs gone: the agent's open file descriptors and VmRSS against before the churn, and
no interface left in its list. NP_CHURN_ROUNDS (default 4) rounds of PAIRS each, VmRSS
after each: growth after round 2 is a leak; the first two rounds are warm-up (allocator
arenas, the history store's cache, the current minute's series of the deleted interfaces,
the flood baselines of their IPv6 link-local addresses, forgotten after 10 minutes).

Namespaces npb-ifc-a (the agent, one end of each pair) and npb-ifc-b (the other
ends), veths npbc<R>x<N>/npbd<R>x<N>, no addresses: nothing leaves the namespaces. Prints
RESULT lines for bench/run.sh.

usage: veth_churn.py [AGENT] [PAIRS] [SECONDS] [LIFETIME]
NP_CHURN_AGENT_ARGS: more agent flags (e.g. "--history=off --anomaly=off" to see what a
stage's state adds).
"""

import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from netns_cleanup import delete_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "bin", "netprobe-agent")
PAIRS = int(sys.argv[2]) if len(sys.argv) > 2 else 200
ROUNDS = int(os.environ.get("NP_CHURN_ROUNDS", "4"))  # PAIRS created and deleted per round
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
LIFETIME = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0  # seconds each pair lives
NS_A, NS_B = "npb-ifc-a", "npb-ifc-b"
PORT = 19181


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cleanup(agent: subprocess.Popen | None) -> None:
    if agent and agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    delete_netns(NS_A, NS_B)


def api(path: str):
    # the agent listens inside NS_A: reach it through a helper in that namespace
    out = sh("ip", "netns", "exec", NS_A, "curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{PORT}{path}",
             check=False)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout else None


def proc_status(pid: int) -> dict[str, int]:
    res = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                res[k] = int(v.split()[0])
    res["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return res


class Poller(threading.Thread):
    """Polls the agent's interface list every 10 ms through one long-lived python
    process inside NS_A (the agent listens on that namespace's loopback); records the
    first time each interface is listed."""

    def __init__(self):
        super().__init__(daemon=True)
        self.first_seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.polls = 0

    def run(self) -> None:
        code = ("import sys,time,urllib.request\n"
                f"u='http://127.0.0.1:{PORT}/api/v1/interfaces'\n"
                "while True:\n"
                "    try:\n"
                "        b=urllib.request.urlopen(u,timeout=2).read()\n"
                "        sys.stdout.write('%.6f ' % time.time() + b.decode().replace('\\n','') + '\\n'); sys.stdout.flush()\n"
                "    except Exception as e:\n"
                "        sys.stdout.write('%.6f {}\\n' % time.time()); sys.stdout.flush()\n"
                "    time.sleep(0.01)\n")
        p = subprocess.Popen(["ip", "netns", "exec", NS_A, "/usr/bin/python3", "-c", code], stdout=subprocess.PIPE,
                             text=True)
        try:
            for line in p.stdout:
                if self.stop.is_set():
                    break
                ts, _, body = line.partition(" ")
                self.polls += 1
                try:
                    doc = json.loads(body)
                except json.JSONDecodeError:
                    continue
                names = [i.get("interface") or i.get("name") for i in doc.get("interfaces", [])] \
                    if isinstance(doc, dict) else []
                for n in names:
                    if n and n not in self.first_seen:
                        self.first_seen[n] = float(ts)
        finally:
            p.kill()
            p.wait()


def main() -> int:
    agent = None
    try:
        cleanup(None)
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        logf = tempfile.NamedTemporaryFile(prefix="npb-ifc-", suffix=".log", delete=False)
        # a state directory of its own (the history store of other runs would change the RSS)
        state = tempfile.TemporaryDirectory(prefix="npb-ifc-state-")
        agent = subprocess.Popen(["ip", "netns", "exec", NS_A, AGENT, f"--metrics-port={PORT}",
                                  "--metrics-address=127.0.0.1", "--collect-interval=1s",
                                  *os.environ.get("NP_CHURN_AGENT_ARGS", "").split()],
                                 stdout=logf, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, NETPROBE_STATE_DIR=state.name))
        for _ in range(200):
            if sh("ip", "netns", "exec", NS_A, "curl", "-sf", "--max-time", "1", f"http://127.0.0.1:{PORT}/readyz",
                  check=False).returncode == 0:
                break
            if agent.poll() is not None:
                log(open(logf.name).read())
                return 1
            time.sleep(0.1)
        # the agent runs as a child of `ip netns exec` (exec'd: same pid)
        pid = agent.pid
        time.sleep(3)  # a few collections
        before = proc_status(pid)
        log(f"before the churn: {before}")

        poller = Poller()
        poller.start()
        interval = SECONDS / PAIRS
        created: dict[str, float] = {}
        rss_rounds: list[int] = []
        t_start = time.time()
        for rnd in range(ROUNDS):
            # round r: npbc<r>x<i> (at most 15 characters); the same number each round, so
            # RSS after round 2 against after the last tells warm-up from growth
            alive: list[tuple[float, str]] = []
            t_round = time.time()
            for i in range(PAIRS):
                a, b = f"npbc{rnd}x{i}", f"npbd{rnd}x{i}"
                sh("ip", "-n", NS_A, "link", "add", a, "type", "veth", "peer", "name", b, "netns", NS_B)
                sh("ip", "-n", NS_B, "link", "set", b, "up")
                sh("ip", "-n", NS_A, "link", "set", a, "up")
                created[a] = time.time()
                alive.append((created[a], a))
                while alive and time.time() - alive[0][0] > LIFETIME:
                    _, old = alive.pop(0)
                    sh("ip", "-n", NS_A, "link", "del", old)
                next_at = t_round + (i + 1) * interval
                time.sleep(max(0.0, next_at - time.time()))
            for t, name in alive:
                # the last ones still get their full lifetime to be seen
                time.sleep(max(0.0, LIFETIME - (time.time() - t)))
                sh("ip", "-n", NS_A, "link", "del", name)
            time.sleep(3)
            rss_rounds.append(proc_status(pid)["VmRSS"])
            log(f"after round {rnd + 1}: VmRSS {rss_rounds[-1]} KiB")
        churn_seconds = time.time() - t_start
        poller.stop.set()
        poller.join(5)

        # "2026-12-03T12:00:00.123+0000 info npbc7 (ifindex 9): attached tc=tcx xdp=generic"
        attached_at: dict[str, float] = {}
        for line in open(logf.name, errors="replace"):
            f = line.split()
            if len(f) >= 4 and f[2].startswith("npbc") and "attached" in line and f[2] not in attached_at:
                try:
                    attached_at[f[2]] = datetime.datetime.strptime(f[0], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
                except ValueError:
                    pass
        attach_lat = sorted(max(0.0, attached_at[n] - t) * 1000 for n, t in created.items() if n in attached_at)
        lat = []
        missed = []
        for name, t in created.items():
            if name in poller.first_seen:
                lat.append(max(0.0, poller.first_seen[name] - t) * 1000)
            else:
                missed.append(name)
        left = api("/api/v1/interfaces")
        left_names = [i.get("interface") or i.get("name") for i in (left or {}).get("interfaces", [])]
        left_names = [n for n in left_names if n and n.startswith("npbc")]
        time.sleep(2)
        after = proc_status(pid)
        log(f"after the churn: {after}; {len(created)} interfaces in {churn_seconds:.1f} s, "
            f"{poller.polls} polls; never seen: {missed[:10]}{'...' if len(missed) > 10 else ''}; still listed: "
            f"{left_names[:10]}")
        if not lat or not attach_lat:
            log("no interface was ever seen as monitored")
            return 1
        lat.sort()

        def p99(v):
            return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]

        log(f"attached after: median {statistics.median(attach_lat):.0f} ms, p99 {p99(attach_lat):.0f} ms, "
            f"max {attach_lat[-1]:.0f} ms ({len(attach_lat)} of {len(created)} logged)")
        log(f"listed by the API after: median {statistics.median(lat):.0f} ms, p99 {p99(lat):.0f} ms, "
            f"max {lat[-1]:.0f} ms")
        print(f"RESULT\tchurn_pairs\t{len(created)}\t{churn_seconds:.1f}")
        print(f"RESULT\tchurn_attach_ms\t{statistics.median(attach_lat):.0f}\t{p99(attach_lat):.0f}\t"
              f"{attach_lat[-1]:.0f}\t{len(created) - len(attach_lat)}")
        print(f"RESULT\tchurn_latency_ms\t{statistics.median(lat):.0f}\t{p99(lat):.0f}\t{lat[-1]:.0f}\t{len(missed)}")
        print(f"RESULT\tchurn_fds\t{before['fds']}\t{after['fds']}")
        print(f"RESULT\tchurn_rss_kib\t{before['VmRSS']}\t{after['VmRSS']}\t{after['VmHWM']}")
        print(f"RESULT\tchurn_rss_rounds_kib\t{' '.join(map(str, rss_rounds))}")
        print(f"RESULT\tchurn_left\t{len(left_names)}")
        os.unlink(logf.name)
        return 0
    finally:
        cleanup(agent)


if __name__ == "__main__":
    sys.exit(main())
