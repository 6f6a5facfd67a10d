#!/usr/bin/env python3
"""The AMQP 0-9-1 client of NetProbe's RabbitMQ tests (tests/e2e/test_l7_mq.py and
tests/data/l7/record.py), on python3-pika: it publishes N messages with publisher
confirms (each basic.publish waits for the broker's basic.ack), consumes them with a
prefetch of 10 and acknowledges each (basic.deliver -> basic.ack), publishes one more
and takes it with basic.get, then finds the queue empty (basic.get-empty), and
re-declares the queue with other arguments, which the broker refuses by closing the
channel (channel.close 406 PRECONDITION_FAILED). It prints its own counts as JSON: the
oracle of the tests.

    amqp_client.py HOST PORT N [QUEUE]
"""

import json
import sys

import pika


def main() -> None:
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    queue = sys.argv[4] if len(sys.argv) > 4 else "np-orders"
    counts = {"connection": 0, "channel.open": 0, "queue.declare": 0, "queue.declare.error": 0, "basic.qos": 0,
              "basic.publish": 0, "basic.ack.received": 0, "basic.consume": 0, "basic.deliver": 0,
              "basic.ack.sent": 0, "basic.cancel": 0, "basic.get": 0, "basic.get-ok": 0, "basic.get-empty": 0,
              "confirm.select": 0, "channel.close.by_broker": 0, "error_code": None}
    params = pika.ConnectionParameters(host=host, port=port, credentials=pika.PlainCredentials("guest", "guest"),
                                       heartbeat=0, blocked_connection_timeout=30)
    conn = pika.BlockingConnection(params)
    counts["connection"] += 1
    ch = conn.channel()
    counts["channel.open"] += 1
    ch.queue_declare(queue=queue, durable=False, auto_delete=False)
    counts["queue.declare"] += 1
    ch.confirm_delivery()
    counts["confirm.select"] += 1

    def publish(i: int) -> None:
        # in confirm mode basic_publish returns once the broker acknowledged this message
        ch.basic_publish(exchange="", routing_key=queue, body=f"message {i}".encode(),
                         properties=pika.BasicProperties(content_type="text/plain"))
        counts["basic.publish"] += 1
        counts["basic.ack.received"] += 1

    for i in range(n):
        publish(i)
    ch.basic_qos(prefetch_count=10)
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
