#!/usr/bin/python3
"""Contract test of Tollgate's rate limit quota service (RLQS), with Python grpcio.

Message classes come from the upstream Envoy protos (a FileDescriptorSet built
by `buf build` from the protos @grpc/grpc-js-xds ships); the bidi stream goes
through grpcio's generic stream_stream API, as Envoy's rate_limit_quota filter
would use it. Store state is read from Redis itself (a few lines of RESP).
Prints one JSON summary line; exits non-zero on the first failure.

Usage: rlqs_contract.py ADDR_A ADDR_B ENVOY_SET REDIS_PORT KEY_API_A KEY_API_B KEY_TIGHT
       rlqs_contract.py --store-away ADDR ENVOY_SET open|closed
       rlqs_contract.py --hold ADDR ENVOY_SET   (prints "ready", then how the stream ended)
"""
import json
import queue
import socket
import sys
import time

import grpc
from google.protobuf import descriptor_pb2, message_factory

STORE_AWAY = sys.argv[1] == "--store-away"
HOLD = sys.argv[1] == "--hold"
if HOLD:
    addr_a, envoy_set = sys.argv[2:4]
elif STORE_AWAY:
    addr_a, envoy_set, fail_mode = sys.argv[2:5]
else:
    addr_a, addr_b, envoy_set, redis_port, key_a, key_b, key_tight = sys.argv[1:8]

fds = descriptor_pb2.FileDescriptorSet()
with open(envoy_set, "rb") as f:
    fds.ParseFromString(f.read())
M = message_factory.GetMessages(list(fds.file))
PKG = "envoy.service.rate_limit_quota.v3"
Reports = M[f"{PKG}.RateLimitQuotaUsageReports"]
Response = M[f"{PKG}.RateLimitQuotaResponse"]
DENY_ALL = M["envoy.type.v3.RateLimitStrategy"].BlanketRule.Value("DENY_ALL")
ALLOW_ALL = M["envoy.type.v3.RateLimitStrategy"].BlanketRule.Value("ALLOW_ALL")
PATH = f"/{PKG}.RateLimitQuotaService/StreamRateLimitQuotas"
checked = []


def expect(cond, what):
    if not cond:
        print(json.dumps({"ok": False, "failed": what, "checked": checked}))
        sys.exit(1)
    checked.append(what)


def redis_get(key):
    """GET over RESP; None for a missing key."""
    with socket.create_connection(("127.0.0.1", int(redis_port)), timeout=5) as s:
        k = key.encode()
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        buf = b""
        while b"\r\n" not in buf:
            buf += s.recv(4096)
        head, rest = buf.split(b"\r\n", 1)
        n = int(head[1:])
        if n < 0:
            return None
        while len(rest) < n + 2:
            rest += s.recv(4096)
        return rest[:n].decode()


def used(key):
    """Units a quota bucket has counted in its window (`window:used`), 0 if none."""
    v = redis_get(key)
    return 0 if v is None else int(v.split(":")[1])


def wait_used(key, want, what):
    deadline = time.time() + 5
    while time.time() < deadline and used(key) != want:
        time.sleep(0.05)
    expect(used(key) == want, f"{what} (counted {used(key)}, want {want})")


class Stream:
    """One RLQS stream, driven one report at a time."""

    def __init__(self, addr):
        self.channel = grpc.insecure_channel(addr)
        self.q = queue.Queue()
        call = self.channel.stream_stream(PATH, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=Response.FromString)
        self.responses = call(iter(self.q.get, None), timeout=30)

    def report(self, domain, usages):
        r = Reports(domain=domain)
        for bucket, allowed in usages:
            u = r.bucket_quota_usages.add()
            for k, v in bucket.items():
                u.bucket_id.bucket[k] = v
            u.time_elapsed.seconds = 1
            u.num_requests_allowed = allowed
        self.q.put(r)
        return next(self.responses)

    def close(self):
        self.q.put(None)
        for _ in self.responses:
            pass
        self.channel.close()


def tokens(action):
    a = action.quota_assignment_action
    return a.rate_limit_strategy.token_bucket.max_tokens


def ttl_s(action):
    t = action.quota_assignment_action.assignment_time_to_live
    return t.seconds + t.nanos / 1e9


API_A = {"name": "api", "tenant": "a"}
API_B = {"name": "api", "tenant": "b", "extra": "ignored"}
TIGHT = {"name": "tight"}

