"""Reading what the agent and the kernel say, for the end-to-end tests: the Prometheus
text format (Metrics), BPF attachments asked of the kernel (bpftool 7.1 does not show
tcx links), and interface counters. Re-exported by netprobe_e2e."""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterable

from e2e_base import PYTHON, run

_libc = ctypes.CDLL(None, use_errno=True)

# ---------------------------------------------------------------------------
# Prometheus text format


@dataclass
class Sample:
    name: str
    labels: dict
    value: float


def _parse_labels(s: str) -> dict:
    labels, i, n = {}, 0, len(s)
    while i < n:
        while i < n and s[i] in " ,":
            i += 1
        if i >= n:
            break
        j = s.index("=", i)
        key = s[i:j].strip()
        if s[j + 1] != '"':
            raise ValueError(f"label value not quoted: {s!r}")
        i, val = j + 2, []
        while s[i] != '"':
            if s[i] == "\\":
                i += 1
                val.append({"n": "\n", "\\": "\\", '"': '"'}.get(s[i], "\\" + s[i]))
            else:
                val.append(s[i])
            i += 1
        labels[key] = "".join(val)
        i += 1
    return labels


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$")


class Metrics:
    """Parsed /metrics: samples plus # TYPE / # HELP per family."""

    def __init__(self, text: str):
        self.text = text
        self.samples: list[Sample] = []
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    self.types[parts[2]] = parts[3] if len(parts) > 3 else ""
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise ValueError(f"unparsable metrics line: {line!r}")
            v = m.group(3)
            value = {"+Inf": float("inf"), "-Inf": float("-inf"), "NaN": float("nan")}.get(v)
            self.samples.append(Sample(m.group(1), _parse_labels(m.group(2) or ""),
                                       value if value is not None else float(v)))

    def find(self, name: str, **labels) -> list[Sample]:
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def get(self, name: str, **labels) -> float:
        """The value of the one sample of name whose labels include labels."""
        found = self.find(name, **labels)
        if len(found) != 1:
            raise AssertionError(f"expected exactly one sample {name}{labels}, found {len(found)}")
        return found[0].value

    def get_or(self, name: str, default: float = 0.0, **labels) -> float:
        found = self.find(name, **labels)
        return found[0].value if len(found) == 1 else default

    def series_count(self, name: str | None = None) -> int:
        return len(self.samples) if name is None else len(self.find(name))


# ---------------------------------------------------------------------------
# BPF attachments (bpftool 7.1 on Debian 12 does not show tcx links: ask the kernel)

_SYS_BPF = 321  # x86_64
_BPF_PROG_QUERY = 16
_BPF_TCX_INGRESS, _BPF_TCX_EGRESS = 46, 47


def _tcx_query(ifindex: int, attach_type: int) -> list[int]:
    ids = (ctypes.c_uint32 * 64)()
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = ifindex
    ctypes.c_uint32.from_buffer(attr, 4).value = attach_type
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(ids)
    ctypes.c_uint32.from_buffer(attr, 24).value = 64
    r = _libc.syscall(_SYS_BPF, _BPF_PROG_QUERY, ctypes.byref(attr), ctypes.sizeof(attr))
    if r != 0:
        err = ctypes.get_errno()
        if err in (2, 22, 95):  # ENOENT, EINVAL, EOPNOTSUPP: nothing attached / no tcx
            return []
        raise OSError(err, f"BPF_PROG_QUERY ifindex {ifindex}: {os.strerror(err)}")
    return list(ids[: ctypes.c_uint32.from_buffer(attr, 24).value])


def prog_names() -> dict[int, str]:
    """id -> name of every loaded BPF program."""
    out = run(["bpftool", "-j", "prog", "show"]).stdout
    return {p["id"]: p.get("name", "") for p in json.loads(out or "[]")}


def netprobe_prog_ids() -> set[int]:
    return {i for i, n in prog_names().items() if n.startswith("netprobe")}


