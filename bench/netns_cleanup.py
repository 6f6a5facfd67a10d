"""Shared by the bench scripts: removing a namespace a bench created, with whatever
still runs in it (a failed or interrupted run must not leave one behind)."""

import os
import signal
import subprocess


def delete_netns(*names: str) -> None:
    """SIGKILLs every process in each namespace, then deletes it; a missing one is fine."""
    for ns in names:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
