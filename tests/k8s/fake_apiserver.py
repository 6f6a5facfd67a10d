#!/usr/bin/python3
"""A fake Kubernetes API server for the client tests (stdlib only).

HTTPS with a CA, server and client certificate generated here with openssl into --dir.
Serves GET /api/v1/{pods,services,namespaces,nodes}, /apis/discovery.k8s.io/v1/endpointslices
and /apis/networking.k8s.io/v1/networkpolicies as lists (PodList/ServiceList/...,
metadata.resourceVersion, limit/continue pagination, fieldSelector spec.nodeName= and
spec.nodeName!= on pods) and as watches (?watch=true:
newline-delimited {"type":..,"object":..} events, chunked, events split across chunks,
BOOKMARK when allowWatchBookmarks=true, 410 Gone for a compacted resourceVersion either as
an HTTP status or as an ERROR event, timeoutSeconds). Authentication: the bearer token
given with --token, or a client certificate signed by the CA.

The test drives it with POST /control/<command> (JSON body) and reads GET /control/stats:
  upsert {resource, object, silent?}   add or modify (silent: no watch event, as if compacted away)
  delete {resource, uid, silent?}
  bump {}                              advance the resourceVersion (another resource changed)
  compact {}                           watches from an older resourceVersion get 410
  gone_mode {mode: "status"|"event"}
  expire {}                            compact, and open watches get an ERROR 410 event
  bookmark {}                          open watches get a BOOKMARK at the current resourceVersion
  drop {resource?, partial?}           open watches are cut mid-stream (partial: after half an event)
  fail {resource, status, count}       the next count requests for resource get that status
                                       (resource "networkpolicies:write": POST/PUT/DELETE of them)
NetworkPolicies can also be written as a client would: POST
/apis/networking.k8s.io/v1/namespaces/NS/networkpolicies (201; 409 AlreadyExists), PUT and
DELETE .../networkpolicies/NAME (200; 404 NotFound), each producing the watch event. Lists take
labelSelector k=v[,k=v] (equality only). GET /control/stats lists the writes as
{method, path, status}.
Prints "READY <port>" on stdout once listening.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KINDS = {"pods": ("Pod", "PodList"), "services": ("Service", "ServiceList"),
         "endpointslices": ("EndpointSlice", "EndpointSliceList"),
         "networkpolicies": ("NetworkPolicy", "NetworkPolicyList"),
         "namespaces": ("Namespace", "NamespaceList"), "nodes": ("Node", "NodeList")}
API_VERSION = {"pods": "v1", "services": "v1", "endpointslices": "discovery.k8s.io/v1",
               "networkpolicies": "networking.k8s.io/v1", "namespaces": "v1", "nodes": "v1"}
PATHS = {"/api/v1/pods": "pods", "/api/v1/services": "services",
         "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
         "/apis/networking.k8s.io/v1/networkpolicies": "networkpolicies",
         "/api/v1/namespaces": "namespaces", "/api/v1/nodes": "nodes"}


def gen_certs(d):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    p = lambda n: os.path.join(d, n)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=netprobe-test-ca",
        "-keyout", p("ca.key"), "-out", p("ca.crt"))
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    with open(p("client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "server.ext"), ("client", "client.ext")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=netprobe-test-{name}",
            "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"))
        run("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", p(ext), "-out", p(f"{name}.crt"))


class State:
    def __init__(self):
        self.cv = threading.Condition()
        self.rv = 100
        self.objects = {r: {} for r in KINDS}
        self.events = {r: [] for r in KINDS}  # (rv, type, object)
        self.compacted = 0
        self.gone_mode = "status"
        self.drop_gen = {r: 0 for r in KINDS}
        self.partial = False
        self.expire_gen = 0
        self.bookmark_gen = 0
        self.fail = {}  # resource -> [status, count]
        self.stats = {"lists": {r: [] for r in KINDS}, "watches": {r: [] for r in KINDS},
                      "open_watches": {r: 0 for r in KINDS}, "unauthorized": 0, "writes": []}

    def next_rv(self):
        self.rv += 1
        return self.rv


S = State()


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def labels_ok(obj, selector):
    """labelSelector k=v[,k=v]: equality only."""
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


def node_ok(resource, obj, selector):
    """fieldSelector spec.nodeName=NODE or spec.nodeName!=NODE (pods only)."""
    if resource != "pods" or not selector:
        return True
    negate = "!=" in selector
    key, _, val = selector.partition("!=" if negate else "=")
    if key != "spec.nodeName":
        return True
    return (obj.get("spec", {}).get("nodeName", "") == val) != negate


class Dropped(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request = self.server.ssl_ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, fmt, *args):
        if os.environ.get("FAKE_APISERVER_VERBOSE"):
            sys.stderr.write("fake-apiserver: " + fmt % args + "\n")

    def send_json(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        if self.request.getpeercert():
            return True
        return self.headers.get("Authorization", "") == "Bearer " + self.server.token

    # ---- NetworkPolicy writes ----
    NP_PREFIX = "/apis/networking.k8s.io/v1/namespaces/"

    def write(self, method):
        u = urlparse(self.path)
        parts = u.path.removeprefix(self.NP_PREFIX).split("/")
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n) if n else b""
        if len(parts) not in (2, 3) or parts[1] != "networkpolicies" or (method == "POST") != (len(parts) == 2):
            return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
        if not self.authorized():
            with S.cv:
                S.stats["unauthorized"] += 1
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        ns = parts[0]
        with S.cv:
            def done(code, doc):
                S.stats["writes"].append({"method": method, "path": u.path, "status": code})
                S.cv.notify_all()
                return code, doc
            code, doc = self.write_locked(method, ns, parts, raw, done)
        self.send_json(code, doc)

    def write_locked(self, method, ns, parts, raw, done):
        f = S.fail.get("networkpolicies:write")
        if f and f[1] > 0:
            f[1] -= 1
            return done(f[0], status_obj(f[0], "Forbidden" if f[0] == 403 else "InternalError",
                                         'networkpolicies.networking.k8s.io is forbidden: injected failure'))
        objs = S.objects["networkpolicies"]
        if method == "POST":
            try:
                obj = json.loads(raw)
                name = obj["metadata"]["name"]
            except (ValueError, KeyError, TypeError):
                return done(400, status_obj(400, "BadRequest", "not a NetworkPolicy"))
        else:
            name = parts[2]
        cur = next((o for o in objs.values()
                    if o["metadata"].get("namespace") == ns and o["metadata"]["name"] == name), None)
        if method == "POST" and cur is not None:
            return done(409, status_obj(409, "AlreadyExists", f'networkpolicies.networking.k8s.io "{name}" already exists'))
        if method in ("PUT", "DELETE") and cur is None:
            return done(404, status_obj(404, "NotFound", f'networkpolicies.networking.k8s.io "{name}" not found'))
        rv = S.next_rv()
        if method == "DELETE":
            del objs[cur["metadata"]["uid"]]
            cur["metadata"]["resourceVersion"] = str(rv)
            S.events["networkpolicies"].append((rv, "DELETED", json.loads(json.dumps(cur))))
            return done(200, cur)
        if method == "PUT":
            try:
                obj = json.loads(raw)
            except ValueError:
                return done(400, status_obj(400, "BadRequest", "not a NetworkPolicy"))
            obj["metadata"]["uid"] = cur["metadata"]["uid"]
            obj["metadata"]["creationTimestamp"] = cur["metadata"].get("creationTimestamp")
            typ, code = "MODIFIED", 200
        else:
            obj["metadata"]["uid"] = f"uid-np-{ns}-{name}-{rv}"
            obj["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            typ, code = "ADDED", 201
        obj["metadata"]["namespace"] = ns
        obj["metadata"]["resourceVersion"] = str(rv)
        objs[obj["metadata"]["uid"]] = obj
        S.events["networkpolicies"].append((rv, typ, json.loads(json.dumps(obj))))
        return done(code, obj)

    def do_PUT(self):
        self.write("PUT")

    def do_DELETE(self):
        self.write("DELETE")

    # ---- control ----
    def do_POST(self):
        if self.path.startswith(self.NP_PREFIX):
            return self.write("POST")
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        cmd = urlparse(self.path).path.removeprefix("/control/")
        with S.cv:
            out = self.control(cmd, body)
            S.cv.notify_all()
        if out is None:
            self.send_json(404, {"error": "unknown command " + cmd})
        else:
            self.send_json(200, out)

    def control(self, cmd, b):
        if cmd == "upsert":
            res, obj = b["resource"], b["object"]
            uid = obj["metadata"]["uid"]
            typ = "MODIFIED" if uid in S.objects[res] else "ADDED"
            rv = S.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            S.objects[res][uid] = obj
            if not b.get("silent"):
                S.events[res].append((rv, typ, json.loads(json.dumps(obj))))
            return {"rv": rv}
        if cmd == "delete":
            res, uid = b["resource"], b["uid"]
            obj = S.objects[res].pop(uid, None)
            if obj is None:
                return {"rv": S.rv, "missing": True}
            rv = S.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            if not b.get("silent"):
                S.events[res].append((rv, "DELETED", obj))
            return {"rv": rv}
        if cmd == "bump":
            return {"rv": S.next_rv()}
        if cmd == "compact":
            S.compacted = S.rv
            for r in KINDS:
                S.events[r] = []
            return {"rv": S.rv}
        if cmd == "gone_mode":
            S.gone_mode = b["mode"]
            return {}
        if cmd == "expire":
            S.compacted = S.rv
            for r in KINDS:
                S.events[r] = []
            S.expire_gen += 1
            return {"rv": S.rv}
        if cmd == "bookmark":
            S.bookmark_gen += 1
            return {"rv": S.rv}
        if cmd == "drop":
            S.partial = bool(b.get("partial"))
            for r in KINDS:
                if b.get("resource") in (None, r):
                    S.drop_gen[r] += 1
            return {}
        if cmd == "fail":
            S.fail[b["resource"]] = [b["status"], b["count"]]
            return {}
        return None

    # ---- API ----
    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/control/stats":
            with S.cv:
                doc = json.loads(json.dumps(S.stats))
                doc["rv"] = S.rv
            return self.send_json(200, doc)
        res = PATHS.get(u.path)
        if res is None:
            return self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
        if not self.authorized():
            with S.cv:
                S.stats["unauthorized"] += 1
            return self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        with S.cv:
            f = S.fail.get(res)
            if f and f[1] > 0:
                f[1] -= 1
                return self.send_json(f[0], status_obj(f[0], "InternalError", "injected failure"))
        if q.get("watch") in ("true", "1"):
            return self.watch(res, q)
        return self.list(res, q)

    def list(self, res, q):
        kind, list_kind = KINDS[res]
        sel = q.get("fieldSelector", "")
        limit = int(q.get("limit", "0"))
        cont = q.get("continue", "")
        with S.cv:
            S.stats["lists"][res].append(q)
            if cont:
                offset, _, snap_rv = cont.partition(":")
                offset, snap_rv = int(offset), int(snap_rv)
                if snap_rv < S.compacted:
                    return self.send_json(410, status_obj(410, "Expired", "continue token expired"))
            else:
                offset, snap_rv = 0, S.rv
            lsel = q.get("labelSelector", "")
            items = sorted((o for o in S.objects[res].values() if node_ok(res, o, sel) and labels_ok(o, lsel)),
                           key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            page = items[offset:offset + limit] if limit else items[offset:]
            meta = {"resourceVersion": str(snap_rv)}
            if limit and offset + limit < len(items):
                meta["continue"] = f"{offset + limit}:{snap_rv}"
                meta["remainingItemCount"] = len(items) - offset - limit
            doc = {"kind": list_kind, "apiVersion": API_VERSION[res], "metadata": meta, "items": json.loads(json.dumps(page))}
        self.send_json(200, doc)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_event(self, typ, obj):
        line = (json.dumps({"type": typ, "object": obj}) + "\n").encode()
        # Split events across chunks so the client must reassemble lines.
        cut = len(line) // 2 if len(line) > 40 and len(line) % 2 else len(line)
        self.chunk(line[:cut])
        if cut < len(line):
            self.chunk(line[cut:])

    def watch(self, res, q):
        kind, _ = KINDS[res]
        sel = q.get("fieldSelector", "")
        bookmarks = q.get("allowWatchBookmarks") == "true"
        timeout = int(q.get("timeoutSeconds", "0")) or 1800
        rv_text = q.get("resourceVersion", "")
        with S.cv:
            S.stats["watches"][res].append(q)
            since = int(rv_text) if rv_text not in ("", "0") else S.rv
            too_old = since < S.compacted
            mode = S.gone_mode
            drop_gen, expire_gen, bookmark_gen = S.drop_gen[res], S.expire_gen, S.bookmark_gen
        if too_old and mode == "status":
            return self.send_json(410, status_obj(410, "Expired", f"too old resource version: {since} ({S.compacted})"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        if too_old:
            self.send_event("ERROR", status_obj(410, "Expired", f"too old resource version: {since} ({S.compacted})"))
            self.chunk(b"")
            return
        deadline = time.monotonic() + timeout
        sent = since
        with S.cv:
            S.stats["open_watches"][res] += 1
        try:
            while True:
                with S.cv:
                    S.cv.wait_for(lambda: S.drop_gen[res] != drop_gen or S.expire_gen != expire_gen
                                  or S.bookmark_gen != bookmark_gen
                                  or any(e[0] > sent for e in S.events[res]), timeout=0.2)
                    pending = [e for e in S.events[res] if e[0] > sent]
                    drop = S.drop_gen[res] != drop_gen
                    partial = S.partial
                    expire = S.expire_gen != expire_gen
                    bookmark = S.bookmark_gen != bookmark_gen
                    bookmark_gen = S.bookmark_gen
                    now_rv = S.rv
                if drop:
                    if partial and pending:
                        line = json.dumps({"type": pending[0][1], "object": pending[0][2]}).encode()
                        self.chunk(line[: len(line) // 2])
                    raise Dropped()
                for rv, typ, obj in pending:
                    if node_ok(res, obj, sel):
                        self.send_event(typ, obj)
                    sent = rv
                if expire:
                    self.send_event("ERROR", status_obj(410, "Expired", "too old resource version"))
                    self.chunk(b"")
                    return
                if bookmark and bookmarks:
                    self.send_event("BOOKMARK", {"kind": kind, "apiVersion": API_VERSION[res],
                                                 "metadata": {"resourceVersion": str(now_rv), "creationTimestamp": None},
                                                 "spec": {"containers": None} if res == "pods" else {},
                                                 "status": {}})
                if time.monotonic() >= deadline:
                    self.chunk(b"")  # clean end of the watch (timeoutSeconds)
                    return
        except Dropped:
            try:
                self.request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            with S.cv:
                S.stats["open_watches"][res] -= 1


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # dropped connections are part of the tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--token", default="test-token")
    args = ap.parse_args()

    def on_term(signum, frame):
        # SIGTERM from the test, or from the kernel when the test process died
        # (PR_SET_PDEATHSIG): leave nothing behind.
        shutil.rmtree(args.dir, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    gen_certs(args.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.crt"), os.path.join(args.dir, "server.key"))
    ctx.load_verify_locations(os.path.join(args.dir, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    srv = Server(("127.0.0.1", 0), Handler)
    srv.ssl_ctx = ctx
    srv.token = args.token
    print(f"READY {srv.server_address[1]}", flush=True)
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
