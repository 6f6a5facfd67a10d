"""A point-to-point layer-3 link made of two TUN devices, like a WireGuard or ipip
tunnel: creates TUN device NAME_A in network namespace NS_A and NAME_B in NS_B
(IFF_TUN | IFF_NO_PI: bare IP packets, no link-layer header) and copies every packet
one device emits into the other. It counts what it copies, per direction, and is the
test's oracle for what crossed the link.

usage: tun_relay.py NS_A NAME_A NS_B NAME_B
Prints "ready" once both devices exist; on SIGUSR1 prints
"counts OUT_PACKETS OUT_BYTES IN_PACKETS IN_BYTES" for NAME_A: the packets read from
it (what its stack sent) and the packets written into it (what it received); exits
on SIGTERM.
"""

import ctypes
import fcntl
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


def main() -> int:
    ns_a, name_a, ns_b, name_b = sys.argv[1:5]
    a = open_tun(ns_a, name_a)
    b = open_tun(ns_b, name_b)
    a_out = [0, 0]  # packets, bytes read from A
    a_in = [0, 0]   # packets, bytes written into A
    report = os.pipe()
    os.set_blocking(report[1], False)
    signal.signal(signal.SIGUSR1, lambda *_: os.write(report[1], b"x"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    other = {a: b, b: a}
    while True:
        try:
            ready, _, _ = select.select([a, b, report[0]], [], [])
        except InterruptedError:
            continue
        for fd in ready:
            if fd == report[0]:
                os.read(report[0], 64)
                print(f"counts {a_out[0]} {a_out[1]} {a_in[0]} {a_in[1]}", flush=True)
                continue
            while True:
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if fd == a:
                    a_out[0] += 1
                    a_out[1] += len(pkt)
                try:
                    os.write(other[fd], pkt)
                except OSError:
                    continue  # the other device is down: the packet is lost, as on a real link
                if fd == b:
                    a_in[0] += 1
                    a_in[1] += len(pkt)


if __name__ == "__main__":
    sys.exit(main())
