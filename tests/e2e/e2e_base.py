"""Small helpers of the end-to-end tests (processes, polling, ports); re-exported by
netprobe_e2e."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Callable

PYTHON = "/usr/bin/python3"  # Debian's: its modules (scapy) load there

# ---------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(f"[e2e] {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, timeout: float = 60, netns: str | None = None,
        input: str | None = None, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, env=env, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"command failed ({p.returncode}): {' '.join(argv)}\n"
                             f"stdout: {p.stdout.strip()}\nstderr: {p.stderr.strip()}")
    return p


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Polls pred until it returns a truthy value; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (AssertionError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc})" if last_exc else ""))
        time.sleep(interval)


def require_tools(*tools: str) -> None:
    """Missing tools are a failure, not a skip: scripts/setup-deps.sh installs them."""
    missing = [t for t in tools if not (os.path.isabs(t) and os.access(t, os.X_OK)) and not shutil.which(t)]
    if missing:
        raise AssertionError(f"required tool(s) missing: {', '.join(missing)} (run scripts/setup-deps.sh)")


def free_port(netns: str | None = None) -> int:
    """A TCP port that nothing listens on (bind to port 0 and let the kernel pick)."""
    if netns is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    code = "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"
    return int(run([PYTHON, "-c", code], netns=netns).stdout.strip())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def within(a: float, b: float, tolerance: float) -> bool:
    """|a-b| <= tolerance * max(|a|,|b|) (both zero: equal)."""
    m = max(abs(a), abs(b))
    return m == 0 or abs(a - b) <= tolerance * m