if HOLD:
    # The server is stopped while this stream is open: it must end the stream OK, soon.
    s = Stream(addr_a)
    r = s.report("contract", [(API_A, 0)])
    expect(tokens(r.bucket_action[0]) == 10, "hold: an assignment")
    print("ready", flush=True)
    t0 = time.time()
    try:
        for _ in s.responses:
            pass
        expect(True, "hold: the server ended the stream OK")
    except grpc.RpcError as e:
        expect(False, f"hold: the server ended the stream OK (got {e.code()})")
    expect(time.time() - t0 < 5, "hold: ended well before the shutdown deadline")
    print(json.dumps({"ok": True, "checked": checked}))
    sys.exit(0)

if STORE_AWAY:
    # Redis is stopped: every bucket is answered by the fail mode, never an RPC error.
    s = Stream(addr_a)
    r = s.report("contract", [(API_A, 0), ({"name": "unknown"}, 0)])
    act = r.bucket_action[0]
    rule = act.quota_assignment_action.rate_limit_strategy
    expect(rule.WhichOneof("strategy") == "blanket_rule", f"store away ({fail_mode}): a blanket rule")
    if fail_mode == "open":
        expect(rule.blanket_rule == ALLOW_ALL, "store away, fail open: ALLOW_ALL")
        expect(ttl_s(act) == 1, "store away, fail open: a short TTL (1 s)")
    else:
        expect(rule.blanket_rule == DENY_ALL, "store away, fail closed: DENY_ALL")
        expect(ttl_s(act) == 2, "store away, fail closed: the bucket's TTL")
    expect(r.bucket_action[1].WhichOneof("bucket_action") == "abandon_action",
           "store away: an unknown bucket is still abandoned")
    r = s.report("contract", [(API_A, 5)])
    expect(r.bucket_action[0].HasField("quota_assignment_action"), "store away: the stream goes on")
    s.close()
    print(json.dumps({"ok": True, "checked": checked}))
    sys.exit(0)

# ---------------------------------------------------------- assignments and abandon
a = Stream(addr_a)
r = a.report("contract", [(API_A, 0), ({"name": "unknown"}, 3)])
expect(len(r.bucket_action) == 2, "one action per reported bucket, in order")
first, second = r.bucket_action
expect(dict(first.bucket_id.bucket) == API_A, "the action names the reported bucket id")
expect(first.WhichOneof("bucket_action") == "quota_assignment_action", "known bucket: a quota assignment at once")
strategy = first.quota_assignment_action.rate_limit_strategy
expect(strategy.WhichOneof("strategy") == "token_bucket", "the assignment is a token bucket")
expect(tokens(first) == 10, "max_tokens is the units per assignment (0.1 × 100)")
expect(strategy.token_bucket.HasField("fill_interval") and strategy.token_bucket.fill_interval.seconds >= 1,
       "fill_interval set, whole seconds (Envoy divides by its seconds)")
expect(strategy.token_bucket.fill_interval.seconds >= 3600, "refill is negligible within an assignment")
expect(ttl_s(first) == 2, "assignment_time_to_live is the policy's assignment_ttl")
expect(dict(second.bucket_id.bucket) == {"name": "unknown"}, "unknown bucket named back")
expect(second.WhichOneof("bucket_action") == "abandon_action", "unknown bucket: abandon_action")
wait_used(key_a, 10, "the assignment's units are counted in Redis")

r = a.report("", [(API_A, 4)])
expect(tokens(r.bucket_action[0]) == 10, "second report: a new assignment of 10")
wait_used(key_a, 20, "4 used of 10: the live assignment stays reserved, 10 more taken")
r = a.report("", [(API_A, 3)])
expect(tokens(r.bucket_action[0]) == 10, "third report: 10 again")
wait_used(key_a, 27, "the replaced assignment's 3 unused units went back (20 - 3 + 10)")

b_id = Stream(addr_a)
r = b_id.report("contract", [(API_B, 0)])
expect(tokens(r.bucket_action[0]) == 10, "another tenant: its own assignment")
wait_used(key_b, 10, "another tenant: its own bucket in Redis")
expect(used(key_a) == 27, "another tenant does not touch the first one's bucket")
b_id.close()

