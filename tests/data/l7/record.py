#!/usr/bin/env python3
"""Records the unit tests' L7 message tables (tests/data/l7/*.rec) from real servers
and clients on loopback: redis-server + redis-cli/redis-benchmark, PostgreSQL + psql/
pgbench, MariaDB + mariadb/mysqlslap, a python3-grpcio server + client, nginx over h2c +
h2load, kcat against tests/e2e/kafka_broker.py (a test broker), rabbitmq-server + python3-
pika. Each server is its own instance (temporary data
directory, a free high port on 127.0.0.1), np_l7_record (the real kernel capture) writes
what it delivers for that port, and the expected counts written with it come from the
server's own statistics (Redis INFO commandstats, MariaDB SHOW GLOBAL STATUS) or the
client's own count (pgbench's transactions). Needs root and a build (np_l7_record).

    sudo python3 tests/data/l7/record.py [BUILD_DIR [NAME...]]

Re-run it when the capture's record format or what the kernel sends changes; the unit
test L7Recordings replays the files.
"""

import collections
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../build")
RECORDER = os.path.join(BUILD, "tests/np_l7_record")
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    if check and p.returncode:
        raise SystemExit(f"failed: {' '.join(argv)}\n{p.stdout}\n{p.stderr}")
    return p


def wait(pred, what, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def as_user(user):
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]


