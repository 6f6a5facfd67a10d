"""Shared fixtures of NetProbe's end-to-end tests.

Every test builds its own world: network namespaces and veth pairs with unique
names (they contain this process's pid), addresses from 198.19.0.0/16 (inside
the benchmarking range 198.18.0.0/15) and fd6e:7072::/32, the real agent as a
subprocess, and whatever traffic tools it needs. Nothing is sent anywhere but
to those namespaces, their veths and loopback.

Teardown always runs: each resource registers its undo both with the test
(addCleanup) and with a process-wide stack that atexit drains, so a failing
test, an exception in setUp, Ctrl-C or SIGTERM (ctest's timeout) all clean up.
Children also get PR_SET_PDEATHSIG, and a later run removes what a SIGKILLed
run left (names carry the pid, so only dead runs' leftovers are touched).

Run from this directory with Debian's /usr/bin/python3 (scapy comes from the
python3-scapy package): /usr/bin/python3 -m unittest -v test_counters
The agent binary is $NETPROBE_AGENT (default: <repo>/bin/netprobe-agent).
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import ipaddress
import itertools
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import dataclass
from typing import Callable, Iterable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AGENT = os.environ.get("NETPROBE_AGENT") or os.path.join(REPO, "bin", "netprobe-agent")
PID = os.getpid()
PREFIX = "npe"  # every namespace, link and temp dir this suite creates starts with npe<pid>
L2_HEADER = 14

# ---------------------------------------------------------------------------
# cleanup registry


class _Registry:
    """LIFO of undo actions shared by all tests of this process."""

    def __init__(self) -> None:
        self._items: list[tuple[int, str, Callable[[], None]]] = []
        self._ids = itertools.count(1)

    def push(self, what: str, fn: Callable[[], None]) -> int:
        token = next(self._ids)
        self._items.append((token, what, fn))
        return token

    def run(self, token: int) -> None:
        for i, (t, what, fn) in enumerate(self._items):
            if t == token:
                del self._items[i]
                _safely(what, fn)
                return

    def run_all(self) -> None:
        while self._items:
            _, what, fn = self._items.pop()
            _safely(what, fn)


def _safely(what: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except BaseException as e:  # cleanup must go on whatever happens
        print(f"[e2e] cleanup of {what} failed: {e!r}", file=sys.stderr)


REGISTRY = _Registry()
atexit.register(REGISTRY.run_all)

# Every agent this process starts keeps its state (the history store) here unless a test
# says otherwise (the Agent class gives each one a directory of its own): never the
# machine's /var/lib/netprobe.
_STATE = tempfile.mkdtemp(prefix=f"npe{os.getpid()}-state-")
os.environ["NETPROBE_STATE_DIR"] = _STATE
REGISTRY.push(f"temp dir {_STATE}", lambda: shutil.rmtree(_STATE, ignore_errors=True))


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# unittest lets KeyboardInterrupt through without running cleanups; atexit then does.
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _raise_interrupt)

# ---------------------------------------------------------------------------
# helpers and readers (e2e_base, e2e_inspect)

from e2e_base import PYTHON, free_port, log, pid_alive, require_tools, run, wait_for, within  # noqa: E402,F401
from e2e_inspect import (Metrics, Sample, attachments, foreign_netprobe_prog_ids, kernel_stats,  # noqa: E402,F401
                         netprobe_attachments, netprobe_prog_ids, proc_bpf_ids, prog_names, qdiscs,
                         tc_netprobe_filters)


# ---------------------------------------------------------------------------
# unique names and addresses

_seq = itertools.count(1)
_ns_seq = itertools.count(1)
MAX_PAIRS = 64  # veth pairs per test process (addresses: 256 pid slots x 64 pairs = 16384 /30s)


def unique_index() -> int:
    """Small per-run index: distinct for every veth pair of this process."""
    n = next(_seq)
    if n >= MAX_PAIRS:
        raise AssertionError("too many veth pairs in one test process")
    return n


def _addr_block(idx: int) -> tuple[str, str, str, str]:
    """A /30 from 198.19.0.0/16 and a /64 from fd6e:7072::/32 for pair idx of this process."""
    slot = (PID % 256) * MAX_PAIRS + idx  # < 16384 /30 blocks
    base = int(ipaddress.IPv4Address("198.19.0.0")) + slot * 4
    v4h, v4n = str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))
    v6 = f"fd6e:7072:{slot:x}::"
    return v4h, v4n, v6 + "1", v6 + "2"


# ---------------------------------------------------------------------------
# leftovers of killed runs

_NAME_RE = re.compile(rf"^{PREFIX}(\d+)[a-z]\d+$")


def sweep_stale() -> None:
    """Removes namespaces, links and temp dirs of earlier runs whose process is gone."""
    out = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    for ns in json.loads(out) if out else []:
        m = _NAME_RE.match(ns.get("name", ""))
        if m and int(m.group(1)) != PID and not pid_alive(int(m.group(1))):
            for pid in run(["ip", "netns", "pids", ns["name"]], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", ns["name"]], check=False)
    out = run(["ip", "-j", "link", "show"], check=False).stdout.strip()
    for link in json.loads(out) if out else []:
        m = _NAME_RE.match(link.get("ifname", ""))
        if m and int(m.group(1)) != PID and not pid_alive(int(m.group(1))):
            run(["ip", "link", "del", link["ifname"]], check=False)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.match(rf"^{PREFIX}(\d+)-", d)
        if m and int(m.group(1)) != PID and not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


# ---------------------------------------------------------------------------
# processes

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # If this test process dies (even by SIGKILL) the child gets SIGTERM: an agent
    # then detaches cleanly, servers exit.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Proc:
    """A background process in its own process group, stopped at cleanup."""

    def __init__(self, argv: list[str], netns: str | None = None, log_path: str | None = None,
                 env: dict | None = None, stdout=None, stderr=None, name: str | None = None):
        self.name = name or os.path.basename(argv[0])
        self.argv = (["ip", "netns", "exec", netns] if netns else []) + list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else None
        out = stdout if stdout is not None else (self._log or subprocess.DEVNULL)
        err = stderr if stderr is not None else (subprocess.STDOUT if self._log else subprocess.DEVNULL)
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                  start_new_session=True, preexec_fn=_child_setup)
        self.pid = self.p.pid
        self.returncode: int | None = None

    def running(self) -> bool:
        return self.p.poll() is None

    def send(self, sig: int) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int:
        self.returncode = self.p.wait(timeout=timeout)
        return self.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """sig to the group, then SIGKILL after timeout. Returns the exit status."""
        if self.p.poll() is None:
            self.send(sig)
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.pid}) ignored signal {sig}; killing it")
                self.send(signal.SIGKILL)
                self.p.wait(timeout=10)
        # the group may hold children (tshark's dumpcap): make sure none survives
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log:
            self._log.close()
            self._log = None
        self.returncode = self.p.returncode
        return self.returncode

    def output(self) -> str:
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


# ---------------------------------------------------------------------------
# HTTP


def http_request(port: int, path: str, method: str = "GET", netns: str | None = None,
                 timeout: float = 5) -> tuple[int, dict, str]:
    """(status, headers, body) of one request to 127.0.0.1:port (inside netns if given)."""
    if netns is None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request(method, path)
            r = c.getresponse()
            body = r.read().decode()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()
    p = run(["curl", "-sS", "--noproxy", "*", "--max-time", str(timeout), "-X", method, "-D", "-",
             f"http://127.0.0.1:{port}{path}"], netns=netns, check=False, timeout=timeout + 5)
    if p.returncode != 0:
        raise OSError(f"curl in {netns} failed ({p.returncode}): {p.stderr.strip()}")
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


# ---------------------------------------------------------------------------
# topology


def netns_file(ns: str) -> str:
    """The file that names network namespace ns (for --socket-netns)."""
    for d in ("/run/netns", "/var/run/netns"):
        if os.path.exists(os.path.join(d, ns)):
            return os.path.join(d, ns)
    raise AssertionError(f"no namespace file for {ns}")


def wait_line(proc, prefix: bytes, timeout: float) -> bytes:
    """The first line of proc's stdout (a pipe), which must start with prefix."""
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not proc.running() and not select.select([proc.p.stdout], [], [], 0)[0]:
            break
        if select.select([proc.p.stdout], [], [], min(left, 0.2))[0]:
            b = os.read(proc.p.stdout.fileno(), 1)
            if not b:
                break
            line += b
    if not line.startswith(prefix):
        raise AssertionError(f"{proc.name} did not print {prefix!r} within {timeout}s (got {line!r})")
    return line


