#!/usr/bin/python3
"""Contract test of Tollgate's Envoy APIs and its own API, with Python grpcio.

A client nobody on the Tollgate team wrote: message classes come from the
upstream Envoy protos (a FileDescriptorSet built by `buf build` from the protos
that @grpc/grpc-js-xds ships) and from proto/tollgate/v1, and calls go through
grpcio's generic unary API. Every field an Envoy (or an application) reads is
asserted. Prints one JSON summary line; exits non-zero on the first failure.

Usage: envoy_contract.py ADDR ENVOY_SET TOLLGATE_SET SECRET KEY_ID
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

addr, envoy_set, tollgate_set, secret, key_id = sys.argv[1:6]


def load(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return fds.file


files = {f.name: f for f in list(load(envoy_set)) + list(load(tollgate_set))}
M = message_factory.GetMessages(list(files.values()))
channel = grpc.insecure_channel(addr)
checked = []


def rpc(path, req, out):
    call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=M[out].FromString)
    return call(req, timeout=5)


def expect(cond, what):
    if not cond:
        print(json.dumps({"ok": False, "failed": what, "checked": checked}))
        sys.exit(1)
    checked.append(what)


# ---------------------------------------------------------------- ext_authz Check
def check(headers=None, header_map=None, path="/v1/orders", method="GET", ext=None, ip="203.0.113.7"):
    req = M["envoy.service.auth.v3.CheckRequest"]()
    http = req.attributes.request.http
    http.method, http.path = method, path
    for k, v in (headers or {}).items():
        http.headers[k] = v
    for k, raw in header_map or []:
        h = http.header_map.headers.add()
        h.key, h.raw_value = k, raw
    req.attributes.source.address.socket_address.address = ip
    for k, v in (ext or {}).items():
        req.attributes.context_extensions[k] = v
    return rpc("/envoy.service.auth.v3.Authorization/Check", req, "envoy.service.auth.v3.CheckResponse")


def header_dict(options):
    return {o.header.key: o.header.value for o in options}


r = check({"x-api-key": secret, "x-tollgate-key-id": "spoofed"}, ext={"apply_limits": "true"})
expect(r.status.code == 0, "check allowed: status OK")
expect(r.WhichOneof("http_response") == "ok_response", "check allowed: ok_response")
ok_headers = header_dict(r.ok_response.headers)
expect(ok_headers.get("x-tollgate-key-id") == key_id, "check allowed: x-tollgate-key-id overwrites a spoofed one")
expect(ok_headers.get("x-tollgate-tier") == "free", "check allowed: x-tollgate-tier")
expect("orders:read" in ok_headers.get("x-tollgate-scopes", ""), "check allowed: x-tollgate-scopes")
overwrite = M["envoy.config.core.v3.HeaderValueOption"].HeaderAppendAction.Value("OVERWRITE_IF_EXISTS_OR_ADD")
expect(all(o.append_action == overwrite for o in r.ok_response.headers), "check allowed: identity headers overwrite")
expect(list(r.ok_response.headers_to_remove) == ["x-api-key"], "check allowed: API key header removed")
r = check({"x-api-key": secret, "x-tollgate-environment": "spoofed", "X-Tollgate-Admin": "1"})
expect(r.status.code == 0, "check allowed with spoofed identity headers")
expect(sorted(r.ok_response.headers_to_remove) == ["x-api-key", "x-tollgate-admin", "x-tollgate-environment"],
       "check allowed: x-tollgate-* headers Tollgate does not set are removed")
resp_headers = header_dict(r.ok_response.response_headers_to_add)
expect("ratelimit" in resp_headers and "ratelimit-policy" in resp_headers, "check allowed: RateLimit headers")
md = r.dynamic_metadata.fields
expect(md["key_id"].string_value == key_id and md["tier"].string_value == "free", "check allowed: dynamic_metadata")
expect(len(md["decision_id"].string_value) == 24, "check allowed: decision_id in metadata")


def expect_denied(r, grpc_code, http_status, error, what):
    expect(r.status.code == grpc_code, f"{what}: status {grpc_code}")
    expect(r.WhichOneof("http_response") == "denied_response", f"{what}: denied_response")
    expect(r.denied_response.status.code == http_status, f"{what}: HTTP {http_status}")
    body = json.loads(r.denied_response.body)
    expect(body["error"] == error and len(body["decision_id"]) == 24, f"{what}: body error {error}")
    expect(secret not in r.denied_response.body and secret not in str(r), f"{what}: no secret in the reply")
    return header_dict(r.denied_response.headers)


h = expect_denied(check({}), 16, 401, "missing_key", "missing key")
expect(h.get("www-authenticate", "").startswith("ApiKey"), "missing key: WWW-Authenticate")
expect_denied(check({"x-api-key": "tg_live_short"}), 16, 401, "invalid_key", "malformed key")
expect_denied(check({"x-api-key": secret[:-1] + ("A" if secret[-1] != "A" else "B")}), 16, 401, "invalid_key",
              "checksum mismatch")
expect_denied(check({"x-api-key": secret + "," + secret}), 16, 401, "invalid_key", "doubled x-api-key (a,b)")
expect_denied(check({"x-api-key": secret + "\r\nx-evil: 1"}), 16, 401, "invalid_key", "CR/LF in the key")
expect_denied(check({"x-api-key": " " + secret}), 16, 401, "invalid_key", "whitespace-padded key")
expect_denied(check({"x-api-key": "x" * 10000}), 16, 401, "invalid_key", "10 KB key")
expect_denied(check(header_map=[("x-api-key", b"\xff\xfe" + secret.encode())]), 3, 400, "invalid_header",
              "invalid UTF-8 header")
expect_denied(check({f"x-h{i}": "v" for i in range(500)} | {"x-api-key": secret}), 3, 431, "headers_too_large",
              "oversized header map")
expect_denied(check({"x_api_key": secret}), 16, 401, "missing_key", "x_api_key is not the key header")
expect_denied(check({"x-api-key": secret}, path="/v1/orders?x-api-key=1", ext={"scopes": "admin:all"}), 7, 403,
              "insufficient_scope", "missing scope")
expect_denied(check({"x-api-key": secret}, path="/v1/%2Forders"), 3, 400, "invalid_path", "encoded slash in path")
for _ in range(2):
    r = check({"x-api-key": secret}, path="/v1/tight")
    expect(r.status.code == 0, "tight endpoint: allowed within limit")
h = expect_denied(check({"x-api-key": secret}, path="/v1/TIGHT/"), 8, 429, "rate_limited", "rate limited")
expect(int(h.get("retry-after", "0")) >= 1 and h.get("ratelimit", "").startswith('"tight-per-key"'),
       "rate limited: Retry-After and RateLimit headers")

# ---------------------------------------------------------------- ShouldRateLimit
def should(domain, descriptors, hits=0, per_descriptor_hits=None):
    req = M["envoy.service.ratelimit.v3.RateLimitRequest"](domain=domain, hits_addend=hits)
    for i, entries in enumerate(descriptors):
        d = req.descriptors.add()
        for k, v in entries:
            e = d.entries.add()
            e.key, e.value = k, v
        if per_descriptor_hits and per_descriptor_hits[i] is not None:
            # Field 3 (google.protobuf.UInt64Value hits_addend) of newer Envoy APIs,
            # appended as raw bytes since these protos predate it.
            n = per_descriptor_hits[i]
            d.MergeFromString(bytes([0x1A, 2, 0x08, n]))
    return rpc("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit", req,
               "envoy.service.ratelimit.v3.RateLimitResponse")


RLR = M["envoy.service.ratelimit.v3.RateLimitResponse"].DESCRIPTOR
Code = EnumTypeWrapper(RLR.enum_types_by_name["Code"])
Unit = EnumTypeWrapper(RLR.nested_types_by_name["RateLimit"].enum_types_by_name["Unit"])
for remaining in (2, 1, 0):
    r = should("edge", [[("remote_address", "198.51.100.1")]])
    s = r.statuses[0]
    expect(r.overall_code == Code.Value("OK") and s.code == Code.Value("OK"), "RLS: under limit OK")
    expect(s.current_limit.requests_per_unit == 3 and s.current_limit.unit == Unit.Value("MINUTE"),
           "RLS: current_limit 3/minute")
    expect(s.limit_remaining == remaining, f"RLS: limit_remaining {remaining}")
    expect(s.duration_until_reset.seconds > 0 or s.duration_until_reset.nanos > 0, "RLS: duration_until_reset")
r = should("edge", [[("remote_address", "198.51.100.1")]])
expect(r.overall_code == Code.Value("OVER_LIMIT") and r.statuses[0].code == Code.Value("OVER_LIMIT"),
       "RLS: over limit")
hdrs = {h.key: h.value for h in r.response_headers_to_add}
expect("retry-after" in hdrs and "ratelimit" in hdrs, "RLS: RateLimit and Retry-After headers")
r = should("edge", [[("remote_address", "198.51.100.2")]], hits=2)
expect(r.statuses[0].limit_remaining == 1, "RLS: request hits_addend 2 charges 2")
r = should("edge", [[("remote_address", "198.51.100.3")], [("remote_address", "198.51.100.4")]],
           per_descriptor_hits=[3, 1])
expect(r.statuses[0].limit_remaining == 0 and r.statuses[1].limit_remaining == 2, "RLS: per-descriptor hits_addend")
r = should("edge", [[("remote_address", "198.51.100.5")], [("remote_address", "198.51.100.6")]],
           per_descriptor_hits=[1, 4])
expect(r.overall_code == Code.Value("OVER_LIMIT"), "RLS: a descriptor over its limit denies the request")
expect(r.statuses[0].code == Code.Value("OK") and r.statuses[0].limit_remaining == 3,
       "RLS: on a denial the other descriptor reports what it has now (nothing was charged)")
r = should("edge", [[("remote_address", "198.51.100.5")]])
expect(r.statuses[0].limit_remaining == 2, "RLS: all or nothing - the denied request charged no descriptor")
r = should("edge", [[("path", "/free")]])
expect(r.overall_code == Code.Value("OK") and not r.statuses[0].HasField("current_limit"), "RLS: unlimited")
should("edge", [[("path", "/shadow")]])
r = should("edge", [[("path", "/shadow")]])
expect(r.overall_code == Code.Value("OK") and r.statuses[0].code == Code.Value("OK"), "RLS: shadow mode never denies")
r = should("edge", [[("tenant", "acme"), ("plan", "gold")]])
expect(r.statuses[0].current_limit.name == "gold-tenants" and r.statuses[0].limit_remaining == 9,
       "RLS: nested descriptors with a wildcard key")
r = should("nope", [[("remote_address", "198.51.100.1")]])
expect(r.overall_code == Code.Value("OK") and not r.statuses[0].HasField("current_limit"), "RLS: unknown domain")

# ---------------------------------------------------------------- Tollgate's own API
T = "tollgate.v1."
r = rpc("/tollgate.v1.TollgateService/Authorize",
        M[T + "AuthorizeRequest"](api_key=secret, method="GET", path="/v1/orders", client_ip="203.0.113.9"),
        T + "AuthorizeResponse")
expect(r.allowed and r.http_status == 200 and r.identity.key_id == key_id, "Authorize: allowed with identity")
r = rpc("/tollgate.v1.TollgateService/CheckRateLimit",
        M[T + "CheckRateLimitRequest"](key_id=key_id, endpoint="orders"), T + "CheckRateLimitResponse")
expect(r.allowed and r.result.deciding.name == "per-key", "CheckRateLimit: allowed, deciding limit named")
try:
    ev = M[T + "RecordEventRequest"]()
    e = ev.events.add()
    e.id, e.subject, e.custom_type = "contract-1", "203.0.113.9", "contract.test"
    r = rpc("/tollgate.v1.TollgateService/RecordEvent", ev, T + "RecordEventResponse")
    expect(list(r.accepted_ids) == ["contract-1"], "RecordEvent: accepted")
except grpc.RpcError as err:
    expect(err.code() == grpc.StatusCode.UNIMPLEMENTED, "RecordEvent: UNIMPLEMENTED until the events issue lands")
r = rpc("/tollgate.v1.TollgateService/RotateKey", M[T + "RotateKeyRequest"](current_secret=secret),
        T + "RotateKeyResponse")
expect(r.secret.startswith("tg_") and r.secret != secret and r.key.id == key_id, "RotateKey: self-rotation")
r2 = rpc("/tollgate.v1.TollgateService/Authorize", M[T + "AuthorizeRequest"](api_key=r.secret), T + "AuthorizeResponse")
expect(r2.allowed, "RotateKey: the new secret works at once")
r3 = rpc("/tollgate.v1.TollgateService/Authorize", M[T + "AuthorizeRequest"](api_key=secret), T + "AuthorizeResponse")
expect(r3.allowed and r3.hints.in_grace_period, "RotateKey: the old secret works in its grace period")
try:
    rpc("/tollgate.v1.TollgateService/Authorize", M[T + "AuthorizeRequest"](path="no-slash"), T + "AuthorizeResponse")
    expect(False, "Authorize: bad path is INVALID_ARGUMENT")
except grpc.RpcError as err:
    expect(err.code() == grpc.StatusCode.INVALID_ARGUMENT, "Authorize: bad path is INVALID_ARGUMENT")

print(json.dumps({"ok": True, "checked": checked}))