class Recording:
    """np_l7_record on a port while the workload runs; then the expectations."""

    def __init__(self, name, port, header):
        self.path = os.path.join(HERE, f"{name}.rec")
        self.tmp = self.path + ".part"
        self.header = header
        self.p = subprocess.Popen([RECORDER, str(port), self.tmp], stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        if "recording" not in line:
            raise SystemExit(f"np_l7_record: {line}{self.p.stderr.read()}")

    def finish(self, expectations):
        time.sleep(0.5)  # the last records through the ring
        self.p.send_signal(signal.SIGTERM)
        if self.p.wait(timeout=10):
            raise SystemExit("np_l7_record failed")
        with open(self.tmp) as f:
            body = f.read()
        os.unlink(self.tmp)
        with open(self.path, "w") as f:
            f.write("".join(f"# {h}\n" for h in self.header))
            for side in ("client", "server"):
                for (proto, method, status), n in sorted(expectations.items()):
                    f.write(f"expect {side} {proto} {method} {status} {n}\n")
            f.write(body)
        print(f"{self.path}: {body.count(chr(10))} messages, {sum(expectations.values())} requests per side")


def record_redis(tmp):
    port = free_port()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        cli = ["redis-cli", "-p", str(port)]
        wait(lambda: run([*cli, "PING"], check=False).stdout.strip() == "PONG", "redis")
        version = run(["redis-server", "--version"]).stdout.split()[2]
        run([*cli, "CONFIG", "RESETSTAT"])
        rec = Recording("redis", port, [f"redis-server {version}: redis-cli and redis-benchmark (pipelines of 8)",
                                        "recorded by tests/data/l7/record.py"])
        run([*cli, "SET", "k", "v"])
        run([*cli, "GET", "k"])
        run([*cli, "LPUSH", "k", "x"])  # WRONGTYPE
        run([*cli, "HSET", "h", "a", "1", "b", "2"])
        run([*cli, "HGETALL", "h"])  # a map/array reply
        run([*cli, "-r", "5", "INCR", "n"])
        run(["redis-benchmark", "-p", str(port), "-n", "48", "-c", "2", "-P", "8", "-t", "set,get,lpush,lrange_100",
             "-q"])
        calls = collections.Counter()
        errors = collections.Counter()
        out = run([*cli, "INFO", "commandstats"]).stdout
        for m in re.finditer(r"cmdstat_([a-z_|-]+):calls=(\d+),.*rejected_calls=(\d+),failed_calls=(\d+)", out):
            cmd = m.group(1).split("|")[0].upper()
            failed = int(m.group(4)) + int(m.group(3))
            calls[("redis", cmd, "ok")] += int(m.group(2)) - int(m.group(4))
            if failed:
                calls[("redis", cmd, "error")] += failed
        calls[("redis", "INFO", "ok")] += 1  # INFO's reply leaves out its own call
        calls[("redis", "CONFIG", "ok")] -= 1  # RESETSTAT, before the recording began
        rec.finish({k: v for k, v in calls.items() if v})
    finally:
        srv.terminate()
        srv.wait()


def record_postgres(tmp):
    port = free_port()
    os.chmod(tmp, 0o755)
    data = os.path.join(tmp, "pg")
    os.mkdir(data)
    shutil.chown(data, "postgres", "postgres")
    run([*as_user("postgres"), f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], cwd=data)
    srv = subprocess.Popen([*as_user("postgres"), f"{PG_BIN}/postgres", "-D", data, "-p", str(port), "-k", data,
                            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "ssl=off"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pg = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        wait(lambda: run(["pg_isready", *pg], check=False).returncode == 0, "postgres")
        run(["pgbench", *pg, "-i", "-s", "1", "-q", "postgres"])
        version = run([f"{PG_BIN}/postgres", "--version"]).stdout.strip()
        rec = Recording("postgres", port, [f"{version}: psql and pgbench -M simple/extended/prepared",
                                           "recorded by tests/data/l7/record.py"])
        want = collections.Counter()
        p = run(["psql", *pg, "-X", "-q", "-c", "select 1", "-c", "select * from np_missing",
                 "-c", "create table t (a int)", "-c", "insert into t values (1), (2)", "-c", "drop table t",
                 "postgres"], check=False)
        assert p.stderr.count("does not exist") == 1, p.stderr
        # (No expectation for successful SELECTs: pgbench's setup queries are SELECTs too and
        # neither pgbench nor the server, without an extension, counts them.)
        want.update({("postgres", "SELECT", "error"): 1,
                     ("postgres", "CREATE", "ok"): 1, ("postgres", "INSERT", "ok"): 1, ("postgres", "DROP", "ok"): 1})
        for mode in ("simple", "extended", "prepared"):
            out = run(["pgbench", *pg, "-n", "-c", "1", "-t", "4", "-M", mode, "postgres"]).stdout
            done = int(re.search(r"actually processed: (\d+)", out).group(1))
            for m, n in {"BEGIN": 1, "UPDATE": 3, "INSERT": 1, "END": 1}.items():
                want[("postgres", m, "ok")] += n * done
        rec.finish(dict(want))
    finally:
        srv.terminate()
        srv.wait()


def record_mysql(tmp):
    port = free_port()
    os.chmod(tmp, 0o755)
    data = os.path.join(tmp, "my")
    os.mkdir(data)
    shutil.chown(data, "mysql", "mysql")
    run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
         "--auth-root-authentication-method=normal", "--skip-test-db"], cwd=tmp)
    srv = subprocess.Popen(["mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql", f"--port={port}",
                            "--bind-address=127.0.0.1", f"--socket={data}/sock", f"--pid-file={data}/pid",
                            "--skip-grant-tables", "--skip-log-bin"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        my = ["mariadb", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "-N", "-B"]
        wait(lambda: run([*my, "-e", "select 1"], check=False).returncode == 0, "mariadbd")
        names = ("Com_select", "Com_insert", "Com_create_db", "Com_create_table", "Com_drop_db")

        def status():
            out = run([*my, "-e", "show global status where Variable_name in ("
                       + ", ".join(f"'{n}'" for n in names) + ")"]).stdout
            return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines())}
        version = run(["mariadbd", "--version"]).stdout.strip()
        before = status()
        rec = Recording("mysql", port, [f"{version}: mariadb and mysqlslap",
                                        "recorded by tests/data/l7/record.py"])
        run([*my, "-e", "select 1; select 'a', 2.5"])
        p = run([*my, "-e", "select * from np_missing.t"], check=False)
        assert "1146" in p.stderr, p.stderr
        run(["mysqlslap", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "--concurrency=2", "--iterations=1",
             "--number-of-queries=40", "--auto-generate-sql", "--auto-generate-sql-load-type=mixed"])
        time.sleep(0.2)
        after = status()
        d = {k: after[k] - before[k] for k in names}
        want = {("mysql", "SELECT", "ok"): d["Com_select"] - 1, ("mysql", "SELECT", "error"): 1,
                ("mysql", "INSERT", "ok"): d["Com_insert"],
                ("mysql", "CREATE", "ok"): d["Com_create_db"] + d["Com_create_table"],
                ("mysql", "DROP", "ok"): d["Com_drop_db"]}
        rec.finish({k: v for k, v in want.items() if v})
    finally:
        srv.terminate()
        srv.wait()


def record_grpc(tmp):
    sys.path.insert(0, os.path.join(HERE, "../../e2e"))
    from grpc_echo import GRPC_CLIENT, GRPC_SERVER
    port = free_port()
    srv = subprocess.Popen(["/usr/bin/python3", "-c", GRPC_SERVER, "127.0.0.1", str(port), "0.01"],
                           stdout=subprocess.PIPE, text=True)
    try:
        if srv.stdout.readline().strip() != "READY":
            raise SystemExit("gRPC server did not start")
        version = run(["/usr/bin/python3", "-c", "import grpc; print(grpc.__version__)"]).stdout.strip()
        rec = Recording("grpc", port, [f"python3-grpcio {version}: tests/e2e/grpc_echo.py's server and client",
                                       "recorded by tests/data/l7/record.py"])
        out = run(["/usr/bin/python3", "-c", GRPC_CLIENT, "127.0.0.1", str(port), "40"]).stdout
        rec.finish({("grpc", method, code): n for method, code, n in json.loads(out)})
    finally:
        srv.terminate()
        srv.wait()


def record_http2(tmp):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  server {{ listen 127.0.0.1:{port} http2;
    location /items/ {{ return 200 "item\\n"; }} location /missing {{ return 404; }} location /err {{ return 503; }} }} }}