other = Stream(addr_a)
r = other.report("elsewhere", [(API_A, 0)])
expect(r.bucket_action[0].WhichOneof("bucket_action") == "abandon_action", "unknown domain: abandon_action")
other.close()

# ------------------------------------------------- two replicas share one bucket
x, y = Stream(addr_a), Stream(addr_b)
r = x.report("contract", [(TIGHT, 0)])
expect(tokens(r.bucket_action[0]) == 10, "replica A: 10 of 25")
r = y.report("contract", [(TIGHT, 0)])
expect(tokens(r.bucket_action[0]) == 10, "replica B: 10 of the 15 left")
r = x.report("contract", [(TIGHT, 10)])
expect(tokens(r.bucket_action[0]) == 5, "replica A, all used: the 5 left, fewer than 10")
r = y.report("contract", [(TIGHT, 10)])
act = r.bucket_action[0]
strategy = act.quota_assignment_action.rate_limit_strategy
expect(strategy.WhichOneof("strategy") == "blanket_rule" and strategy.blanket_rule == DENY_ALL,
       "replica B, limit reached: DENY_ALL")
expect(ttl_s(act) == 3, "DENY_ALL stands for the TTL (asked again at the next report)")
wait_used(key_tight, 25, "the shared bucket counted exactly its limit")
x.close()
y.close()

# ------------------------------------- a stream lives longer than a request body may take
# The servers run with TOLLGATE_BODY_TIMEOUT_MS=1000: a report stream is timed
# from its last message, so one reporting every 0.4 s outlives it...
for _ in range(5):
    time.sleep(0.4)
    r = a.report("", [(API_A, 0)])
expect(tokens(r.bucket_action[0]) == 10, "a stream reporting often outlives the body timeout")
wait_used(key_a, 27, "nothing used: the replaced assignment's 10 back, 10 taken, each time")

# ---------------------------------------------------------- a cancelled stream
c = Stream(addr_a)
r = c.report("contract", [(API_B, 2)])
expect(tokens(r.bucket_action[0]) == 10, "a new stream: its own ledger, 10 more for tenant b")
r = c.report("contract", [(API_B, 4)])
wait_used(key_b, 30, "tenant b: 10 + 10 + 10 taken")
c.responses.cancel()
wait_used(key_b, 24, "a cancelled stream gives back what it held beyond the live assignment (16 - 10)")
c.channel.close()

# ---------------------------------------------------------- the stream's end
a.close()
wait_used(key_a, 17, "stream end: units of replaced assignments back, the live one's kept (27 - 10)")

# ---------------------------------------------------------- a quiet stream
# A stream that goes quiet for longer than the body timeout is reset, as an unfinished request body is.
quiet = Stream(addr_a)
quiet.report("contract", [({"name": "unknown"}, 0)])
time.sleep(2.2)
try:
    quiet.report("contract", [({"name": "unknown"}, 0)])
    expect(False, "a quiet stream is reset after the body timeout")
except grpc.RpcError as e:
    expect(e.code() != grpc.StatusCode.OK, f"a quiet stream is reset after the body timeout ({e.code()})")
quiet.channel.close()

# ---------------------------------------------------------- invalid reports
def refused(usages, field, what):
    s = Stream(addr_a)
    try:
        s.report("contract", usages)
        expect(False, what)
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{what}: INVALID_ARGUMENT")
        expect(field in (e.details() or ""), f"{what}: names {field}")
    s.channel.close()


raw = grpc.insecure_channel(addr_a)
try:
    call = raw.stream_stream(PATH, request_serializer=lambda b: b, response_deserializer=Response.FromString)
    next(call(iter([b"\x0a\xff\xff"]), timeout=5))
    expect(False, "a report that is not a protobuf message is refused")
except grpc.RpcError as e:
    expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "a report that is not a protobuf message: INVALID_ARGUMENT")
raw.close()
refused([({"name": "api", "tenant": str(i)}, 0) for i in range(1001)], "bucket_quota_usages",
        "1001 buckets in one report")
refused([({"name": "api", "tenant": "x" * 300}, 0)], "bucket_quota_usages[0].bucket_id.bucket",
        "an over-long bucket id value")
refused([({"k" * 80: "v"}, 0)], "bucket_quota_usages[0].bucket_id.bucket", "an over-long bucket id key")

print(json.dumps({"ok": True, "checked": checked}))
