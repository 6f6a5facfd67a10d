#!/usr/bin/python3
"""make soak: the agent in its default configuration under an hour of mixed traffic,
flow churn, scrapes and API calls; its memory must settle and nothing may fail.

Topology: namespaces npb-soak-a (the agent, iperf3 and HTTP servers) and npb-soak-b
(the clients), veth npbs0 (198.18.6.1/30) <-> npbs1 (198.18.6.2/30); traffic never
leaves them. Load, all at once for --seconds:
  - iperf3 TCP for 10 s of every 60 s, iperf3 UDP (50 Mbit/s) for 10 s of every 60 s;
  - short HTTP connections from random source ports (~20/s, one flow each: churn);
  - one ping per second;
  - a scraper in npb-soak-a: /metrics every 5 s, /api/v1/flows?limit=1000,
    /api/v1/connections, /api/v1/interfaces and /api/v1/events every 10 s.
Every 30 s the agent's VmRSS, VmHWM, open fds and threads are sampled. Pass: RSS growth
from the first sample after --warmup to the last < 5 %, open fds and threads flat from
that sample to the last, no failed scrape or API call, no error line in the agent's log,
no map insert/ring failure counted by the agent.
Writes docs/soak.md (make bench copies it into docs/benchmarks.md) unless --no-doc.

usage: soak.py [--seconds=3600] [--warmup=600] [--agent=bin/netprobe-agent] [--no-doc]
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from netns_cleanup import delete_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS_A, NS_B = "npb-soak-a", "npb-soak-b"
IF_A, IF_B = "npbs0", "npbs1"
IP_A, IP_B = "198.18.6.1", "198.18.6.2"
PORT = 19182


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


class Soak:
    def __init__(self, args):
        self.args = args
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.mkdtemp(prefix="npb-soak-")

    def spawn(self, ns: str, argv: list[str], name: str) -> subprocess.Popen:
        out = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def read(self, name: str) -> str:
        with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
            return f.read()

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        delete_netns(NS_A, NS_B)
        subprocess.run(["rm", "-rf", self.tmp])

    def setup(self) -> None:
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", IF_A, "netns", NS_A, "type", "veth", "peer", "name", IF_B, "netns", NS_B)
        sh("ip", "-n", NS_A, "addr", "add", f"{IP_A}/30", "dev", IF_A)
        sh("ip", "-n", NS_B, "addr", "add", f"{IP_B}/30", "dev", IF_B)
        sh("ip", "-n", NS_A, "link", "set", IF_A, "up")
        sh("ip", "-n", NS_B, "link", "set", IF_B, "up")

    def run(self) -> int:
        a = self.args
        self.setup()
        agent = self.spawn(NS_A, [a.agent, f"--metrics-port={PORT}", "--metrics-address=127.0.0.1",
                                  f"--interface-filter={IF_A}"], "agent")
        for _ in range(300):
            if sh("ip", "netns", "exec", NS_A, "curl", "-sf", "--max-time", "1", f"http://127.0.0.1:{PORT}/readyz",
                  check=False).returncode == 0:
                break
            if agent.poll() is not None:
                log("agent exited:\n" + self.read("agent"))
                return 1
            time.sleep(0.1)
        pid = agent.pid  # `ip netns exec` execs the agent: same pid
        www = os.path.join(self.tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("x" * 2000)
        self.spawn(NS_A, ["iperf3", "-s", "-B", IP_A, "-p", "5201"], "iperf3-tcp-server")
        self.spawn(NS_A, ["iperf3", "-s", "-B", IP_A, "-p", "5202"], "iperf3-udp-server")
        self.spawn(NS_A, ["/usr/bin/python3", "-m", "http.server", "-b", IP_A, "-d", www, "8080"], "http-server")
        time.sleep(1)
        secs = a.seconds
        # the load, each a loop inside npb-soak-b for the whole duration
        loop = f"end=$((SECONDS + {secs})); while [ $SECONDS -lt $end ]; do"
        self.spawn(NS_B, ["bash", "-c", f"{loop} iperf3 -c {IP_A} -p 5201 -t 10 >/dev/null 2>&1 || echo fail; "
                                        f"sleep 50; done"], "iperf3-tcp")
        self.spawn(NS_B, ["bash", "-c", f"sleep 30; {loop} iperf3 -c {IP_A} -p 5202 -u -b 50M -t 10 >/dev/null 2>&1 "
                                        f"|| echo fail; sleep 50; done"], "iperf3-udp")
        self.spawn(NS_B, ["ping", "-q", "-i", "1", "-w", str(secs), IP_A], "ping")
        churn = ("import time,urllib.request\n"
                 f"end=time.time()+{secs}; ok=err=0\n"
                 "while time.time()<end:\n"
                 "    try:\n"
                 f"        urllib.request.urlopen('http://{IP_A}:8080/index.html',timeout=5).read(); ok+=1\n"
                 "    except Exception: err+=1\n"
                 "    time.sleep(0.05)\n"
                 "print('churn', ok, err)\n")
        self.spawn(NS_B, ["/usr/bin/python3", "-c", churn], "churn")
        scraper = ("import time,urllib.request\n"
                   f"base='http://127.0.0.1:{PORT}'; end=time.time()+{secs}; n=0\n"
                   "ok={}; bad={}\n"
                   "def get(p):\n"
                   "    try:\n"
                   "        r=urllib.request.urlopen(base+p,timeout=10); r.read(); good=r.status==200\n"
                   "    except Exception as e: good=False; print('failed', p, e, flush=True)\n"
                   "    d=ok if good else bad; d[p]=d.get(p,0)+1\n"
                   "while time.time()<end:\n"
                   "    get('/metrics')\n"
                   "    if n%2==0:\n"
                   "        for p in ('/api/v1/flows?limit=1000','/api/v1/connections','/api/v1/interfaces',"
                   "'/api/v1/events'): get(p)\n"
                   "    n+=1; time.sleep(5)\n"
                   "print('scraper', sum(ok.values()), sum(bad.values()), ok, bad, flush=True)\n")
        scr = self.spawn(NS_A, ["/usr/bin/python3", "-c", scraper], "scraper")

        samples = []  # (t, rss KiB, hwm KiB, fds, threads)
        t0 = time.time()
        while time.time() - t0 < secs:
            if agent.poll() is not None:
                log("the agent died:\n" + self.read("agent")[-3000:])
                return 1
            st = {}
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "VmHWM", "Threads"):
                        st[k] = int(v.split()[0])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            samples.append((time.time() - t0, st["VmRSS"], st["VmHWM"], fds, st["Threads"]))
            if len(samples) % 10 == 1:
                log(f"t={samples[-1][0]:.0f}s VmRSS {st['VmRSS'] / 1024:.1f} MiB VmHWM {st['VmHWM'] / 1024:.1f} MiB "
                    f"fds {fds} threads {st['Threads']}")
            time.sleep(min(30, max(1, secs - (time.time() - t0))))
        scr.wait(60)
        metrics = sh("ip", "netns", "exec", NS_A, "curl", "-sf", f"http://127.0.0.1:{PORT}/metrics").stdout
        agent.send_signal(signal.SIGTERM)
        agent_rc = agent.wait(20)
        time.sleep(1)

        def msum(name: str) -> float:
            return sum(float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith(name + "{") or line.startswith(name + " "))

        failure_families = ("netprobe_map_operation_failures_total", "netprobe_map_update_errors_total",
                            "netprobe_collect_errors_total", "netprobe_source_errors_total",
                            "netprobe_ringbuf_reserve_failures_total", "netprobe_security_records_dropped_total",
                            "netprobe_security_read_errors_total")
        nonzero = [line for line in metrics.splitlines() if line.split("{")[0].split(" ")[0] in failure_families
                   and not line.startswith("#") and float(line.split()[-1]) != 0]
        map_failures = (msum("netprobe_map_operation_failures_total") + msum("netprobe_map_update_errors_total")
                        + msum("netprobe_collect_errors_total") + msum("netprobe_source_errors_total"))
        ring_lost = (msum("netprobe_ringbuf_reserve_failures_total") + msum("netprobe_security_records_dropped_total")
                     + msum("netprobe_security_read_errors_total"))
        flows_seen = msum("netprobe_flows_removed_total") + msum("netprobe_flows_tracked")
        m = re.search(r"^scraper (\d+) (\d+)", self.read("scraper"), re.M)
        scrapes_ok, scrapes_bad = (int(m.group(1)), int(m.group(2))) if m else (0, -1)
        m = re.search(r"^churn (\d+) (\d+)", self.read("churn"), re.M)
        churn_ok, churn_err = (int(m.group(1)), int(m.group(2))) if m else (0, -1)
        agent_log = self.read("agent")
        error_lines = [x for x in agent_log.splitlines() if re.match(r"^\S+ (error|critical) ", x)]
        warn_lines = [x for x in agent_log.splitlines() if re.match(r"^\S+ warning ", x)]
        tcp_fail = self.read("iperf3-tcp").count("fail")
        udp_fail = self.read("iperf3-udp").count("fail")

        after_warmup = [s for s in samples if s[0] >= a.warmup] or samples[-1:]
        base, last = after_warmup[0], samples[-1]
        growth = (last[1] - base[1]) / base[1] * 100
        peak_after = max(s[1] for s in after_warmup)
        # fds and threads after the warm-up, as RSS: files opened once in the first minutes
        # (the history store's, the first API answers') are no leak
        fds_flat = last[3] <= base[3] + 2
        threads_flat = last[4] == base[4]
        ok = (growth < 5 and scrapes_bad == 0 and not error_lines and map_failures == 0 and ring_lost == 0
              and agent_rc == 0 and fds_flat and threads_flat)
        rows = [
            ("duration", f"{secs / 60:.0f} min ({len(samples)} samples every 30 s)", "-", ""),
            ("VmRSS after the warm-up (t = {:.0f} s)".format(base[0]), f"{base[1] / 1024:.1f} MiB", "-", ""),
            ("VmRSS at the end", f"{last[1] / 1024:.1f} MiB (peak after warm-up {peak_after / 1024:.1f} MiB)", "-", ""),
            ("RSS growth after the warm-up", f"{growth:+.2f} %", "< 5 %", "PASS" if growth < 5 else "MISS"),
            ("VmHWM", f"{last[2] / 1024:.1f} MiB", "-", "info"),
            ("open fds, start / after the warm-up / end", f"{samples[0][3]} / {base[3]} / {last[3]}", "flat after the warm-up",
             "PASS" if fds_flat else "MISS"),
            ("threads, start / after the warm-up / end", f"{samples[0][4]} / {base[4]} / {last[4]}", "flat after the warm-up",
             "PASS" if threads_flat else "MISS"),
            ("scrapes and API calls ok / failed", f"{scrapes_ok} / {scrapes_bad}", "0 failed",
             "PASS" if scrapes_bad == 0 else "MISS"),
            ("agent error lines / warnings", f"{len(error_lines)} / {len(warn_lines)}", "0 errors",
             "PASS" if not error_lines else "MISS"),
            ("map/collect/source errors, ring reserve failures and dropped records", f"{map_failures:.0f}, {ring_lost:.0f}", "0",
             "PASS" if map_failures == 0 and ring_lost == 0 else "MISS"),
            ("flows seen (removed + tracked at the end: churn)", f"{flows_seen:.0f}", "-", "info"),
            ("HTTP connections ok / failed (load, not the agent)", f"{churn_ok} / {churn_err}", "-", "info"),
            ("iperf3 runs failed (TCP, UDP)", f"{tcp_fail}, {udp_fail}", "-", "info"),
            ("agent exit status after SIGTERM", str(agent_rc), "0", "PASS" if agent_rc == 0 else "MISS"),
        ]
        table = ["| metric | value | target | verdict |", "|---|---|---|---|"]
        table += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
        for line in table:
            print(line)
        for x in error_lines[:10]:
            log("agent: " + x)
        for x in nonzero:
            log("failure counter: " + x)
        if not a.no_doc:
            cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                        if line.startswith("model name")), "?")
            with open(os.path.join(ROOT, "docs", "soak.md"), "w") as f:
                f.write(f"# Soak (`make soak`)\n\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs ({cpu}), "
                        f"kernel {os.uname().release}; the agent in its default configuration, "
                        f"{secs / 60:.0f} minutes of mixed traffic (bench/soak.py).\n\n")
                f.write("\n".join(table) + "\n\n")
                if nonzero:
                    f.write("Failure counters that moved: " + "; ".join(f"`{x}`" for x in nonzero) + "\n\n")
                f.write("RSS over time (MiB): " + ", ".join(f"{s[0] / 60:.0f} min {s[1] / 1024:.1f}"
                                                           for s in samples[::4]) + "\n")
            log("wrote docs/soak.md")
        print(f"RESULT\tsoak_ok\t{int(ok)}")
        return 0 if ok else 2


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--warmup", type=int, default=600)
    p.add_argument("--agent", default=os.path.join(ROOT, "bin", "netprobe-agent"))
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("soak: needs root", file=sys.stderr)
        return 1
    s = Soak(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return s.run()
    finally:
        s.cleanup()


if __name__ == "__main__":
    sys.exit(main())