""")
    srv = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait(lambda: run(["curl", "-s", "--http2-prior-knowledge", f"{url}/items/0"], check=False).returncode == 0,
             "nginx")
        version = run(["nginx", "-v"]).stderr.strip()
        rec = Recording("http2", port, [f"{version}, h2c: h2load -n 300 -c 2 -m 10 over three URIs",
                                        "recorded by tests/data/l7/record.py"])
        out = run(["h2load", "-n", "300", "-c", "2", "-m", "10", f"{url}/items/1", f"{url}/missing",
                   f"{url}/err"]).stdout
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        if not m or not re.search(r"300 done, \d+ succeeded, \d+ failed, 0 errored", out):
            raise SystemExit(f"h2load: {out}")
        rec.finish({("http2", "GET", cls): int(n) for cls, n in zip(("2xx", "3xx", "4xx", "5xx"), m.groups())
                    if int(n)})
    finally:
        srv.terminate()
        srv.wait()


def record_kafka(tmp):
    """kcat (librdkafka) against tests/e2e/kafka_broker.py - a test broker: Debian packages
    no Kafka - producing to a topic, to one the broker refuses, and consuming back; the
    expectations are the broker's own log of what it answered."""
    broker_py = os.path.join(HERE, "../../e2e/kafka_broker.py")
    log = os.path.join(tmp, "broker.jsonl")
    srv = subprocess.Popen(["/usr/bin/python3", broker_py, "--listen", "127.0.0.1", "--port", "0", "--log", log,
                            "--produce-error", "np-rejected=87"], stdout=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline().split()
        if not line or line[0] != "READY":
            raise SystemExit("kafka_broker.py did not start")
        port = int(line[1])
        m = re.search(r"Version (\S+) .*librdkafka (\S+)", run(["kcat", "-V"]).stdout)
        version = f"kcat {m.group(1)} (librdkafka {m.group(2)})" if m else "kcat"
        rec = Recording("kafka", port, [f"{version}, against tests/e2e/kafka_broker.py (a test broker)",
                                        "recorded by tests/data/l7/record.py"])
        bootstrap = f"127.0.0.1:{port}"
        one = ["-X", "linger.ms=0", "-X", "batch.num.messages=1"]
        run(["kcat", "-P", "-b", bootstrap, "-t", "np-orders", "-p", "0", *one],
            input="".join(f"order {i}\n" for i in range(12)))
        run(["kcat", "-P", "-b", bootstrap, "-t", "np-rejected", "-p", "0", *one], check=False,
            input="".join(f"bad {i}\n" for i in range(3)))
        run(["kcat", "-C", "-b", bootstrap, "-t", "np-orders", "-p", "0", "-o", "beginning", "-c", "12"])
        want = collections.Counter()
        with open(log) as f:
            for entry in map(json.loads, f):
                if entry.get("answered"):
                    status = "ok" if entry["error"] == 0 else {87: "INVALID_RECORD"}.get(entry["error"], "error")
                    want[("kafka", entry["api"], status)] += 1
        rec.finish(dict(want))
    finally:
        srv.terminate()
        srv.wait()


def amqp_session(tmp, name, what, runs):
    """Debian's rabbitmq-server (an instance of its own on loopback: node name, data,
    logs, epmd and distribution ports) with tests/e2e/amqp_client.py (python3-pika), run
    once per entry of runs (its extra arguments); the expectations are the client's own
    counts, summed."""
    sys.path.insert(0, os.path.join(HERE, "../../e2e"))
    from rabbitmq_instance import accepting, prepare
    port, epmd_port, dist_port = free_port(), free_port(), free_port()
    r = prepare(tmp, "127.0.0.1", port, epmd_port, dist_port, f"nprec{os.getpid()}")
    epmd = subprocess.Popen(r.epmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    srv = subprocess.Popen(r.server, env=r.env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        wait(lambda: accepting("127.0.0.1", port), "rabbitmq-server", timeout=120)
        version = run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]).stdout.strip()
        pika = run(["/usr/bin/python3", "-c", "import pika; print(pika.__version__)"]).stdout.strip()
        rec = Recording(name, port, [f"rabbitmq-server {version} with python3-pika {pika}: "
                                     f"tests/e2e/amqp_client.py ({what})", "recorded by tests/data/l7/record.py"])
        want = collections.Counter()
        for args in runs:
            out = run(["/usr/bin/python3", os.path.join(HERE, "../../e2e/amqp_client.py"), "127.0.0.1", str(port),
                       *args]).stdout
            mine = json.loads(out)
            want += collections.Counter({
                ("amqp", "basic.publish", "ok"): mine["basic.publish"],
                ("amqp", "basic.deliver", "ok"): mine["basic.deliver"],
                ("amqp", "basic.ack", "ok"): mine["basic.ack.sent"] + mine["basic.ack.received"],
                ("amqp", "basic.get", "ok"): mine["basic.get"],
                ("amqp", "queue.declare", "ok"): mine["queue.declare"],
                ("amqp", "queue.declare", "PRECONDITION_FAILED"): mine["queue.declare.error"],
                ("amqp", "channel.close", "PRECONDITION_FAILED"): mine["channel.close.by_broker"],
                ("amqp", "channel.open", "ok"): mine["channel.open"],
                ("amqp", "connection.open", "ok"): mine["connection"]})
        rec.finish(dict(want))
    finally:
        # stopped by their PIDs (the broker's process group: the script and beam.smp)
        for p in (srv, epmd):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass


def record_amqp(tmp):
    amqp_session(tmp, "amqp", "publish with confirms, consume, get, refused declare", [["20"]])


def record_amqp_large(tmp):
    """Messages far larger than the capture's 4 KiB copy: 32 KiB split into 9 body frames
    at the smallest frame size (4096: the broker writes a delivery's frames in one syscall,
    all but the first beyond the copy), consumed with a prefetch of 1. (Not 1 MiB ones at
    RabbitMQ's 128 KiB frames, as the e2e test sends: pika reads 4 KiB at a time, and the
    recording of each such delivery would take 2 MB.)"""
    amqp_session(tmp, "amqp_large", "32 KiB messages at frame_max 4096, prefetch 1",
                 [["1", "np-big32k", "--body-size", "32768", "--prefetch", "1", "--frame-max", "4096"]])


def main():
    if os.geteuid() != 0:
        raise SystemExit("record.py needs root (the kernel capture)")
    if not os.access(RECORDER, os.X_OK):
        raise SystemExit(f"{RECORDER} missing: build first (cmake --build build)")
    only = sys.argv[2:]  # record.py BUILD_DIR [redis postgres mysql grpc http2 kafka amqp amqp_large]: some of them
    for fn in (record_redis, record_postgres, record_mysql, record_grpc, record_http2, record_kafka, record_amqp,
               record_amqp_large):
        if only and fn.__name__.removeprefix("record_") not in only:
            continue
        tmp = tempfile.mkdtemp(prefix="np-l7rec-")
        try:
            fn(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
