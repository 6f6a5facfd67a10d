#!/usr/bin/python3
"""TCP connection storm over loopback for bench/stack_bench.sh (run inside a network
namespace). One server process accepts and closes; PROCS client processes open and
abort (SO_LINGER 0: RST, no TIME_WAIT, so ports are not exhausted) connections, paced
to RATE connections/s in total (0 = as fast as possible), for at most SECONDS and at
most RATE*SECONDS connections (unpaced: COUNT). Prints one JSON line:
{"connections": N, "seconds": S, "rate": N/S}.

Usage: stack_load.py RATE SECONDS [PROCS=2] [COUNT=200000]
"""
import json
import os
import socket
import struct
import sys
import time


def main() -> int:
    rate = float(sys.argv[1])
    secs = float(sys.argv[2])
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 200000
    total = int(rate * secs) if rate > 0 else count
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    port = srv.getsockname()[1]
    server = os.fork()
    if server == 0:
        srv.settimeout(2)
        try:
            while True:
                c, _ = srv.accept()
                c.close()
        except OSError:
            os._exit(0)
    linger = struct.pack("ii", 1, 0)
    start = time.monotonic()
    deadline = start + secs + 5  # hard bound even when the machine cannot keep up
    kids = []
    rfd, wfd = os.pipe()
    for p in range(procs):
        n = total // procs + (1 if p < total % procs else 0)
        pid = os.fork()
        if pid == 0:
            per = rate / procs if rate > 0 else 0
            done = 0
            while done < n and time.monotonic() < deadline:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                try:
                    s.connect(("127.0.0.1", port))
                    done += 1
                except OSError:
                    pass
                s.close()
                if per and done % 20 == 0:
                    ahead = start + done / per - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
            os.write(wfd, struct.pack("q", done))
            os._exit(0)
        kids.append(pid)
    os.close(wfd)
    made = 0
    with os.fdopen(rfd, "rb") as r:
        while chunk := r.read(8):
            made += struct.unpack("q", chunk)[0]
    for k in kids:
        os.waitpid(k, 0)
    elapsed = time.monotonic() - start
    srv.close()
    os.kill(server, 15)
    os.waitpid(server, 0)
    print(json.dumps({"connections": made, "seconds": round(elapsed, 3), "rate": round(made / elapsed, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
