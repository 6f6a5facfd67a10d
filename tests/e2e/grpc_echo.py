"""The gRPC server and client of the L7 tests (python3-grpcio, run with Debian's
/usr/bin/python3): tests/e2e/test_l7_http2.py and tests/data/l7/record.py. No side
effects on import.

    python3 -c "$GRPC_SERVER" ADDRESS PORT SLOW_SECONDS   # prints READY
    python3 -c "$GRPC_CLIENT" ADDRESS PORT N              # prints [[method, code, count], ...]
"""

# A gRPC service np.Echo without generated code (bytes in, bytes out): Say echoes (a
# request starting with "missing" is aborted with NOT_FOUND), Slow sleeps argv[3]
# seconds first, Stream answers with int(request) messages.
GRPC_SERVER = r"""
import sys, time
from concurrent import futures
import grpc

def say(req, ctx):
    if req.startswith(b"missing"):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such item")
    return req

def slow(req, ctx):
    time.sleep(float(sys.argv[3]))
    return req

def stream(req, ctx):
    for i in range(int(req)):
        yield b"item %d" % i

handlers = {
    "Say": grpc.unary_unary_rpc_method_handler(say),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("np.Echo", handlers),))
server.add_insecure_port(f"{sys.argv[1]}:{sys.argv[2]}")
server.start()
print("READY", flush=True)
server.wait_for_termination()
"""

# The calls of the test on one channel; prints [[method, code name, count], ...].
GRPC_CLIENT = r"""
import collections, json, sys
import grpc

ch = grpc.insecure_channel(f"{sys.argv[1]}:{sys.argv[2]}")
grpc.channel_ready_future(ch).result(timeout=10)
codes = collections.Counter()

def call(method, req, stream=False):
    try:
        if stream:
            got = list(ch.unary_stream(method)(req, timeout=10))
            assert len(got) == int(req), got
        else:
            assert ch.unary_unary(method)(req, timeout=10) == req
        codes[(method, "OK")] += 1
    except grpc.RpcError as e:
        codes[(method, e.code().name)] += 1

n = int(sys.argv[3])
for i in range(n):
    call("/np.Echo/Say", b"missing %d" % i if i % 10 == 0 else b"hello %d" % i)
for i in range(20):
    call("/np.Echo/Slow", b"x")
for i in range(5):
    call("/np.Echo/Stream", b"7", stream=True)
for i in range(3):
    call("/np.Echo/Nope", b"x")
ch.close()
print(json.dumps([[m, c, k] for (m, c), k in sorted(codes.items())]))
"""
