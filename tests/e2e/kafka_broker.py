#!/usr/bin/env python3
"""A minimal Kafka broker for NetProbe's tests - a TEST broker, not Apache Kafka (Debian
packages no broker). It speaks the protocol as the Kafka protocol guide and the
message schemas (clients/src/main/resources/common/message/*.json) define it, enough for
librdkafka's producer and simple consumer (kcat -P / kcat -C):

  ApiVersions v0-v3   (v3: flexible request, response header v0 as the guide says)
  Metadata    v0-v12  (every topic asked for exists, with --partitions partitions, led by node 0)
  Produce     v3-v9   (record batches kept in memory; acks=0 gets no response)
  ListOffsets v1-v7
  Fetch       v4-v12  (the batches kept, their base offsets set; a Fetch that finds no data is
                       held unanswered - a long poll that ends when the client goes)

It reads each request as Kafka's own broker does (its 4-byte size, then the rest: two
reads), and writes each response in one send. --produce-error TOPIC=CODE answers every
Produce to TOPIC with that error code for each partition (nothing is stored).

Its log (--log, JSON lines) is the tests' oracle: one line per request received, with
the api name, version, correlation id, first topic, the error code answered (the first
non-zero one), the number of records a Produce carried, and whether it was answered.
Prints "READY <port>" on stdout once it listens.

    kafka_broker.py --listen 198.19.0.2 --port 9092 --log /tmp/broker.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time

API_NAMES = {0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions"}
SUPPORTED = {18: (0, 3), 3: (0, 12), 0: (3, 9), 2: (1, 7), 1: (4, 12)}  # api key -> (min, max) version
FIRST_FLEXIBLE = {0: 9, 1: 12, 2: 6, 3: 9, 18: 3}
UNSUPPORTED_VERSION = 35
UNKNOWN_TOPIC_OR_PARTITION = 3
NO_AUTH_OPS = -2147483648


def flexible(key: int, version: int) -> bool:
    return version >= FIRST_FLEXIBLE.get(key, 0)


class Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.d, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.d):
            raise ValueError("request shorter than its fields")
        b = self.d[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        v, shift = 0, 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 28:
                raise ValueError("varint too long")

    def string(self, flex: bool) -> str | None:
        n = self.uvarint() - 1 if flex else self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes(self, flex: bool) -> bytes | None:
        n = self.uvarint() - 1 if flex else self.i32()
        return None if n < 0 else self.take(n)

    def array(self, flex: bool) -> int:
        n = self.uvarint() - 1 if flex else self.i32()
        return max(n, 0)

    def tagged(self, flex: bool) -> None:
        if flex:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


class Writer:
    def __init__(self):
        self.parts: list[bytes] = []

    def raw(self, b: bytes) -> "Writer":
        self.parts.append(b)
        return self

    def i8(self, v: int) -> "Writer":
        return self.raw(struct.pack(">b", v))

    def i16(self, v: int) -> "Writer":
        return self.raw(struct.pack(">h", v))

    def i32(self, v: int) -> "Writer":
        return self.raw(struct.pack(">i", v))

    def i64(self, v: int) -> "Writer":
        return self.raw(struct.pack(">q", v))

    def uvarint(self, v: int) -> "Writer":
        out = bytearray()
        while True:
            b = v & 0x7F
            v >>= 7
            out.append(b | (0x80 if v else 0))
            if not v:
                return self.raw(bytes(out))

    def string(self, flex: bool, s: str | None) -> "Writer":
        if s is None:
            return self.uvarint(0) if flex else self.i16(-1)
        b = s.encode()
        (self.uvarint(len(b) + 1) if flex else self.i16(len(b)))
        return self.raw(b)

    def bytes(self, flex: bool, b: bytes | None) -> "Writer":
        if b is None:
            return self.uvarint(0) if flex else self.i32(-1)
        (self.uvarint(len(b) + 1) if flex else self.i32(len(b)))
        return self.raw(b)

    def array(self, flex: bool, n: int) -> "Writer":
        return self.uvarint(n + 1) if flex else self.i32(n)

    def tagged(self, flex: bool) -> "Writer":
        return self.uvarint(0) if flex else self

    def value(self) -> bytes:
        return b"".join(self.parts)


def batches(records: bytes | None):
    """The record batches (magic 2) of a records field: (offset in it, length, record count)."""
    out, pos = [], 0
    while records and pos + 61 <= len(records):
        length = struct.unpack_from(">i", records, pos + 8)[0] + 12
        if length < 61 or pos + length > len(records):
            break
        out.append((pos, length, struct.unpack_from(">i", records, pos + 57)[0]))
        pos += length
    return out


class Partition:
    def __init__(self):
        self.batches: list[tuple[int, int, bytes]] = []  # (base offset, records, batch bytes)
        self.next = 0


class Broker:
    def __init__(self, advertised: str, port: int, partitions: int, produce_errors: dict[str, int], log_path: str):
        self.advertised, self.port, self.partitions = advertised, port, partitions
        self.produce_errors = produce_errors
        self.topics: dict[str, list[Partition]] = {}
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1)

    def topic(self, name: str, create: bool = True) -> list[Partition] | None:
        with self.lock:
            if name not in self.topics and create:
                self.topics[name] = [Partition() for _ in range(self.partitions)]
            return self.topics.get(name)

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")

    # -- connections ----------------------------------------------------------------

    def serve(self, sock: socket.socket) -> None:
        while True:
            conn, peer = sock.accept()
            threading.Thread(target=self.connection, args=(conn, peer), daemon=True).start()

    @staticmethod
    def recv_exact(conn: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            b = conn.recv(n - len(buf))
            if not b:
                return None
            buf += b
        return buf

    def connection(self, conn: socket.socket, peer) -> None:
        with conn:
            while True:
                size = self.recv_exact(conn, 4)  # the size alone, then the request: as Kafka's broker reads
                if size is None:
                    return
                body = self.recv_exact(conn, struct.unpack(">i", size)[0])
                if body is None:
                    return
                try:
                    self.request(conn, peer, body)
                except (ValueError, UnicodeDecodeError, struct.error) as e:
                    self.record({"error_parsing": str(e), "peer": f"{peer[0]}:{peer[1]}"})
                    return

    def request(self, conn: socket.socket, peer, body: bytes) -> None:
        r = Reader(body)
        key, version, corr = r.i16(), r.i16(), r.i32()
        client_id = r.string(False)
        flex = flexible(key, version)
        r.tagged(flex)  # request header v2
        entry = {"time": time.time(), "peer": f"{peer[0]}:{peer[1]}", "api": API_NAMES.get(key, str(key)),
                 "key": key, "version": version, "correlation_id": corr, "client_id": client_id, "error": 0,
                 "answered": True}
        lo, hi = SUPPORTED.get(key, (0, -1))
        resp: bytes | None
        if key == 18 and not lo <= version <= hi:
            resp = self.api_versions(0, UNSUPPORTED_VERSION)  # in v0's format, as the guide says
            entry["error"] = UNSUPPORTED_VERSION
        elif not lo <= version <= hi:
            entry["answered"] = False  # not an API or version this broker offers: no answer
            resp = None
        elif key == 18:
            resp = self.api_versions(version, 0)
        elif key == 3:
            resp = self.metadata(r, version, entry)
        elif key == 0:
            resp = self.produce(r, version, entry)
        elif key == 2:
            resp = self.list_offsets(r, version, entry)
        else:
            resp = self.fetch(r, version, entry)
        if resp is None:
            entry["answered"] = False
        else:
            header = struct.pack(">i", corr) + (b"\x00" if flex and key != 18 else b"")  # response header v1: tags
            msg = header + resp
            try:
                conn.sendall(struct.pack(">i", len(msg)) + msg)
            except OSError:
                entry["answered"] = False
        self.record(entry)

    # -- the APIs -------------------------------------------------------------------

    def api_versions(self, v: int, error: int) -> bytes:
        f = v >= 3
        w = Writer().i16(error).array(f, len(SUPPORTED))
        for key, (lo, hi) in sorted(SUPPORTED.items()):
            w.i16(key).i16(lo).i16(hi).tagged(f)
        if v >= 1:
            w.i32(0)  # throttle_time_ms
        return w.tagged(f).value()

    def metadata(self, r: Reader, v: int, entry: dict) -> bytes:
        f = v >= 9
        names: list[str] | None
        n = r.uvarint() - 1 if f else r.i32()
        if n < 0 or (v == 0 and n == 0):
            names = None  # every topic
        else:
            names = []
            for _ in range(n):
                if v >= 10:
                    r.take(16)  # topic_id
                name = r.string(f)
                r.tagged(f)
                if name is not None:
                    names.append(name)
        if names:
            entry["topic"] = names[0]
        topics = names if names is not None else sorted(self.topics)
        w = Writer()
        if v >= 3:
            w.i32(0)
        w.array(f, 1).i32(0).string(f, self.advertised).i32(self.port)
        if v >= 1:
            w.string(f, None)  # rack
        w.tagged(f)
        if v >= 2:
            w.string(f, "netprobe-test-cluster")
        if v >= 1:
            w.i32(0)  # controller_id
        w.array(f, len(topics))
        for name in topics:
            parts = self.topic(name)
            w.i16(0).string(f, name)
            if v >= 10:
                w.raw(hashlib.md5(name.encode()).digest())  # topic_id
            if v >= 1:
                w.i8(0)  # is_internal
            w.array(f, len(parts))
            for i in range(len(parts)):
                w.i16(0).i32(i).i32(0)
                if v >= 7:
                    w.i32(0)  # leader_epoch
                w.array(f, 1).i32(0).array(f, 1).i32(0)  # replicas, isr
                if v >= 5:
                    w.array(f, 0)  # offline_replicas
                w.tagged(f)
            if v >= 8:
                w.i32(NO_AUTH_OPS)
            w.tagged(f)
        if 8 <= v <= 10:
            w.i32(NO_AUTH_OPS)
        return w.tagged(f).value()

    def produce(self, r: Reader, v: int, entry: dict) -> bytes | None:
        f = v >= 9
        r.string(f)  # transactional_id
        acks = r.i16()
        r.i32()  # timeout_ms
        results = []
        records_total = 0
        first_error = 0
        for _ in range(r.array(f)):
            name = r.string(f)
            parts = []
            for _ in range(r.array(f)):
                index = r.i32()
                records = r.bytes(f)
                r.tagged(f)
                found = batches(records)
                records_total += sum(c for _, _, c in found)
                error, base = self.produce_errors.get(name, 0), -1
                partitions = self.topic(name) if not error else None
                if not error and (partitions is None or not 0 <= index < len(partitions)):
                    error = UNKNOWN_TOPIC_OR_PARTITION
                if not error:
                    p = partitions[index]
                    with self.lock:
                        base = p.next
                        for pos, length, count in found:
                            p.batches.append((p.next, count, records[pos:pos + length]))
                            p.next += count
                first_error = first_error or error
                parts.append((index, error, base))
            r.tagged(f)
            results.append((name, parts))
            entry.setdefault("topic", name)
        entry["records"] = records_total
        entry["acks"] = acks
        entry["error"] = first_error
        if acks == 0:
            return None  # no response to acks=0
        w = Writer().array(f, len(results))
        for name, parts in results:
            w.string(f, name).array(f, len(parts))
            for index, error, base in parts:
                w.i32(index).i16(error).i64(base).i64(-1)  # log_append_time_ms
                if v >= 5:
                    w.i64(0)  # log_start_offset
                if v >= 8:
                    w.array(f, 0).string(f, None)  # record_errors, error_message
                w.tagged(f)
            w.tagged(f)
        return w.i32(0).tagged(f).value()  # throttle_time_ms

    def list_offsets(self, r: Reader, v: int, entry: dict) -> bytes:
        f = v >= 6
        r.i32()  # replica_id
        if v >= 2:
            r.i8()  # isolation_level
        results = []
        for _ in range(r.array(f)):
            name = r.string(f)
            entry.setdefault("topic", name)
            parts = []
            for _ in range(r.array(f)):
                index = r.i32()
                if v >= 4:
                    r.i32()  # current_leader_epoch
                ts = r.i64()
                r.tagged(f)
                partitions = self.topic(name, create=False)
                if partitions is None or not 0 <= index < len(partitions):
                    parts.append((index, UNKNOWN_TOPIC_OR_PARTITION, -1))
                else:
                    parts.append((index, 0, 0 if ts == -2 else partitions[index].next))
            r.tagged(f)
            results.append((name, parts))
        w = Writer()
        if v >= 2:
            w.i32(0)
        w.array(f, len(results))
        for name, parts in results:
            w.string(f, name).array(f, len(parts))
            for index, error, offset in parts:
                entry["error"] = entry["error"] or error
                w.i32(index).i16(error).i64(-1).i64(offset)
                if v >= 4:
                    w.i32(0)  # leader_epoch
                w.tagged(f)
            w.tagged(f)
        return w.tagged(f).value()

    def fetch(self, r: Reader, v: int, entry: dict) -> bytes | None:
        f = v >= 12
        r.i32()  # replica_id
        r.i32()  # max_wait_ms
        r.i32()  # min_bytes
        r.i32()  # max_bytes
        r.i8()   # isolation_level
        if v >= 7:
            r.i32()  # session_id
            r.i32()  # session_epoch
        results, any_data = [], False
        for _ in range(r.array(f)):
            name = r.string(f)
            entry.setdefault("topic", name)
            parts = []
            for _ in range(r.array(f)):
                index = r.i32()
                if v >= 9:
                    r.i32()  # current_leader_epoch
                offset = r.i64()
                if v >= 12:
                    r.i32()  # last_fetched_epoch
                if v >= 5:
                    r.i64()  # log_start_offset
                r.i32()  # partition_max_bytes
                r.tagged(f)
                partitions = self.topic(name, create=False)
                if partitions is None or not 0 <= index < len(partitions):
                    parts.append((index, UNKNOWN_TOPIC_OR_PARTITION, -1, None))
                    any_data = True  # an error is an answer
                    continue
                p = partitions[index]
                with self.lock:
                    data = b"".join(struct.pack(">q", base) + batch[8:]  # the batch's base offset, set
                                    for base, count, batch in p.batches if base + count > offset)
                    hwm = p.next
                any_data = any_data or bool(data)
                parts.append((index, 0, hwm, data))
            r.tagged(f)
            results.append((name, parts))
        if not any_data:
            return None  # nothing new: held, unanswered (the long poll ends with the connection)
        w = Writer().i32(0)  # throttle_time_ms
        if v >= 7:
            w.i16(0).i32(0)  # error_code, session_id
        w.array(f, len(results))
        for name, parts in results:
            w.string(f, name).array(f, len(parts))
            for index, error, hwm, data in parts:
                entry["error"] = entry["error"] or error
                w.i32(index).i16(error).i64(hwm).i64(hwm)  # high_watermark, last_stable_offset
                if v >= 5:
                    w.i64(0)  # log_start_offset
                w.array(f, 0)  # aborted_transactions
                if v >= 11:
                    w.i32(-1)  # preferred_read_replica
                w.bytes(f, data if data is not None else None).tagged(f)
            w.tagged(f)
        return w.tagged(f).value()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--advertise", help="the host in Metadata (default: --listen)")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--produce-error", action="append", default=[], metavar="TOPIC=CODE")
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    errors = {}
    for spec in a.produce_error:
        topic, _, code = spec.partition("=")
        errors[topic] = int(code)
    sock = socket.socket(socket.AF_INET6 if ":" in a.listen else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.listen, a.port))
    sock.listen(64)
    port = sock.getsockname()[1]
    broker = Broker(a.advertise or a.listen, port, a.partitions, errors, a.log)
    print(f"READY {port}", flush=True)
    try:
        broker.serve(sock)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
