#!/usr/bin/python3
"""Short-lived TCP connections from random source ports, for bench/series_churn.sh.

  churn_load.py server ADDR PORT[,PORT...]
      Listens on ADDR at every PORT (one thread each). Each connection: reads the
      request line "SIZE\\n", answers SIZE bytes, closes. Runs until killed.
  churn_load.py client ADDR PORT[,PORT...] RATE SECONDS
      RATE connections/s for SECONDS: each one bound to a random source port
      (32768-60999, the Linux ephemeral range), to a random server PORT, asking for a
      random answer of 1-64 KiB, then closed. Prints one JSON line at the end:
      {"connections": N, "failed": F, "bytes": B, "seconds": S}.
"""
import json
import random
import socket
import sys
import threading
import time


def serve(addr: str, port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(256)
    while True:
        c, _ = srv.accept()
        try:
            c.settimeout(5)
            req = b""
            while not req.endswith(b"\n") and len(req) < 32:
                chunk = c.recv(32)
                if not chunk:
                    break
                req += chunk
            size = min(int(req.strip() or b"0"), 1 << 20)
            c.sendall(b"x" * size)
        except (OSError, ValueError):
            pass
        finally:
            c.close()


def client(addr: str, ports: list, rate: float, secs: float) -> dict:
    rng = random.SystemRandom()
    n = failed = nbytes = 0
    start = time.monotonic()
    while True:
        now = time.monotonic()
        if now - start >= secs:
            break
        due = start + n / rate if rate > 0 else now
        if due > now:
            time.sleep(due - now)
        n += 1
        s = socket.socket()
        try:
            s.settimeout(5)
            for _ in range(20):  # a random port that is free (not in TIME_WAIT with this peer)
                try:
                    s.bind(("0.0.0.0", rng.randint(32768, 60999)))
                    break
                except OSError:
                    continue
            s.connect((addr, rng.choice(ports)))
            s.sendall(b"%d\n" % rng.randint(1024, 65536))
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                nbytes += len(chunk)
        except OSError:
            failed += 1
        finally:
            s.close()
    return {"connections": n, "failed": failed, "bytes": nbytes, "seconds": round(time.monotonic() - start, 1)}


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[1] not in ("server", "client"):
        print(__doc__, file=sys.stderr)
        return 2
    addr = sys.argv[2]
    ports = [int(p) for p in sys.argv[3].split(",")]
    if sys.argv[1] == "server":
        threads = [threading.Thread(target=serve, args=(addr, p), daemon=True) for p in ports]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 0
    print(json.dumps(client(addr, ports, float(sys.argv[4]), float(sys.argv[5]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
