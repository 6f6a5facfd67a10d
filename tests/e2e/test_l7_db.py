"""Application-layer capture (--l7=on) of database protocols, against the real servers
and their own benchmark clients: redis-server with redis-cli and redis-benchmark,
PostgreSQL with psql and pgbench (simple, extended and prepared query modes), MariaDB
with the mariadb client and mysqlslap. Each server runs as its own instance (own data
directory, test address) in the veth's peer namespace; clients run in the "node"
namespace with the agent. The agent's counts are compared with the server's own
statistics (Redis INFO commandstats/errorstats, MariaDB SHOW GLOBAL STATUS) or the
client's count (pgbench's transactions x its script's statements), on both ends.
"""

import collections
import glob
import os
import re
import shutil
import subprocess
import time

from l7_ends import L7BothEndsCase
from netprobe_e2e import log, require_tools, run, wait_for

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or ["/usr/lib/postgresql/15/bin"]
PG_BIN = PG_BIN[0]


def as_user(user: str) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]


class L7DbTest(L7BothEndsCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("redis-server", "redis-cli", "redis-benchmark", "psql", "pgbench", f"{PG_BIN}/postgres",
                      "mariadbd", "mariadb", "mariadb-install-db", "mysqlslap", "setpriv")

    def endpoint(self, agent, protocol: str, side: str, port: int, method: str, route: str | None = None):
        ep = agent.get_json(f"/api/v1/l7/endpoints?protocol={protocol}&side={side}&service={self.ip}:{port}"
                            f"&method={method}&limit=1000")["endpoints"]
        return [e for e in ep if route is None or e["route"] == route]

    def assertNoCaptureLoss(self, agent) -> None:
        m = agent.metrics()
        self.assertEqual(sum(s.value for s in m.find("netprobe_l7_capture_lost_total")), 0)

    # -- Redis ----------------------------------------------------------------------

    def test_redis_commands_errors_pipelines_and_latency_match_the_servers_commandstats(self):
        d = self.tmpdir()
        self.spawn(["redis-server", "--port", "6379", "--bind", self.ip, "--save", "", "--appendonly", "no",
                    "--protected-mode", "no", "--enable-debug-command", "yes", "--dir", d], netns=self.veth.ns, name="redis-server")

        def cli(*args, check=True):
            return run(["redis-cli", "-h", self.ip, *args], netns=self.node, check=check).stdout
        wait_for(lambda: cli("PING", check=False).strip() == "PONG", 10, "redis-server to answer")
        agent = self.agent()

        def server_stats():
            calls, errors = collections.Counter(), collections.Counter()
            for line in cli("INFO", "commandstats").splitlines():
                m = re.match(r"cmdstat_([a-z_|-]+):calls=(\d+),.*rejected_calls=(\d+)", line)
                if m:
                    calls[m.group(1).split("|")[0].upper()] += int(m.group(2)) + int(m.group(3))
            for line in cli("INFO", "errorstats").splitlines():
                m = re.match(r"errorstat_(\w+):count=(\d+)", line)
                if m:
                    errors[m.group(1)] += int(m.group(2))
            return calls, errors

        cli("CONFIG", "RESETSTAT")
        out = run(["redis-benchmark", "-h", self.ip, "-n", "600", "-c", "3", "-t", "set,get,incr,lpush", "-q"],
                  netns=self.node).stdout
        log(f"redis-benchmark: {out.strip()}")
        cli("SET", "np-string", "x")
        for _ in range(3):
            self.assertIn("WRONGTYPE", cli("LPUSH", "np-string", "y"))
        self.assertIn("unknown command", cli("NOSUCHCMD", "a"))
        cli("-r", "20", "DEBUG", "SLEEP", "0.05")  # the server sleeps 50 ms, 20 times on one connection
        calls, errors = server_stats()
        log(f"redis commandstats: {dict(calls)}, errorstats: {dict(errors)}")
        # Every command the server executed, plus the unknown one, and our INFO/RESETSTAT
        # calls (INFO's own reply leaves out that call: two more INFO).
        total = sum(calls.values()) + 1 + 2
        c = self.settle(agent, "redis", 6379, total)
        for side in ("client", "server"):
            got = collections.Counter()
            for (method, _), n in c[side].items():
                got[method] += n
            for cmd in ("SET", "GET", "INCR", "LPUSH", "DEBUG"):
                self.assertEqual(got[cmd], calls[cmd], f"{side} {cmd}: agent {got[cmd]}, redis {calls[cmd]}")
            self.assertEqual(got["INFO"], calls["INFO"] + 2, side)
            self.assertEqual(got["OTHER"], 1, side)  # NOSUCHCMD
            self.assertEqual(got["UNKNOWN"], 0, side)
            self.assertEqual(c[side][("LPUSH", "error")], errors["WRONGTYPE"], side)
            self.assertEqual(c[side][("OTHER", "error")], errors["ERR"], side)
        rq = agent.get_json(f"/api/v1/l7/requests?protocol=redis&side=server&status=error&limit=100")["requests"]
        self.assertEqual(collections.Counter(r["error"] for r in rq), errors)
        sleep = self.endpoint(agent, "redis", "server", 6379, "DEBUG")[0]
        log(f"DEBUG SLEEP 0.05: p50 {sleep['p50_seconds']:.4f} s, p99 {sleep['p99_seconds']:.4f} s")
        self.assertEqual(sleep["requests"], 20)
        self.assertGreaterEqual(sleep["p50_seconds"], 0.050)
        self.assertLessEqual(sleep["p50_seconds"], 0.055)

        # A pipeline of 32 commands per write (~1.4 KiB): the capture copies the first 512
        # bytes of each write; the replies still count every command, those not captured
        # as UNKNOWN.
        before, _ = server_stats()
        base = {side: sum(v.values()) for side, v in c.items()}
        run(["redis-benchmark", "-h", self.ip, "-n", "3200", "-c", "2", "-P", "32", "-t", "set", "-q"],
            netns=self.node)
        after, _ = server_stats()
        sets = after["SET"] - before["SET"]
        self.assertEqual(sets, 3200)
        extra = (after["CONFIG"] - before["CONFIG"]) + 1 + 2  # redis-benchmark's CONFIG GETs, our INFOs
        c2 = self.settle(agent, "redis", 6379, base["server"] + sets + extra)
        for side in ("client", "server"):
            got = collections.Counter()
            for (method, _), n in c2[side].items():
                got[method] += n
            new_sets = got["SET"] + got["UNKNOWN"] - calls["SET"]
            log(f"{side}: pipelined SETs counted {new_sets} (as SET {got['SET'] - calls['SET']}, "
                f"UNKNOWN {got['UNKNOWN']})")
            self.assertEqual(new_sets, sets, side)
        self.assertNoCaptureLoss(agent)

    # -- PostgreSQL ----------------------------------------------------------------------

    def start_postgres(self) -> None:
        d = self.tmpdir()
        os.chmod(d, 0o755)
        data = os.path.join(d, "data")
        os.mkdir(data)
        shutil.chown(data, "postgres", "postgres")
        run([*as_user("postgres"), f"{PG_BIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            cwd=data)
        with open(os.path.join(data, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {self.veth.host_ip}/32 trust\n")
        self.spawn([*as_user("postgres"), f"{PG_BIN}/postgres", "-D", data, "-p", "5432", "-k", data,
                    "-c", f"listen_addresses={self.ip}", "-c", "fsync=off", "-c", "ssl=off"],
                   netns=self.veth.ns, name="postgres", log_name="postgres.log")
        wait_for(lambda: run(["pg_isready", "-h", self.ip, "-p", "5432"], netns=self.node,
                             check=False).returncode == 0, 20, "postgres to accept connections")

    def test_postgres_pgbench_in_every_query_mode_counted_per_statement_with_errors_and_latency(self):
        require_tools("pg_isready")
        self.start_postgres()
        pg = ["-h", self.ip, "-p", "5432", "-U", "postgres"]
        run(["pgbench", *pg, "-i", "-s", "1", "-q", "postgres"], netns=self.node)
        agent = self.agent()
        txns_per_run = 2 * 40
        # pgbench's TPC-B-like script: BEGIN, UPDATE accounts, SELECT, UPDATE tellers,
        # UPDATE branches, INSERT history, END - per transaction.
        script = {"BEGIN": 1, "UPDATE": 3, "SELECT": 1, "INSERT": 1, "END": 1}
        methods_before = collections.Counter()
        for mode in ("simple", "extended", "prepared"):
            out = run(["pgbench", *pg, "-n", "-c", "2", "-t", "40", "-M", mode, "postgres"], netns=self.node).stdout
            done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
            self.assertEqual(done, txns_per_run)
            want_new = done * sum(script.values())
            c = self.settle(agent, "postgres", 5432, sum(methods_before.values()) + want_new)
            for side in ("client", "server"):
                got = collections.Counter()
                for (method, status), n in c[side].items():
                    got[method] += n
                    self.assertEqual(status, "ok", (side, method))
                delta = got - methods_before
                # pgbench's own setup queries (its partition check) are SELECTs too: the
                # script's SELECT is checked by its route below.
                self.assertGreaterEqual(delta["SELECT"], done * script["SELECT"], f"{mode} {side}: {delta}")
                for m in ("BEGIN", "UPDATE", "INSERT", "END"):
                    self.assertEqual(delta[m], done * script[m], f"{mode} {side} {m}: {delta}")
            methods_before = collections.Counter()
            for (method, _), n in c["server"].items():
                methods_before[method] += n
            log(f"pgbench -M {mode}: {done} transactions; agent server side: {dict(methods_before)}")
        # The statements, normalized: pgbench's values replaced (simple mode sends them as
        # literals), extended/prepared modes' parameters kept as $n.
        routes = {e["route"]: e["requests"] for e in
                  agent.get_json(f"/api/v1/l7/endpoints?protocol=postgres&side=server"
                                 f"&service={self.ip}:5432&limit=1000")["endpoints"]}
        log(f"routes: {routes}")
        self.assertEqual(routes["UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?;"], txns_per_run)
        self.assertEqual(routes["UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;"],
                         2 * txns_per_run)
        self.assertEqual(routes["SELECT abalance FROM pgbench_accounts WHERE aid = ?;"], txns_per_run)
        self.assertEqual(routes["SELECT abalance FROM pgbench_accounts WHERE aid = $1;"], 2 * txns_per_run)
        for r in routes:
            self.assertIsNone(re.search(r"[=+] \d", r), f"a literal in {r!r}")

        # Errors with their SQLSTATE, and a statement that takes 50 ms.
        args = ["psql", *pg, "-X", "-q", "postgres"]
        for _ in range(3):
            args += ["-c", "select * from np_missing_table"]
        for _ in range(20):
            args += ["-c", "select pg_sleep(0.05)"]
        p = run(args, netns=self.node, check=False)
        self.assertEqual(p.stderr.count("does not exist"), 3, p.stderr)

        def errors():
            rq = agent.get_json("/api/v1/l7/requests?protocol=postgres&side=server&status=error")["requests"]
            return rq if len(rq) >= 3 else None
        rq = wait_for(errors, 15, "3 errors")
        self.assertEqual([r["error"] for r in rq], ["42P01"] * 3)  # undefined_table
        self.assertEqual(rq[0]["route"], "select * from np_missing_table")
        sleep = wait_for(lambda: [e for e in self.endpoint(agent, "postgres", "server", 5432, "SELECT",
                                                           "select pg_sleep(?)") if e["requests"] >= 20],
                         15, "20 pg_sleep requests")[0]
        self.assertEqual(sleep["requests"], 20)
        log(f"pg_sleep(0.05): p50 {sleep['p50_seconds']:.4f} s")
        self.assertGreaterEqual(sleep["p50_seconds"], 0.050)
        self.assertLessEqual(sleep["p50_seconds"], 0.055)
        self.assertNoCaptureLoss(agent)

    # -- MariaDB ----------------------------------------------------------------------

    def test_mariadb_mysqlslap_and_errors_match_the_servers_status_counters(self):
        d = self.tmpdir()
        os.chmod(d, 0o755)
        data = os.path.join(d, "data")
        os.mkdir(data)
        shutil.chown(data, "mysql", "mysql")
        run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
             "--auth-root-authentication-method=normal", "--skip-test-db"], cwd=d)
        self.spawn(["mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql", "--port=3306",
                    f"--bind-address={self.ip}", f"--socket={data}/sock", f"--pid-file={data}/pid",
                    "--skip-grant-tables", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"],
                   netns=self.veth.ns, name="mariadbd", log_name="mariadbd.log")
        my = ["-h", self.ip, "-P", "3306", "-u", "root"]

        def sql(query, check=True):
            return run(["mariadb", *my, "-N", "-B", "-e", query], netns=self.node, check=check)
        wait_for(lambda: sql("select 1", check=False).returncode == 0, 30, "mariadbd to accept connections")
        agent = self.agent()

        def status():
            out = sql("show global status where Variable_name in ('Com_select', 'Com_insert', 'Com_create_db', "
                      "'Com_drop_db', 'Com_create_table')").stdout
            return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines())}
        before = status()
        out = run(["mysqlslap", *my, "--concurrency=2", "--iterations=2", "--number-of-queries=200",
                   "--auto-generate-sql", "--auto-generate-sql-load-type=mixed"], netns=self.node).stdout
        log(f"mysqlslap: {' '.join(out.split())}")
        for _ in range(3):
            p = sql("select * from np_missing.t", check=False)
            self.assertIn("1146", p.stderr)
        sql("; ".join(["select sleep(0.05)"] * 20))
        after = status()
        delta = {k: after[k] - before[k] for k in after}
        log(f"server status counters: {delta}")
        # The agent also sees the status queries: SHOW (two of them).
        c = self.settle(agent, "mysql", 3306, delta["Com_select"] + delta["Com_insert"])
        for side in ("client", "server"):
            got = collections.Counter()
            for (method, _), n in c[side].items():
                got[method] += n
            log(f"{side}: {dict(c[side])}")
            self.assertEqual(got["SELECT"], delta["Com_select"], side)
            self.assertEqual(got["INSERT"], delta["Com_insert"], side)
            self.assertEqual(got["CREATE"], delta["Com_create_db"] + delta["Com_create_table"], side)
            self.assertEqual(got["DROP"], delta["Com_drop_db"], side)
            self.assertEqual(c[side][("SELECT", "error")], 3, side)
        rq = agent.get_json("/api/v1/l7/requests?protocol=mysql&side=client&status=error")["requests"]
        self.assertEqual([r["error"] for r in rq], ["1146"] * 3)
        self.assertEqual(rq[0]["route"], "select * from np_missing.t")
        sleep = self.endpoint(agent, "mysql", "server", 3306, "SELECT", "select sleep(?)")[0]
        self.assertEqual(sleep["requests"], 20)
        log(f"sleep(0.05): p50 {sleep['p50_seconds']:.4f} s")
        self.assertGreaterEqual(sleep["p50_seconds"], 0.050)
        self.assertLessEqual(sleep["p50_seconds"], 0.055)
        # mysqlslap's generated INSERTs carry literals: none may show in a route.
        for e in self.endpoint(agent, "mysql", "server", 3306, "INSERT"):
            self.assertNotRegex(e["route"], r"\d{3,}|'[^?]", e["route"])
        self.assertNoCaptureLoss(agent)

    def test_mariadb_over_tls_counted_from_the_openssl_probes_at_both_ends(self):
        """MariaDB with require_secure_transport (Debian's mariadbd and mariadb client both
        link libssl.so.3): after the SSLRequest the socket carries TLS records, and the
        statements come from the uprobes on SSL_read/SSL_write, on both ends. Oracle: the
        server's SHOW GLOBAL STATUS counters and the client's own count of its errors."""
        d = self.tmpdir()
        os.chmod(d, 0o755)
        data = os.path.join(d, "data")
        os.mkdir(data)
        shutil.chown(data, "mysql", "mysql")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
             "-subj", "/CN=netprobe-test", "-addext", f"subjectAltName=IP:{self.ip}"])
        for f in (cert, key):
            shutil.chown(f, "mysql", "mysql")
        run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=mysql",
             "--auth-root-authentication-method=normal", "--skip-test-db"], cwd=d)
        # grant tables on (without them the server checks no transport): a user that must use TLS
        init = os.path.join(d, "init.sql")
        with open(init, "w") as f:
            f.write("CREATE USER IF NOT EXISTS 'np'@'%' IDENTIFIED BY 'np-pass' REQUIRE SSL;\n"
                    "GRANT ALL ON *.* TO 'np'@'%';\n")
        shutil.chown(init, "mysql", "mysql")
        self.spawn(["mariadbd", "--no-defaults", f"--datadir={data}", "--user=mysql", "--port=3307",
                    f"--bind-address={self.ip}", f"--socket={data}/sock", f"--pid-file={data}/pid",
                    f"--init-file={init}", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0",
                    f"--ssl-cert={cert}", f"--ssl-key={key}", f"--ssl-ca={cert}", "--require-secure-transport=ON"],
                   netns=self.veth.ns, name="mariadbd", log_name="mariadbd.log")
        my = ["-h", self.ip, "-P", "3307", "-u", "np", "-pnp-pass"]
        tls = ["--ssl", f"--ssl-ca={cert}", "--ssl-verify-server-cert"]

        def sql(query, check=True):
            return run(["mariadb", *my, *tls, "-N", "-B", "-e", query], netns=self.node, check=check)
        wait_for(lambda: sql("select 1", check=False).returncode == 0, 30, "mariadbd to accept TLS connections")
        # the server refuses a client without TLS
        plain = run(["mariadb", *my, "--skip-ssl", "-N", "-B", "-e", "select 1"], netns=self.node, check=False)
        self.assertNotEqual(plain.returncode, 0, plain.stdout)
        agent = self.agent()
        wait_for(lambda: agent.metrics().get_or("netprobe_l7_tls_libraries") >= 1, 20, "libssl to be probed")

        def status():
            out = sql("show global status where Variable_name in ('Com_select', 'Com_insert', 'Com_update', "
                      "'Com_create_table', 'Com_create_db', 'Ssl_accepts', 'Ssl_finished_accepts')").stdout
            return {k: int(v) for k, v in (line.split("\t") for line in out.splitlines())}
        before = status()
        # the session's cipher: the statements really travel over TLS
        self.assertRegex(sql("show session status like 'Ssl_version'").stdout, r"TLSv1\.[23]")
        sql("create database np_tls; create table np_tls.t (id int primary key, v varchar(32))")
        n_insert, n_select, n_update, n_error = 40, 60, 10, 4
        batch = [f"insert into np_tls.t values ({i}, 'secret-{i}')" for i in range(n_insert)]
        batch += [f"select v from np_tls.t where id = {i % n_insert}" for i in range(n_select)]
        batch += [f"update np_tls.t set v = 'x{i}' where id = {i}" for i in range(n_update)]
        batch += ["select * from np_tls.missing"] * n_error
        p = run(["mariadb", *my, *tls, "--force", "-N", "-B"], netns=self.node, check=False,
                input="".join(f"{q};\n" for q in batch))
        errors = p.stderr.count("ERROR 1146")
        self.assertEqual(errors, n_error, p.stderr)  # the client's own word
        after = status()
        delta = {k: after[k] - before[k] for k in after}
        log(f"server status counters: {delta}")
        # TLS connections the server accepted: the status queries' and the statements' ones
        self.assertGreaterEqual(delta["Ssl_finished_accepts"], 4)
        c = self.settle(agent, "mysql", 3307, delta["Com_select"] + delta["Com_insert"] + delta["Com_update"])
        for side in ("client", "server"):
            got = collections.Counter()
            for (method, _), k in c[side].items():
                got[method] += k
            log(f"{side}: {dict(c[side])}")
            # Com_select counts the failed selects too; the agent has them as errors
            self.assertEqual(got["SELECT"], delta["Com_select"], side)
            self.assertEqual(got["INSERT"], delta["Com_insert"], side)
            self.assertEqual(got["UPDATE"], delta["Com_update"], side)
            self.assertEqual(got["CREATE"], delta["Com_create_db"] + delta["Com_create_table"], side)
            self.assertEqual(c[side][("SELECT", "error")], n_error, side)
            self.assertEqual(c[side][("INSERT", "ok")], n_insert, side)
        for side in ("client", "server"):
            rq = agent.get_json(f"/api/v1/l7/requests?protocol=mysql&side={side}&status=error&"
                                f"service={self.ip}:3307")["requests"]
            self.assertEqual([r["error"] for r in rq], ["1146"] * n_error, side)
            self.assertEqual({r["route"] for r in rq}, {"select * from np_tls.missing"}, side)
        # no literal of the encrypted statements leaves the agent
        for e in self.endpoint(agent, "mysql", "server", 3307, "INSERT") + \
                self.endpoint(agent, "mysql", "client", 3307, "UPDATE"):
            self.assertNotIn("secret", e["route"])
            self.assertNotRegex(e["route"], r"\d", e["route"])


if __name__ == "__main__":
    import unittest
    unittest.main()