def _attachments_here(ifname: str) -> dict[str, list[tuple[int, str]]]:
    names = prog_names()
    ifindex = socket.if_nametoindex(ifname)
    res: dict[str, list[tuple[int, str]]] = {}
    for where, at in (("tcx_ingress", _BPF_TCX_INGRESS), ("tcx_egress", _BPF_TCX_EGRESS)):
        res[where] = [(i, names.get(i, "?")) for i in _tcx_query(ifindex, at)]
    net = json.loads(run(["bpftool", "-j", "net", "show", "dev", ifname]).stdout or "[{}]")[0]
    res["xdp"] = [(x["id"], names.get(x["id"], "?")) for x in net.get("xdp", [])]
    res["xdp_modes"] = [(x["id"], x.get("mode", "?")) for x in net.get("xdp", [])]
    for t in net.get("tc", []):
        kind = t.get("kind", "")  # clsact/ingress, clsact/egress
        key = "clsact_" + kind.split("/")[-1]
        res.setdefault(key, []).append((t["id"], t.get("name", names.get(t["id"], "?"))))
    res.setdefault("clsact_ingress", [])
    res.setdefault("clsact_egress", [])
    return res


def attachments(ifname: str, netns: str | None = None) -> dict[str, list[tuple[int, str]]]:
    """Programs attached to ifname, by hook: {tcx_ingress, tcx_egress, xdp, clsact_ingress, clsact_egress}."""
    if netns is None:
        return _attachments_here(ifname)
    out = run([PYTHON, os.path.abspath(__file__), "attachments", ifname], netns=netns).stdout
    return {k: [tuple(x) for x in v] for k, v in json.loads(out).items()}


def netprobe_attachments(ifname: str, netns: str | None = None) -> dict[str, list[tuple[int, str]]]:
    a = attachments(ifname, netns)
    return {k: [x for x in v if str(x[1]).startswith("netprobe")] for k, v in a.items() if k != "xdp_modes"}


def qdiscs(ifname: str, netns: str | None = None) -> list[str]:
    out = run(["tc", "-j", "qdisc", "show", "dev", ifname], netns=netns).stdout
    return [q.get("kind", "") for q in json.loads(out or "[]")]


def tc_netprobe_filters(ifname: str, direction: str, netns: str | None = None) -> list[str]:
    """The netprobe filters of `tc filter show dev IF ingress|egress` (one entry per filter)."""
    p = run(["tc", "-j", "filter", "show", "dev", ifname, direction], netns=netns, check=False)
    if p.returncode != 0 or not p.stdout.strip():
        return []
    names = []
    for f in json.loads(p.stdout):
        prog = f.get("options", {}).get("prog", {})
        if str(prog.get("name", "")).startswith("netprobe"):
            names.append(f"{prog['name']}:{prog.get('id')}")
    return names


def proc_bpf_ids(pid: int) -> tuple[set[int], set[int]]:
    """(program ids, link ids) held by a process's file descriptors."""
    progs, links = set(), set()
    base = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(base):
        try:
            with open(os.path.join(base, fd)) as f:
                info = f.read()
        except OSError:
            continue
        for key, dest in (("prog_id", progs), ("link_id", links)):
            m = re.search(rf"^{key}:\s+(\d+)", info, re.M)
            if m:
                dest.add(int(m.group(1)))
    return progs, links


def foreign_netprobe_prog_ids(exclude_pids: Iterable[int] = ()) -> set[int]:
    """Program ids held by netprobe-agent processes other than ours (another engineer's agent)."""
    ids: set[int] = set()
    skip = set(exclude_pids)
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in skip:
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "netprobe-agent":
                    continue
            ids |= proc_bpf_ids(int(d))[0]
        except OSError:
            continue
    return ids


# ---------------------------------------------------------------------------
# kernel interface counters


def kernel_stats(ifname: str, netns: str | None = None,
                 keys: tuple[str, ...] = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")) -> dict[str, int]:
    if netns is None:
        res = {}
        for k in keys:
            with open(f"/sys/class/net/{ifname}/statistics/{k}") as f:
                res[k] = int(f.read())
        return res
    out = run(["cat"] + [f"/sys/class/net/{ifname}/statistics/{k}" for k in keys], netns=netns).stdout.split()
    return dict(zip(keys, map(int, out)))


def nstat_counters(netns: str) -> dict[str, int]:
    """Every SNMP/netstat counter of the namespace, absolute (nstat -az, no history)."""
    return json.loads(run(["nstat", "-az", "--json"], netns=netns).stdout)["kernel"]




# run inside a namespace: python3 -m e2e_inspect attachments IFNAME
if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "attachments":
        print(json.dumps(_attachments_here(sys.argv[2])))
        sys.exit(0)
    print(f"usage: {sys.argv[0]} attachments IFNAME", file=sys.stderr)
    sys.exit(2)