# nginx's main configuration for a test instance (E2ETestCase.start_nginx): no daemon,
# everything it writes under {d}, the servers of the test in the http block.
_NGINX_CONF = """
daemon off;
user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 100000;
{servers}
}}
"""


@dataclass
class Veth:
    host: str            # name of the end outside the namespace (or in host_ns)
    peer: str            # name of the end inside ns
    ns: str              # namespace of the peer end
    host_ns: str | None  # namespace of the host end (None: the test's own)
    host_ip: str
    peer_ip: str
    host_ip6: str
    peer_ip6: str
    host_mac: str = ""
    peer_mac: str = ""
    host_ifindex: int = 0


def _quiet_ipv6(ifname: str, netns: str | None) -> None:
    """No router solicitations, RA processing or DAD: keeps background packets to a minimum."""
    conf = f"net.ipv6.conf.{ifname}"
    run(["sysctl", "-qw", f"{conf}.accept_ra=0", f"{conf}.router_solicitations=0", f"{conf}.accept_dad=0",
         f"{conf}.dad_transmits=0"], netns=netns, check=False)


def _link_info(ifname: str, netns: str | None) -> dict:
    return json.loads(run(["ip", "-j", "link", "show", "dev", ifname], netns=netns).stdout)[0]


class E2ETestCase(unittest.TestCase):
    """Base class: resource factories whose teardown always runs."""

    maxDiff = None
    _swept = False

    @classmethod
    def setUpClass(cls) -> None:
        if os.geteuid() != 0:
            raise AssertionError("the e2e tests need root (network namespaces, BPF)")
        require_tools(AGENT, "ip", "tc", "bpftool", "curl", "sysctl")
        if not E2ETestCase._swept:
            E2ETestCase._swept = True
            sweep_stale()

    # -- generic cleanup plumbing -------------------------------------------------

    def defer(self, what: str, fn: Callable[[], None]) -> None:
        """Registers fn to run at test cleanup, or at process exit if the test is interrupted."""
        token = REGISTRY.push(what, fn)
        self.addCleanup(REGISTRY.run, token)

    def tmpdir(self) -> str:
        d = tempfile.mkdtemp(prefix=f"{PREFIX}{PID}-")
        self.defer(f"temp dir {d}", lambda: shutil.rmtree(d, ignore_errors=True))
        return d

    def start_nginx(self, netns: str, servers: str, ready: list[str], ready_netns: str | None = None,
                    prepare: Callable[[str], None] | None = None) -> str:
        """nginx as a test server: pid, logs and temp files in a temp dir D (returned), a
        self-signed certificate D/cert.pem + D/key.pem, the http block's `servers` (a
        template: {d} is D), started in netns; returns once `ready` (a command run in
        ready_netns) succeeds. prepare(D) runs before nginx starts (content to serve)."""
        d = self.tmpdir()
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/key.pem",
             "-out", f"{d}/cert.pem", "-days", "2", "-subj", "/CN=netprobe-test"])
        if prepare:
            prepare(d)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_NGINX_CONF.format(d=d, servers=servers.format(d=d)))
        self.spawn(["nginx", "-c", conf], netns=netns, name="nginx")
        wait_for(lambda: run(ready, netns=ready_netns, check=False).returncode == 0, 10, "nginx to answer")
        return d

    def spawn(self, argv: list[str], netns: str | None = None, log_name: str | None = None,
              env: dict | None = None, **kw) -> Proc:
        log_path = os.path.join(self.tmpdir(), log_name) if log_name else None
        p = Proc(argv, netns=netns, log_path=log_path, env=env, **kw)
        self.defer(f"process {p.name} ({p.pid})", p.stop)
        return p

    # -- topology -------------------------------------------------------------------

    def make_netns(self) -> str:
        name = f"{PREFIX}{PID}x{next(_ns_seq)}"
        run(["ip", "netns", "add", name])

        def delete():
            for pid in run(["ip", "netns", "pids", name], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", name], check=False)

        self.defer(f"netns {name}", delete)
        run(["ip", "link", "set", "lo", "up"], netns=name)
        return name


    # pods as a bridge CNI lays them out on one node: namespaces whose eth0 is a bridge port
    def make_bridge(self) -> str:
        name = f"{PREFIX}{PID}b{unique_index()}"
        run(["ip", "link", "add", name, "type", "bridge"])
        self.defer(f"bridge {name}", lambda: run(["ip", "link", "del", name], check=False))
        _quiet_ipv6(name, None)
        run(["ip", "link", "set", name, "up"])
        return name

    def make_pod_netns(self, bridge: str, ip: str) -> tuple[str, str]:
        """A namespace with ip/24 on eth0, its host end a port of bridge; returns (netns, host veth)."""
        ns = self.make_netns()
        idx = unique_index()
        host = f"{PREFIX}{PID}h{idx}"
        run(["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns])
        self.defer(f"veth {host}", lambda: run(["ip", "link", "del", host], check=False))
        _quiet_ipv6(host, None)
        _quiet_ipv6("eth0", ns)
        run(["ip", "link", "set", host, "master", bridge, "up"])
        run(["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], netns=ns)
        run(["ip", "link", "set", "eth0", "up"], netns=ns)
        return ns, host

    def make_veth(self, ns: str | None = None, host_ns: str | None = None) -> Veth:
        """A veth pair: one end in host_ns (default: here), the other in ns (default: a new one).
        IPv4 /30 and IPv6 /64 on both ends, both up, IPv6 kept quiet."""
        if ns is None:
            ns = self.make_netns()
        idx = unique_index()
        h, n = f"{PREFIX}{PID}h{idx}", f"{PREFIX}{PID}n{idx}"
        assert len(h) <= 15 and len(n) <= 15, (h, n)
        hip, nip, hip6, nip6 = _addr_block(idx)
        run(["ip", "link", "add", h, "type", "veth", "peer", "name", n, "netns", ns], netns=host_ns)
        # Deleting one end deletes the pair at once; netns deletion would do it only asynchronously.
        self.defer(f"veth {h}", lambda: run(["ip", "link", "del", h], netns=host_ns, check=False))
        for ifname, where, ip4, ip6 in ((h, host_ns, hip, hip6), (n, ns, nip, nip6)):
            _quiet_ipv6(ifname, where)
            run(["ip", "addr", "add", f"{ip4}/30", "dev", ifname], netns=where)
            run(["ip", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad"], netns=where)
            run(["ip", "link", "set", ifname, "up"], netns=where)
        v = Veth(h, n, ns, host_ns, hip, nip, hip6, nip6)
        v.host_mac = _link_info(h, host_ns)["address"]
        v.peer_mac = _link_info(n, ns)["address"]
        v.host_ifindex = _link_info(h, host_ns)["ifindex"]
        return v

    # -- the agent --------------------------------------------------------------------

    def start_agent(self, *args: str, netns: str | None = None, port: int | None = None,
                    env: dict | None = None, ready_timeout: float = 20, address: str = "127.0.0.1") -> "Agent":
        a = Agent(self, list(args), netns=netns, port=port, env=env, address=address)
        a.start(ready_timeout)
        return a

    # -- assertions -----------------------------------------------------------------

    def assertWithin(self, actual: float, expected: float, tolerance: float, what: str) -> None:
        diff = 0.0 if max(abs(actual), abs(expected)) == 0 else abs(actual - expected) / max(abs(actual), abs(expected))
        log(f"{what}: agent={actual} reference={expected} diff={diff * 100:.3f}%")
        self.assertTrue(within(actual, expected, tolerance),
                        f"{what}: agent {actual} vs reference {expected} differ by {diff * 100:.3f}% "
                        f"(> {tolerance * 100:.2f}%)")

    def assertNothingAttached(self, ifname: str, netns: str | None = None, agent_prog_ids: Iterable[int] = (),
                              timeout: float = 10) -> None:
        """No netprobe program on ifname's hooks, and none of the given program ids still loaded."""
        ids = set(agent_prog_ids)

        def clean():
            left = {k: v for k, v in netprobe_attachments(ifname, netns).items() if v}
            if left:
                raise AssertionError(f"still attached to {ifname}: {left}")
            still = ids & set(prog_names())
            if still:
                raise AssertionError(f"agent's programs still loaded: {sorted(still)}")
            return True

        wait_for(clean, timeout, f"netprobe programs to be gone from {ifname}", interval=0.2)


class Agent:
    """One netprobe-agent process (on the host or inside a namespace)."""

    def __init__(self, tc: E2ETestCase, args: list[str], netns: str | None = None, port: int | None = None,
                 env: dict | None = None, address: str = "127.0.0.1"):
        self.tc = tc
        self.netns = netns
        self.port = port or free_port(netns)
        self.args = [f"--metrics-port={self.port}", f"--metrics-address={address}"] + args
        # state (the history store, spools) in the test's own directory, never the machine's
        if not any(a.startswith("--state-dir") for a in args):
            self.args.append(f"--state-dir={tc.tmpdir()}")
        self.env = env
        self.proc: Proc | None = None

    def start(self, ready_timeout: float = 20) -> None:
        self.proc = self.tc.spawn([AGENT] + self.args, netns=self.netns, log_name="agent.log", env=self.env,
                                  name="netprobe-agent")
        # the agent prints its log on stdout/stderr; show it when the test fails
        self.tc.addCleanup(self._dump_log_on_failure)

        def ready():
            if not self.proc.running():
                raise AssertionError(f"agent exited with {self.proc.p.returncode}:\n{self.proc.output()}")
            return self.request("/readyz")[0] == 200

        try:
            wait_for(ready, ready_timeout, "the agent's /readyz to answer 200", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\nagent log:\n{self.proc.output()}") from None

    def _dump_log_on_failure(self) -> None:
        outcome = getattr(self.tc, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = not getattr(outcome, "success", True)
        if result is not None and (result.errors or result.failures):
            failed = failed or any(t is self.tc for t, _ in result.errors + result.failures)
        if failed and self.proc is not None:
            sys.stderr.write(f"---- agent log ({' '.join(self.args)}) ----\n{self.proc.output()}\n----\n")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def request(self, path: str, method: str = "GET") -> tuple[int, dict, str]:
        return http_request(self.port, path, method=method, netns=self.netns)

    def get_json(self, path: str, expect: int = 200):
        status, headers, body = self.request(path)
        if status != expect:
            raise AssertionError(f"GET {path}: status {status}, expected {expect}: {body[:500]}")
        return json.loads(body)

    def metrics(self) -> Metrics:
        status, _, body = self.request("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        return Metrics(body)

    def interfaces(self) -> dict[str, dict]:
        return {i["name"]: i for i in self.get_json("/api/v1/interfaces")["interfaces"]}

    def flows(self, **params) -> dict:
        from urllib.parse import urlencode
        q = urlencode(params)
        return self.get_json("/api/v1/flows" + (f"?{q}" if q else ""))

    def collections(self) -> int:
        return int(self.metrics().get("netprobe_collections_total"))

    def wait_collections(self, n: int = 3, timeout: float = 20) -> Metrics:
        """Waits until n more collections happened; returns the metrics after them."""
        start = self.collections()
        wait_for(lambda: self.collections() >= start + n, timeout, f"{n} more collections", interval=0.05)
        return self.metrics()

    def wait_stable(self, names: Iterable[str], settle: int = 3, timeout: float = 30, key=None) -> Metrics:
        """Waits until the given families (or key(metrics), when given) stay unchanged over
        `settle` consecutive collections."""
        names = list(names)

        def values(m: Metrics):
            if key is not None:
                return key(m)
            return sorted((s.name, sorted(s.labels.items()), s.value) for s in m.samples if s.name in names)

        deadline = time.monotonic() + timeout
        prev, same = None, 0
        while True:
            m = self.wait_collections(1)
            v = values(m)
            same = same + 1 if v == prev else 0
            prev = v
            if same >= settle:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"counters {names} did not settle within {timeout}s")

    def bpf_ids(self) -> tuple[set[int], set[int]]:
        return proc_bpf_ids(self.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        return self.proc.stop(sig, timeout)

    def output(self) -> str:
        return self.proc.output() if self.proc else ""
