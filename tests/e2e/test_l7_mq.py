"""Application-layer capture (--l7=on) of the message brokers' protocols: Kafka and
AMQP 0-9-1, on both ends of every connection.

Kafka: Debian packages no Kafka broker, so the broker is tests/e2e/kafka_broker.py - a
test broker written here from the protocol guide (ApiVersions, Metadata, Produce,
ListOffsets, Fetch; it reads each request's size alone first, as Kafka's broker does) -
driven by kcat (librdkafka): N messages produced one per Produce request, a topic whose
Produce requests the broker answers with an error code, the N messages consumed back.
The oracle is the broker's own log of the requests it received and answered.

AMQP: Debian's rabbitmq-server, an instance of its own (node name, Mnesia, logs,
configuration, cookie, epmd and distribution ports of its own, in the veth's peer
namespace), driven by tests/e2e/amqp_client.py on python3-pika: N messages published with
confirms, consumed and acknowledged, a basic.get of one more and of an empty queue, and a
queue.declare the broker refuses (406 PRECONDITION_FAILED). The oracle is the client's
own count of what it did.
"""

import collections
import json
import os
import signal
import subprocess

from l7_ends import L7BothEndsCase
from netprobe_e2e import HERE, PYTHON, log, require_tools, run, wait_for, wait_line
from rabbitmq_instance import RABBITMQ_SERVER, prepare as prepare_rabbitmq

KAFKA_BROKER = os.path.join(HERE, "kafka_broker.py")
AMQP_CLIENT = os.path.join(HERE, "amqp_client.py")
INVALID_RECORD = 87


def pika_basic_counts(mine: dict) -> collections.Counter:
    """The basic.* methods each end must show, from amqp_client.py's own counts (basic.ack:
    the client's acknowledgements of deliveries and the broker's confirms of publications)."""
    return collections.Counter({
        ("basic.publish", "ok"): mine["basic.publish"],
        ("basic.deliver", "ok"): mine["basic.deliver"],
        ("basic.ack", "ok"): mine["basic.ack.sent"] + mine["basic.ack.received"],
        ("basic.get", "ok"): mine["basic.get"],
        ("basic.qos", "ok"): mine["basic.qos"],
        ("basic.consume", "ok"): mine["basic.consume"],
    })


