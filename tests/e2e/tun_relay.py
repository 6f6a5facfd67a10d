"""A point-to-point layer-3 link made of two TUN devices, like a WireGuard or ipip
tunnel: creates TUN device NAME_A in network namespace NS_A and NAME_B in NS_B
(IFF_TUN | IFF_NO_PI: bare IP packets, no link-layer header) and copies every packet
one device emits into the other. It counts what it copies, per direction, and is the
test's oracle for what crossed the link.

usage: tun_relay.py NS_A NAME_A NS_B NAME_B [DELAY_MS JITTER_MS SEED]
Prints "ready" once both devices exist; on SIGUSR1 prints
"counts OUT_PACKETS OUT_BYTES IN_PACKETS IN_BYTES" for NAME_A: the packets read from
it (what its stack sent) and the packets written into it (what it received); exits
on SIGTERM.

With DELAY_MS, a delaying link (this kernel has no netem): every packet from A to B is
held DELAY_MS +- JITTER_MS (uniform, seeded) before it is written into B; B to A is not
delayed. On SIGUSR1 it also prints "syn N MEDIAN_MS MEAN_ABS_DIFF_MS" over the delays
it gave TCP SYNs (IPv4), in order: their median and the mean deviation between
successive ones (the jitter a handshake-timing observer on A's side should measure).
SIGUSR2 adds 40 ms to DELAY_MS (a latency jump) and prints "delay MS".
"""

import ctypes
import fcntl
import heapq
import random
import time
import os
import select
import signal
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def open_tun(netns: str, name: str) -> int:
    setns(f"/run/netns/{netns}")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def is_tcp_syn(pkt: bytes) -> bool:
    if len(pkt) < 20 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return False
    off = (pkt[0] & 0x0F) * 4
    return len(pkt) > off + 13 and pkt[off + 13] & 0x12 == 0x02


def main() -> int:
    ns_a, name_a, ns_b, name_b = sys.argv[1:5]
    delay = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.0
    jitter = float(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0.0
    rng = random.Random(int(sys.argv[7]) if len(sys.argv) > 7 else 1)
    held = []  # (release time, sequence, packet): A -> B packets not yet written
    seq = 0
    syn_delays = []
    a = open_tun(ns_a, name_a)
    b = open_tun(ns_b, name_b)
    a_out = [0, 0]  # packets, bytes read from A
    a_in = [0, 0]   # packets, bytes written into A
    report = os.pipe()
    os.set_blocking(report[1], False)
    signal.signal(signal.SIGUSR1, lambda *_: os.write(report[1], b"x"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    state = {"delay": delay}

    def jump(*_):
        state["delay"] += 0.040
        os.write(report[1], b"d")
    signal.signal(signal.SIGUSR2, jump)
    print("ready", flush=True)
    other = {a: b, b: a}
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, pkt = heapq.heappop(held)
            try:
                os.write(b, pkt)
            except OSError:
                pass
        timeout = max(0.0, held[0][0] - now) if held else None
        try:
            ready, _, _ = select.select([a, b, report[0]], [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            if fd == report[0]:
                got = os.read(report[0], 64)
                if b"d" in got:
                    print(f"delay {state['delay'] * 1000:.0f}", flush=True)
                    if b"x" not in got:
                        continue
                print(f"counts {a_out[0]} {a_out[1]} {a_in[0]} {a_in[1]}", flush=True)
                if delay:
                    d = sorted(syn_delays)
                    med = (d[len(d) // 2] if len(d) % 2 else (d[len(d) // 2 - 1] + d[len(d) // 2]) / 2) if d else 0
                    diffs = [abs(x - y) for x, y in zip(syn_delays[1:], syn_delays[:-1])]
                    mad = sum(diffs) / len(diffs) if diffs else 0
                    print(f"syn {len(d)} {med * 1000:.3f} {mad * 1000:.3f}", flush=True)
                continue
            while True:
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if fd == a:
                    a_out[0] += 1
                    a_out[1] += len(pkt)
                    if state["delay"]:
                        d = max(0.0, state["delay"] + rng.uniform(-jitter, jitter))
                        if is_tcp_syn(pkt):
                            syn_delays.append(d)
                        seq += 1
                        heapq.heappush(held, (time.monotonic() + d, seq, pkt))
                        continue
                try:
                    os.write(other[fd], pkt)
                except OSError:
                    continue  # the other device is down: the packet is lost, as on a real link
                if fd == b:
                    a_in[0] += 1
                    a_in[1] += len(pkt)


if __name__ == "__main__":
    sys.exit(main())
