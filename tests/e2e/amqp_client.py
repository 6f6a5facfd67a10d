#!/usr/bin/env python3
"""The AMQP 0-9-1 client of NetProbe's RabbitMQ tests (tests/e2e/test_l7_mq.py and
tests/data/l7/record.py), on python3-pika: it publishes N messages with publisher
confirms (each basic.publish waits for the broker's basic.ack), consumes them with a
prefetch of 10 and acknowledges each (basic.deliver -> basic.ack), publishes one more
and takes it with basic.get, then finds the queue empty (basic.get-empty), and
re-declares the queue with other arguments, which the broker refuses by closing the
channel (channel.close 406 PRECONDITION_FAILED). It prints its own counts as JSON: the
oracle of the tests.

    amqp_client.py HOST PORT N [QUEUE] [--body-size BYTES] [--prefetch N] [--frame-max BYTES]

--body-size makes every message that large (the pattern "message i" repeated), split by
pika into body frames of the negotiated frame size; the client also counts the bytes of
its basic.publish frames (method, content header and body frames, as pika marshals them)
in "basic.publish.bytes". --prefetch: the consumer's basic.qos (10). --frame-max: the
frame size the client asks for (the broker's 131072 by default).
"""

import argparse
import json

import pika
from pika import frame, spec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("queue", nargs="?", default="np-orders")
    ap.add_argument("--body-size", type=int, default=0)
    ap.add_argument("--prefetch", type=int, default=10)
    ap.add_argument("--frame-max", type=int, default=pika.ConnectionParameters.DEFAULT_FRAME_MAX)
    args = ap.parse_args()
    host, port, n, queue = args.host, args.port, args.n, args.queue
    counts = {"connection": 0, "channel.open": 0, "queue.declare": 0, "queue.declare.error": 0, "basic.qos": 0,
              "basic.publish": 0, "basic.ack.received": 0, "basic.consume": 0, "basic.deliver": 0,
              "basic.ack.sent": 0, "basic.cancel": 0, "basic.get": 0, "basic.get-ok": 0, "basic.get-empty": 0,
              "confirm.select": 0, "channel.close.by_broker": 0, "error_code": None, "basic.publish.bytes": 0,
              "frame_max": 0}
    params = pika.ConnectionParameters(host=host, port=port, credentials=pika.PlainCredentials("guest", "guest"),
                                       heartbeat=0, blocked_connection_timeout=30, frame_max=args.frame_max)
    conn = pika.BlockingConnection(params)
    counts["connection"] += 1
    frame_max = conn._impl.params.frame_max  # as negotiated (connection.tune-ok)
    counts["frame_max"] = frame_max
    ch = conn.channel()
    counts["channel.open"] += 1
    ch.queue_declare(queue=queue, durable=False, auto_delete=False)
    counts["queue.declare"] += 1
    ch.confirm_delivery()
    counts["confirm.select"] += 1

    def publish(i: int) -> None:
        body = f"message {i}".encode()
        if args.body_size:
            body = (body * (args.body_size // len(body) + 1))[:args.body_size]
        props = pika.BasicProperties(content_type="text/plain")
        # in confirm mode basic_publish returns once the broker acknowledged this message
        ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props)
        counts["basic.publish"] += 1
        # the frames pika sent for it, marshalled by pika (as Connection._send_message does)
        method_frame = frame.Method(ch.channel_number, spec.Basic.Publish(exchange="", routing_key=queue))
        sent = len(method_frame.marshal()) + len(frame.Header(ch.channel_number, len(body), props).marshal())
        body_max = frame_max - 8
        for at in range(0, len(body), body_max):
            sent += len(frame.Body(ch.channel_number, body[at:at + body_max]).marshal())
        counts["basic.publish.bytes"] += sent
        counts["basic.ack.received"] += 1

    for i in range(n):
        publish(i)
    ch.basic_qos(prefetch_count=args.prefetch)
    counts["basic.qos"] += 1
    counts["basic.consume"] += 1
    for method, _props, _body in ch.consume(queue, inactivity_timeout=5):
        if method is None:
            raise SystemExit(f"only {counts['basic.deliver']} of {n} messages delivered")
        counts["basic.deliver"] += 1
        ch.basic_ack(method.delivery_tag)
        counts["basic.ack.sent"] += 1
        if counts["basic.deliver"] == n:
            break
    ch.cancel()  # basic.cancel (the queue is empty: no delivery is pending)
    counts["basic.cancel"] += 1
    publish(n)  # one more, for basic.get
    for _ in range(2):
        method, _props, _body = ch.basic_get(queue, auto_ack=True)
        counts["basic.get"] += 1
        counts["basic.get-ok" if method else "basic.get-empty"] += 1
    try:
        ch.queue_declare(queue=queue, durable=True)  # other arguments than the queue has: refused
    except pika.exceptions.ChannelClosedByBroker as e:
        counts["queue.declare.error"] += 1
        counts["channel.close.by_broker"] += 1
        counts["error_code"] = e.reply_code
    ch2 = conn.channel()
    counts["channel.open"] += 1
    ch2.queue_delete(queue=queue)
    ch2.close()
    conn.close()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