class L7MqTest(L7BothEndsCase):
    settle_timeout = 30

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require_tools("kcat", "epmd", RABBITMQ_SERVER, PYTHON)
        if run([PYTHON, "-c", "import pika"], check=False).returncode:
            raise AssertionError("python3-pika missing (run scripts/setup-deps.sh)")

    def assertNoCaptureLoss(self, agent) -> None:
        self.assertEqual(sum(s.value for s in agent.metrics().find("netprobe_l7_capture_lost_total")), 0)

    def assertNoneCounted(self, agent, protocol: str) -> None:
        n = sum(s.value for s in agent.metrics().find("netprobe_l7_requests_total", protocol=protocol))
        self.assertEqual(n, 0, f"traffic counted as {protocol}")

    # -- Kafka ------------------------------------------------------------------------

    def test_kafka_kcat_produce_consume_and_errors_match_the_test_brokers_log(self):
        d = self.tmpdir()
        broker_log = os.path.join(d, "broker.jsonl")
        broker = self.spawn([PYTHON, KAFKA_BROKER, "--listen", self.ip, "--port", "9092", "--log", broker_log,
                             "--produce-error", f"np-rejected={INVALID_RECORD}"],
                            netns=self.veth.ns, name="kafka_broker", stdout=subprocess.PIPE)
        wait_line(broker, b"READY", 10)
        agent = self.agent()
        bootstrap = f"{self.ip}:9092"
        n, m = 200, 5
        one_per_request = ["-X", "linger.ms=0", "-X", "batch.num.messages=1"]
        p = run(["kcat", "-P", "-b", bootstrap, "-t", "np-orders", "-p", "0", *one_per_request],
                netns=self.node, input="".join(f"order {i}\n" for i in range(n)), timeout=60)
        p = run(["kcat", "-P", "-b", bootstrap, "-t", "np-rejected", "-p", "0", *one_per_request],
                netns=self.node, input="".join(f"bad {i}\n" for i in range(m)), check=False, timeout=60)
        failed = p.stderr.count("Delivery failed")
        self.assertEqual(failed, m, p.stderr)  # kcat's own word: every message refused
        p = run(["kcat", "-C", "-b", bootstrap, "-t", "np-orders", "-p", "0", "-o", "beginning", "-c", str(n)],
                netns=self.node, timeout=60)
        self.assertEqual(p.stdout.splitlines(), [f"order {i}" for i in range(n)])

        # The broker's own log: what it received and answered.
        def broker_entries():
            with open(broker_log) as f:
                return [json.loads(line) for line in f]
        entries = broker_entries()
        self.assertFalse([e for e in entries if "error_parsing" in e], "the broker could not parse a request")
        answered = collections.Counter()
        for e in entries:
            if e["answered"]:
                answered[(e["api"], "ok" if e["error"] == 0 else "INVALID_RECORD" if e["error"] == INVALID_RECORD
                          else f"code {e['error']}")] += 1
        produced = [e for e in entries if e["api"] == "Produce" and e.get("topic") == "np-orders"]
        log(f"broker: {dict(answered)}; np-orders Produce requests {len(produced)}, "
            f"records {sum(e['records'] for e in produced)}")
        # N messages, one per Produce request, each answered without error
        self.assertEqual(len(produced), n)
        self.assertEqual(sum(e["records"] for e in produced), n)
        self.assertEqual(answered[("Produce", "INVALID_RECORD")],
                         len([e for e in entries if e["api"] == "Produce" and e.get("topic") == "np-rejected"]))
        self.assertGreaterEqual(answered[("Produce", "INVALID_RECORD")], m)
        self.assertGreater(answered[("Fetch", "ok")], 0)
        held = [e for e in entries if not e["answered"]]
        log(f"requests the broker held unanswered (fetches at the end of the log): {len(held)}")

        c = self.settle(agent, "kafka", 9092, sum(answered.values()))
        for side in ("client", "server"):
            log(f"agent, {side} side: {dict(c[side])}")
            self.assertEqual(c[side], answered, side)
        # the topic is the route of Produce and Fetch
        eps = agent.get_json(f"/api/v1/l7/endpoints?protocol=kafka&side=server&service={self.ip}:9092"
                             f"&limit=1000")["endpoints"]
        routes = {(e["method"], e["route"]): e["requests_total"] for e in eps}
        log(f"kafka endpoints: {routes}")
        self.assertEqual(routes[("Produce", "np-orders")], n)
        self.assertEqual(routes[("Produce", "np-rejected")], answered[("Produce", "INVALID_RECORD")])
        self.assertEqual(routes[("Fetch", "np-orders")], answered[("Fetch", "ok")])
        rq = agent.get_json("/api/v1/l7/requests?protocol=kafka&side=client&status=INVALID_RECORD&limit=100")
        self.assertEqual(rq["total"], answered[("Produce", "INVALID_RECORD")])
        self.assertEqual({r["error"] for r in rq["requests"]}, {str(INVALID_RECORD)})
        self.assertNoCaptureLoss(agent)
        self.assertNoneCounted(agent, "amqp")

    def test_kafka_large_messages_beyond_the_capture_match_the_test_brokers_log(self):
        """Produce requests and Fetch responses of 64 KiB and 1 MiB (a record each), far
        beyond the 512 bytes the capture copies of a syscall and written or read in many
        syscalls: each direction is framed by the messages' sizes, so the framing stays in
        step. Oracle: the broker's own log of what it answered."""
        d = self.tmpdir()
        broker_log = os.path.join(d, "broker.jsonl")
        broker = self.spawn([PYTHON, KAFKA_BROKER, "--listen", self.ip, "--port", "9093", "--log", broker_log],
                            netns=self.veth.ns, name="kafka_broker", stdout=subprocess.PIPE)
        wait_line(broker, b"READY", 10)
        agent = self.agent()
        bootstrap = f"{self.ip}:9093"
        big = ["-X", "linger.ms=0", "-X", "batch.num.messages=1", "-X", "message.max.bytes=4000000",
               "-X", "receive.message.max.bytes=8000000"]
        sizes = [65536] * 10 + [1 << 20] * 5
        lines = [(f"m{i}-" * size)[:size] for i, size in enumerate(sizes)]
        run(["kcat", "-P", "-b", bootstrap, "-t", "np-big", "-p", "0", *big], netns=self.node,
            input="".join(line + "\n" for line in lines), timeout=120)
        p = run(["kcat", "-C", "-b", bootstrap, "-t", "np-big", "-p", "0", "-o", "beginning", "-c", str(len(sizes)),
                 *big[4:], "-X", "fetch.message.max.bytes=4000000", "-X", "fetch.max.bytes=4000000"], netns=self.node,
                timeout=120)
        self.assertEqual([len(x) for x in p.stdout.splitlines()], sizes)
        with open(broker_log) as f:
            entries = [json.loads(line) for line in f]
        self.assertFalse([e for e in entries if "error_parsing" in e], "the broker could not parse a request")
        answered = collections.Counter((e["api"], "ok" if e["error"] == 0 else f"code {e['error']}")
                                       for e in entries if e["answered"])
        produced = [e for e in entries if e["api"] == "Produce"]
        log(f"broker: {dict(answered)}; Produce requests {len(produced)}, records "
            f"{sum(e['records'] for e in produced)}")
        self.assertEqual(sum(e["records"] for e in produced), len(sizes))
        c = self.settle(agent, "kafka", 9093, sum(answered.values()))
        for side in ("client", "server"):
            log(f"agent, {side} side: {dict(c[side])}")
            self.assertEqual(c[side], answered, side)
        eps = agent.get_json(f"/api/v1/l7/endpoints?protocol=kafka&side=server&service={self.ip}:9093"
                             f"&method=Produce&limit=100")["endpoints"]
        self.assertEqual({e["route"]: e["requests_total"] for e in eps}, {"np-big": len(produced)})

    # -- RabbitMQ ---------------------------------------------------------------------

    def start_rabbitmq(self):
        d = self.tmpdir()
        r = prepare_rabbitmq(d, self.ip, 5672, epmd_port=4391, dist_port=25691, node=f"npe{os.getpid()}")
        epmd = self.spawn(r.epmd, netns=self.veth.ns, name="epmd")
        server = self.spawn(r.server, netns=self.veth.ns, env=r.env, log_name="rabbitmq.log", name="rabbitmq-server")
        accept = ("import socket,sys; socket.create_connection((sys.argv[1], 5672), timeout=1)")

        def up():
            if not server.running():
                raise AssertionError(f"rabbitmq-server exited:\n{server.output()}")
            return run([PYTHON, "-c", accept, self.ip], netns=self.node, check=False).returncode == 0
        wait_for(up, 90, "rabbitmq-server to accept AMQP connections", interval=0.5)
        return epmd, server

    def stop_rabbitmq(self, epmd, server) -> None:
        """Stops the broker and its epmd by their PIDs; nothing of them may survive."""
        server.stop(signal.SIGTERM, timeout=30)
        epmd.stop()

        def gone():
            left = run(["ip", "netns", "pids", self.veth.ns], check=False).stdout.split()
            if left:
                raise AssertionError("still running in the broker's namespace: " + ", ".join(
                    f"{pid} {run(['ps', '-o', 'comm=', '-p', pid], check=False).stdout.strip()}" for pid in left))
            return True
        wait_for(gone, 20, "the broker's processes to be gone")

    def test_rabbitmq_pika_publish_consume_get_and_a_refused_declare_match_the_clients_counts(self):
        epmd, server = self.start_rabbitmq()
        agent = self.agent()
        n = 300
        out = run([PYTHON, AMQP_CLIENT, self.ip, "5672", str(n)], netns=self.node, timeout=120).stdout
        mine = json.loads(out)
        log(f"pika client: {mine}")
        self.assertEqual(mine["basic.deliver"], n)
        self.assertEqual(mine["error_code"], 406)
        # What each end must show, from the client's own counts (basic.ack: the client's
        # acknowledgements of deliveries and the broker's confirms of publications).
        want = pika_basic_counts(mine)
        want.update({  # (update, not +: a count of 0 stays, and is checked)
            ("basic.cancel", "ok"): mine["basic.cancel"],
            ("confirm.select", "ok"): mine["confirm.select"],
            ("queue.declare", "ok"): mine["queue.declare"],
            ("queue.declare", "PRECONDITION_FAILED"): mine["queue.declare.error"],
            ("channel.close", "PRECONDITION_FAILED"): mine["channel.close.by_broker"],
            ("channel.open", "ok"): mine["channel.open"],
            ("queue.delete", "ok"): 1,
            ("connection.start", "ok"): mine["connection"],
            ("connection.tune", "ok"): mine["connection"],
            ("connection.open", "ok"): mine["connection"],
        })
        c = self.settle(agent, "amqp", 5672, sum(want.values()))
        for side in ("client", "server"):
            log(f"agent, {side} side: {dict(c[side])}")
            for key, count in want.items():
                self.assertEqual(c[side][key], count, f"{side} {key}")
            # the client's closing of its second channel and of the connection (no error)
            self.assertEqual(c[side][("channel.close", "ok")], 1, side)
            self.assertEqual(c[side][("connection.close", "ok")], 1, side)
            self.assertEqual(sum(v for (_, sc), v in c[side].items() if sc not in ("ok", "PRECONDITION_FAILED")), 0,
                             side)
        # synchronous methods have their round trip, on the queue's route
        eps = agent.get_json(f"/api/v1/l7/endpoints?protocol=amqp&side=client&service={self.ip}:5672"
                             f"&method=queue.declare&limit=100")["endpoints"]
        log(f"queue.declare endpoints: {eps}")
        self.assertEqual({e["route"] for e in eps}, {"np-orders"})
        self.assertTrue(all(e["p50_seconds"] > 0 for e in eps), eps)
        rq = agent.get_json("/api/v1/l7/requests?protocol=amqp&side=server&status=PRECONDITION_FAILED")["requests"]
        self.assertEqual(sorted(r["method"] for r in rq), ["channel.close", "queue.declare"])
        self.assertEqual({r["error"] for r in rq}, {"406"})
        m = agent.metrics()
        self.assertNoCaptureLoss(agent)
        self.assertEqual(m.get("netprobe_l7_parse_events_total", kind="desync"), 0)
        # RabbitMQ's Erlang distribution and epmd traffic (binary, length-prefixed) is not Kafka
        self.assertNoneCounted(agent, "kafka")
        self.stop_rabbitmq(epmd, server)

    def test_rabbitmq_messages_larger_than_the_capture_are_counted_with_their_exact_bytes(self):
        """64 KiB and 1 MiB bodies (RabbitMQ's frame size is 128 KiB: a 1 MiB body is 9 body
        frames), far beyond the 4 KiB the capture copies of a syscall: the body frames are
        skipped by their sizes and the framing stays in step. Published with confirms and
        consumed with a prefetch of 10: the broker writes several deliveries in one syscall,
        whose method and content-header frames lie beyond the copy (the kernel walks the
        frames there and sends their first bytes). Oracle: pika's own counts and the bytes
        of the frames pika marshalled for each basic.publish."""
        epmd, server = self.start_rabbitmq()
        agent = self.agent()
        want = collections.Counter()
        publish_bytes = 0
        for queue, size, n in (("np-big64k", 65536, 30), ("np-big1m", 1 << 20, 12)):
            out = run([PYTHON, AMQP_CLIENT, self.ip, "5672", str(n), queue, "--body-size", str(size), "--prefetch",
                       "10"], netns=self.node, timeout=180).stdout
            mine = json.loads(out)
            log(f"pika client, {size}-byte messages: {mine}")
            self.assertEqual(mine["basic.deliver"], n)
            self.assertEqual(mine["frame_max"], 131072)
            want += pika_basic_counts(mine) + collections.Counter({
                ("queue.declare", "ok"): mine["queue.declare"],
                ("queue.declare", "PRECONDITION_FAILED"): mine["queue.declare.error"],
                ("connection.open", "ok"): mine["connection"],
            })
            publish_bytes += mine["basic.publish.bytes"]
        c = self.settle(agent, "amqp", 5672, sum(want.values()))
        for side in ("client", "server"):
            log(f"agent, {side} side: {dict(c[side])}")
            for key, count in want.items():
                self.assertEqual(c[side][key], count, f"{side} {key}")
            self.assertEqual(sum(v for (_, sc), v in c[side].items() if sc not in ("ok", "PRECONDITION_FAILED")), 0,
                             side)
            got = sum(s.value for s in agent.metrics().find("netprobe_l7_request_bytes_total", protocol="amqp",
                                                             side=side, service=f"{self.ip}:5672",
                                                             method="basic.publish"))
            log(f"{side}: basic.publish bytes {int(got)}, pika's {publish_bytes}")
            self.assertEqual(got, publish_bytes, side)
        self.assertNoCaptureLoss(agent)
        self.assertEqual(agent.metrics().get("netprobe_l7_parse_events_total", kind="desync"), 0)
        self.stop_rabbitmq(epmd, server)


if __name__ == "__main__":
    import unittest
    unittest.main()
