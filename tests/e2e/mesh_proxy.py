#!/usr/bin/python3
"""A stand-in for a service mesh sidecar (what Istio's envoy does with the redirected
traffic), stdlib only. Run inside a pod's network namespace as uid 1337 (the traffic of that
uid is not redirected, as with Istio's init container rules):

  outbound  listens on :15001; each connection the app made (REDIRECTed here by nft) is
            sent to its original destination (SO_ORIGINAL_DST) over TLS, with the SNI an
            Istio client uses (outbound_.PORT_._.HOST).
  inbound   listens on :15006 with TLS (cert/key given); each connection redirected here is
            sent in plaintext to the app at 127.0.0.1:<original port>, from 127.0.0.6 (Istio's
            inbound passthrough source address).

Prints "LISTENING" once both listeners are up. Bytes are copied both ways until either side
closes."""
import argparse
import select
import socket
import ssl
import struct
import threading

SO_ORIGINAL_DST = 80


def original_dst(conn: socket.socket) -> tuple[str, int]:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, addr = struct.unpack("!2xH4s8x", raw)
    return socket.inet_ntoa(addr), port


def send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = sock.send(view)
            view = view[n:]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            select.select([sock], [sock], [], 10)


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copies both ways in one thread (an SSL socket must not be used from two threads at
    once) until either side closes; then closes both. Full-close is enough for the HTTP/1.x
    requests of the test (the response is forwarded as it is read, before the close)."""
    for s in (a, b):
        s.setblocking(False)
    try:
        done = False
        while not done:
            r, _, _ = select.select([a, b], [], [], 30)
            if not r:
                break
            for s in r:
                other = b if s is a else a
                while True:
                    try:
                        data = s.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        break
                    except OSError:
                        data = b""
                    if not data:
                        done = True
                        break
                    send_all(other, data)
                    if not isinstance(s, ssl.SSLSocket) or not s.pending():
                        break
    finally:
        a.close()
        b.close()


def outbound(conn: socket.socket, host: str) -> None:
    ip, port = original_dst(conn)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    up = ctx.wrap_socket(socket.create_connection((ip, port), timeout=10),
                         server_hostname=f"outbound_.{port}_._.{host}")
    splice(conn, up)


def inbound(conn: socket.socket, ctx: ssl.SSLContext) -> None:
    _, port = original_dst(conn)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        return
    app = socket.socket()
    app.bind(("127.0.0.6", 0))
    app.connect(("127.0.0.1", port))
    splice(tls, app)


def listen(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    return s


def serve(sock: socket.socket, handler, *args) -> None:
    while True:
        c, _ = sock.accept()
        threading.Thread(target=handler, args=(c, *args), daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--host", default="web.shop.svc.cluster.local")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    out_l, in_l = listen(15001), listen(15006)
    threading.Thread(target=serve, args=(out_l, outbound, a.host), daemon=True).start()
    print("LISTENING", flush=True)
    serve(in_l, inbound, ctx)


if __name__ == "__main__":
    main()
