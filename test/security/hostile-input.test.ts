/**
 * Hostile input against the built server on a private Redis: broken and
 * oversized messages, decompression bombs, malformed keys (answered 401 with
 * no key lookup in Redis), keys in places they must not be taken from, path
 * spelling and traversal tricks, a spoofed X-Forwarded-For, subjects built to
 * collide in Redis, absurd costs and limits, and CR/LF aimed at the log.
 */
import { createGzip } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CheckRequest,
  CheckRequestSchema,
  Authorization as EnvoyAuthorization,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeRequestSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { PolicyError, parsePolicy } from "../../src/policy/policy.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame, monitorRedis, rawGrpc, rssKb, sleep } from "./support.js";

const PREFIX = "hsec:";
const AUTHORIZE = "/tollgate.v1.TollgateService/Authorize";
const MAX_MESSAGE = 1_048_576;

let redis: TestRedis;
let proc: TollgateProcess;
let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
let keys: ReturnType<typeof createClient<typeof KeyService>>;
let envoy: ReturnType<typeof createClient<typeof EnvoyAuthorization>>;
/** A real, active key's secret (scopes orders:read) and id. */
let secret: string;
let keyId: string;

beforeAll(async () => {
  redis = await startTestRedis();
  proc = await startTollgateProcess({
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER: "hostile-input-pepper-0123456789",
    TOLLGATE_POLICY_FILE: "test/security/fixtures/hostile-policy.yaml",
    // Generous Redis timeouts: the machine is shared, a slow answer is not the subject here.
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "1000",
    TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
  });
  const transport = createGrpcTransport({ baseUrl: proc.url });
  tollgate = createClient(TollgateService, transport);
  keys = createClient(KeyService, transport);
  envoy = createClient(EnvoyAuthorization, transport);
  const created = await keys.createKey({ owner: "acme", scopes: ["orders:read"] });
  secret = created.secret;
  keyId = created.key?.id ?? "";
}, 60_000);

afterAll(async () => {
  await proc?.stop();
  await redis?.stop();
});

/** The gRPC code of a failed call, or "ok". */
async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

function checkRequest(o: {
  path?: string;
  method?: string;
  source?: string;
  headers?: Record<string, string>;
  ext?: Record<string, string>;
}): CheckRequest {
  return create(CheckRequestSchema, {
    attributes: {
      source: {
        address: {
          address: {
            case: "socketAddress",
            value: {
              address: o.source ?? "10.1.2.3",
              portSpecifier: { case: "portValue", value: 40000 },
            },
          },
        },
      },
      request: {
        http: { method: o.method ?? "GET", path: o.path ?? "/v1/orders", headers: o.headers ?? {} },
      },
      contextExtensions: o.ext ?? {},
    },
  });
}

describe("broken, oversized and compressed messages", () => {
  it("answers INVALID_ARGUMENT to garbage and truncated protobuf over gRPC", async () => {
    const valid = Buffer.from(
      toBinary(AuthorizeRequestSchema, create(AuthorizeRequestSchema, { apiKey: secret })),
    );
    const bodies = [
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), // a varint that never ends
      Buffer.from([0x0a, 0x7f, 0x41]), // a string claiming 127 bytes, holding 1
      valid.subarray(0, valid.length - 5), // a real request, cut short
      Buffer.from([0x07]), // wire type 7 does not exist
    ];
    for (const b of bodies) {
      const r = await rawGrpc(proc.url, AUTHORIZE, grpcFrame(b));
      expect(r.grpcStatus).toBe(Code.InvalidArgument);
      expect(r.grpcMessage).not.toContain(secret);
    }
  });

  it("answers a frame shorter than its length prefix without hanging or crashing", async () => {
    const frame = grpcFrame(Buffer.alloc(100, 1)).subarray(0, 20);
    const r = await rawGrpc(proc.url, AUTHORIZE, frame);
    expect(r.grpcStatus).not.toBe(0);
    expect(r.grpcStatus).toBeGreaterThan(0);
  });

  it("answers invalid_argument (400) to garbage protobuf over Connect", async () => {
    for (const body of [Buffer.from([0xff, 0xff, 0xff]), Buffer.from([0x0a, 0x7f, 0x41])]) {
      const res = await fetch(`${proc.url}${AUTHORIZE}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body,
      });
      const text = await res.text();
      expect({ status: res.status, code: JSON.parse(text).code }).toEqual({
        status: 400,
        code: "invalid_argument",
      });
    }
  });

  it("refuses a string field holding invalid UTF-8 (gRPC: INVALID_ARGUMENT, Connect: 400)", async () => {
    // Field 1 (api_key), 3 bytes: "\xc3\x28\xff" is not UTF-8.
    const bad = Buffer.from([0x0a, 0x03, 0xc3, 0x28, 0xff]);
    const r = await rawGrpc(proc.url, AUTHORIZE, grpcFrame(bad));
    expect(r.grpcStatus).toBe(Code.InvalidArgument);
    const res = await fetch(`${proc.url}${AUTHORIZE}`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: bad,
    });
    expect(res.status).toBe(400);
    // JSON with a lone surrogate escape is refused while decoding.
    const json = await fetch(`${proc.url}${AUTHORIZE}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"apiKey":"\\ud800"}',
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("denies (never errors) an ext_authz header whose raw value is not UTF-8", async () => {
    const req = checkRequest({});
    const http = req.attributes?.request?.http;
    if (!http) throw new Error("no http attributes");
    http.headerMap = {
      $typeName: "envoy.config.core.v3.HeaderMap",
      headers: [
        {
          $typeName: "envoy.config.core.v3.HeaderValue",
          key: "x-api-key",
          value: "",
          rawValue: new Uint8Array([0xc3, 0x28, 0xff]),
        },
      ],
    };
    const res = await envoy.check(req);
    expect(res.status?.code).toBe(Code.InvalidArgument);
    expect(res.httpResponse.case).toBe("deniedResponse");
  });

  it("answers RESOURCE_EXHAUSTED to a message over TOLLGATE_MAX_MESSAGE_BYTES on every transport", async () => {
    const big = Buffer.alloc(MAX_MESSAGE + 1024, 0);
    const r = await rawGrpc(proc.url, AUTHORIZE, grpcFrame(big));
    expect(r.grpcStatus).toBe(Code.ResourceExhausted);
    for (const url of [proc.url, proc.httpUrl]) {
      const res = await fetch(`${url}${AUTHORIZE}`, {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body: big,
      });
      expect(res.status).toBe(429);
      expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    }
    expect(proc.child.exitCode).toBeNull();
  });

  it("refuses gzip bombs after bounded decompression, with memory flat and the process alive", async () => {
    const pid = proc.child.pid as number;
    // 256 MiB of zeros → ≈ 260 kB compressed: under the message bound, far over it inflated.
    const bomb = await gzipZeros(256 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(MAX_MESSAGE);
    const before = rssKb(pid);
    // gRPC (grpc-js): compressed flag + grpc-encoding.
    const g = await rawGrpc(proc.url, AUTHORIZE, grpcFrame(bomb, true), {
      "grpc-encoding": "gzip",
    });
    expect(g.grpcStatus).toBe(Code.ResourceExhausted);
    // gRPC over the Connect port (connect-node).
    const g2 = await rawGrpc(proc.httpUrl, AUTHORIZE, grpcFrame(bomb, true), {
      "grpc-encoding": "gzip",
    });
    expect(g2.grpcStatus).toBe(Code.ResourceExhausted);
    // Connect unary: content-encoding; binary and JSON.
    for (const ct of ["application/proto", "application/json"]) {
      const res = await fetch(`${proc.url}${AUTHORIZE}`, {
        method: "POST",
        headers: { "content-type": ct, "content-encoding": "gzip" },
        body: bomb,
      });
      expect(res.status).toBe(429);
      expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    }
    // gRPC-Web over HTTP/1.1: compressed frame.
    const web = await fetch(`${proc.url}${AUTHORIZE}`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "grpc-encoding": "gzip" },
      body: grpcFrame(bomb, true),
    });
    const webStatus =
      web.headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(await web.text())?.[1];
    expect(Number(webStatus)).toBe(Code.ResourceExhausted);
    const after = rssKb(pid);
    // Inflating even one bomb fully would add 256 MiB; allow a little allocator noise.
    expect(after - before).toBeLessThan(64 * 1024);
    expect(proc.child.exitCode).toBeNull();
    expect((await tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
  });
});

describe("malformed keys: 401 with no key lookup in Redis", () => {
  const variants = (s: string): [string, string][] => {
    const body = s.slice(8); // after "tg_live_"
    const i = [...body].findIndex((c) => /[A-Za-z]/.test(c));
    const flip = (c: string) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());
    const wrongCase = `tg_live_${body.slice(0, i)}${flip(body[i] as string)}${body.slice(i + 1)}`;
    return [
      ["whitespace-padded", ` ${s} `],
      ["trailing tab", `${s}\t`],
      ["wrong case (one letter)", wrongCase],
      ["upper-cased", s.toUpperCase()],
      ["doubled (a,b)", `${s},${s}`],
      ["doubled (a, b)", `${s}, ${generateSecret("live")}`],
      ["NUL-bearing", `${s}\u0000`],
      ["CR-bearing", `${s}\r`],
      ["LF-bearing", `${s}\nx-other: 1`],
      ["10 KB", `${s}${"A".repeat(10_240)}`],
      ["10 KB of junk", "x".repeat(10_240)],
      ["non-ASCII letter", `tg_live_\u0430${body.slice(1)}`], // Cyrillic а
      ["emoji", `tg_live_${"😀".repeat(15)}`],
      ["truncated", s.slice(0, -1)],
      ["prefix only", "tg_live_"],
      ["Bearer-prefixed", `Bearer ${s}`],
    ];
  };

  it("answers MISSING_KEY (401) to a missing or empty key", async () => {
    for (const r of [
      await tollgate.authorize({}),
      await tollgate.authorize({ apiKey: "" }),
      await tollgate.authorize({ headers: { "x-api-key": "" } }),
    ]) {
      expect({ allowed: r.allowed, reason: r.reason, status: r.httpStatus }).toEqual({
        allowed: false,
        reason: Reason.MISSING_KEY,
        status: 401,
      });
    }
    const c = await envoy.check(checkRequest({}));
    expect(c.status?.code).toBe(Code.Unauthenticated);
  });

  it("answers MALFORMED_KEY (401) to every malformed spelling, with zero key lookups in Redis", async () => {
    const tap = await monitorRedis(redis.port);
    try {
      for (const [name, k] of variants(secret)) {
        const viaHeaders = tollgate.authorize({ headers: { "X-Api-Key": k } });
        if (Buffer.byteLength(k) > 8192) {
          // Over the documented bound of a header value: refused before any key handling.
          expect(await codeOf(viaHeaders)).toBe(Code.InvalidArgument);
        }
        const answers = [await tollgate.authorize({ apiKey: k })];
        if (Buffer.byteLength(k) <= 8192) answers.push(await viaHeaders);
        for (const r of answers) {
          expect({ name, allowed: r.allowed, reason: r.reason, status: r.httpStatus }).toEqual({
            name,
            allowed: false,
            reason: Reason.MALFORMED_KEY,
            status: 401,
          });
          expect(r.identity).toBeUndefined();
        }
        const c = await envoy.check(checkRequest({ headers: { "x-api-key": k } }));
        expect({ name, code: c.status?.code }).toEqual({ name, code: Code.Unauthenticated });
        expect(c.httpResponse.case).toBe("deniedResponse");
      }
      await sleep(150); // let MONITOR catch up
      const lookups = tap.lines.filter(
        (l) => l.includes(`"${PREFIX}kd:`) || l.includes(`"${PREFIX}key:`),
      );
      expect(lookups).toEqual([]);

      // Control: a well-formed unknown key is looked up (the tap does see lookups).
      const r = await tollgate.authorize({ apiKey: generateSecret("live") });
      expect(r.reason).toBe(Reason.UNKNOWN_KEY);
      await sleep(150);
      expect(tap.lines.some((l) => l.includes(`"${PREFIX}kd:`))).toBe(true);
    } finally {
      tap.close();
    }
  });

  it("answers an Authorize request with two x-api-key entries (any case) as malformed", async () => {
    const r = await tollgate.authorize({ headers: { "x-api-key": secret, "X-API-KEY": secret } });
    expect(r.reason).toBe(Reason.MALFORMED_KEY);
    expect(r.httpStatus).toBe(401);
  });

  it("does not take a key from the query string or an x_api_key header", async () => {
    for (const path of [
      `/v1/orders?api_key=${secret}`,
      `/v1/orders?x-api-key=${secret}`,
      `/v1/orders#${secret}`,
    ]) {
      const r = await tollgate.authorize({ method: "GET", path });
      expect(r.reason).toBe(Reason.MISSING_KEY);
      const c = await envoy.check(checkRequest({ path }));
      expect(c.status?.code).toBe(Code.Unauthenticated);
    }
    for (const name of ["x_api_key", "api-key", "apikey", "x-api-keys", "authorization"]) {
      const value = name === "authorization" ? `Bearer ${secret}` : secret;
      const r = await tollgate.authorize({ headers: { [name]: value } });
      expect({ name, reason: r.reason }).toEqual({ name, reason: Reason.MISSING_KEY });
      const c = await envoy.check(checkRequest({ headers: { [name]: value } }));
      expect({ name, code: c.status?.code }).toEqual({ name, code: Code.Unauthenticated });
    }
    // The real header still works (the key is valid).
    expect((await tollgate.authorize({ headers: { "x-api-key": secret } })).allowed).toBe(true);
  });
});

describe("paths", () => {
  it("puts every spelling of /v1/x in one bucket", async () => {
    const subject = `paths-${Date.now()}`;
    const spellings = [
      "/v1/x",
      "//v1/x",
      "/v1//x",
      "/V1/X",
      "/v1/x/",
      "/v1/./x",
      "/v1/%2e%2e/v1/x",
      "/v1/y/../x",
      "/../../v1/x",
      "/v1/%78",
      "/v1/x?y=1",
      "/v1/x#frag",
    ];
    const answers = [];
    for (const path of spellings) {
      const r = await tollgate.checkRateLimit({ subject, method: "GET", path });
      expect(r.result?.deciding?.name ?? r.result?.limits[0]?.name).toBe("x");
      answers.push(r.allowed);
    }
    // Burst 3: exactly the first three spellings pass, all others are denied.
    expect(answers).toEqual(spellings.map((_, i) => i < 3));
  });

  it("refuses encoded separators, NUL, bad escapes and backslashes (INVALID_ARGUMENT / 400)", async () => {
    const bad = [
      "/v1/..%2fx",
      "/v1%2Fx",
      "/v1/%5cx",
      "/v1/x%00",
      "/v1/%zz",
      "/v1/%2",
      "/v1\\x",
      "/v1/\u0000x",
      "/v1/x\r\n",
      "v1/x",
    ];
    for (const path of bad) {
      expect({ path, code: await codeOf(tollgate.checkRateLimit({ subject: "p", path })) }).toEqual(
        { path, code: Code.InvalidArgument },
      );
      expect({ path, code: await codeOf(tollgate.authorize({ apiKey: secret, path })) }).toEqual({
        path,
        code: Code.InvalidArgument,
      });
      const c = await envoy.check(checkRequest({ path, headers: { "x-api-key": secret } }));
      expect({ path, code: c.status?.code }).toEqual({ path, code: Code.InvalidArgument });
    }
  });

  it("never lets traversal reach a scoped endpoint without its scope", async () => {
    const attempts = [
      "/v1/admin/users",
      "/V1/ADMIN/users",
      "//v1//admin/users",
      "/v1/orders/../admin/users",
      "/v1/%61dmin/users",
      "/v1/./admin/users/",
      "/v1/orders/%2e%2e/admin/users",
      "/x/../../v1/admin/users",
    ];
    for (const path of attempts) {
      const r = await tollgate.authorize({ apiKey: secret, method: "GET", path });
      expect({ path, allowed: r.allowed, reason: r.reason, endpoint: r.endpoint }).toEqual({
        path,
        allowed: false,
        reason: Reason.INSUFFICIENT_SCOPE,
        endpoint: "admin",
      });
      const c = await envoy.check(checkRequest({ path, headers: { "x-api-key": secret } }));
      expect({ path, code: c.status?.code }).toEqual({ path, code: Code.PermissionDenied });
    }
  });
});

describe("client address", () => {
  it("ignores a spoofed X-Forwarded-For when no hop is trusted", async () => {
    const allowOnly = await keys.createKey({ owner: "acme", ipAllow: ["203.0.113.7/32"] });
    const denyOne = await keys.createKey({ owner: "acme", ipDeny: ["203.0.113.66/32"] });
    const spoof = (k: string, ip: string) =>
      checkRequest({
        source: "10.1.2.3",
        path: "/v1/unscoped",
        headers: {
          "x-api-key": k,
          "x-forwarded-for": ip,
          "x-real-ip": ip,
          forwarded: `for=${ip}`,
        },
      });
    // The allow-listed address in XFF does not help a caller from 10.1.2.3…
    const a = await envoy.check(spoof(allowOnly.secret, "203.0.113.7"));
    expect(a.status?.code).toBe(Code.PermissionDenied);
    // …and a denied address in XFF does not hurt one.
    const b = await envoy.check(spoof(denyOne.secret, "203.0.113.66"));
    expect(b.status?.code).toBe(0);
    // The real source address is what counts.
    const c = await envoy.check(
      checkRequest({
        source: "203.0.113.66",
        path: "/v1/unscoped",
        headers: { "x-api-key": denyOne.secret },
      }),
    );
    expect(c.status?.code).toBe(Code.PermissionDenied);
  });
});

describe("subjects with hash-tag and glob characters", () => {
  const subjects = [
    "a",
    "{a}",
    "a}",
    "{a",
    "{",
    "}",
    "{}",
    "}{",
    "%7Ba%7D",
    "%7B",
    "%257B",
    "a:b",
    "a:*",
    "*",
    "**",
    "?",
    "[a]",
    "s:a",
    "{s:a}",
    "k:key_0000000000000000",
    "a}:{b",
    "x}:rl:{s:y",
  ];

  it("gives each subject its own bucket and one well-formed hash tag", async () => {
    const prefix = `subj-${Date.now()}-`;
    for (const s of subjects) {
      const first = await tollgate.checkRateLimit({ subject: prefix + s, endpoint: "one" });
      const second = await tollgate.checkRateLimit({ subject: prefix + s, endpoint: "one" });
      expect({ s, first: first.allowed, second: second.allowed }).toEqual({
        s,
        first: true,
        second: false,
      });
    }
    const c = new Redis(redis.url);
    try {
      const names = await c.keys(`${PREFIX}rl:*${prefix.replaceAll("-", "?")}*`);
      expect(names.length).toBe(subjects.length);
      for (const n of names) expect(n).toMatch(/^hsec:rl:\{[^{}]+\}:[^{}]*$/);
    } finally {
      c.disconnect();
    }
  });

  it("records events with such subjects without errors", async () => {
    const r = await tollgate.recordEvent({
      events: subjects.map((s, i) => ({
        id: `subj-ev-${Date.now()}-${i}`,
        customType: "login.failed",
        subject: s,
        severity: Severity.LOW,
      })),
    });
    expect(r.acceptedIds.length).toBe(subjects.length);
  });
});

describe("costs and limits", () => {
  it("refuses costs above 1 000 000 on every RPC (INVALID_ARGUMENT)", async () => {
    for (const cost of [1_000_001, 2 ** 31, 2 ** 32 - 1]) {
      expect(await codeOf(tollgate.checkRateLimit({ subject: "c", endpoint: "ten", cost }))).toBe(
        Code.InvalidArgument,
      );
      expect(await codeOf(tollgate.authorize({ apiKey: secret, cost, applyLimits: true }))).toBe(
        Code.InvalidArgument,
      );
    }
  });

  it("refuses negative, fractional and overflowing costs in JSON (400)", async () => {
    for (const cost of ["-1", "1.5", "4294967296", "1e20", '"abc"']) {
      const res = await fetch(`${proc.url}/tollgate.v1.TollgateService/CheckRateLimit`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: `{"subject":"c","endpoint":"ten","cost":${cost}}`,
      });
      expect({ cost, status: res.status }).toEqual({ cost, status: 400 });
    }
  });

  it("charges costs exactly: 0 means the endpoint's cost, all or nothing above what remains", async () => {
    const subject = `cost-${Date.now()}`;
    const run = async (cost: number) => {
      const r = await tollgate.checkRateLimit({ subject, endpoint: "ten", cost });
      return [r.allowed, Number(r.result?.limits[0]?.remaining)];
    };
    expect(await run(0)).toEqual([true, 9]);
    expect(await run(4)).toEqual([true, 5]);
    expect(await run(6)).toEqual([false, 5]); // more than remains: refused, nothing charged
    expect(await run(5)).toEqual([true, 0]);
    expect(await run(1)).toEqual([false, 0]);
  });

  it("counts the largest quota exactly and always denies a limit of zero", async () => {
    const subject = `huge-${Date.now()}`;
    const a = await tollgate.checkRateLimit({ subject, endpoint: "huge", cost: 1_000_000 });
    const b = await tollgate.checkRateLimit({ subject, endpoint: "huge", cost: 1_000_000 });
    expect(a.result?.limits[0]?.limit).toBe(9007199253740991n);
    expect(a.result?.limits[0]?.remaining).toBe(9007199252740991n);
    expect(b.result?.limits[0]?.remaining).toBe(9007199251740991n);
    const z = await tollgate.checkRateLimit({ subject, endpoint: "zero" });
    expect(z.allowed).toBe(false);
    expect(z.httpStatus).toBe(429);
  });

  it("refuses negative, zero-period, fractional and absurd limits and costs in a policy", () => {
    const policy = (limit: string, extra = "") => `version: 1
default_tier: free
tiers: { free: { description: f } }
endpoints:
  - name: e
    path: /e${extra}
    limits:
      - ${limit}
`;
    const bad = [
      policy("{ name: l, by: subject, rate: { requests: -1, per: 1s } }"),
      policy("{ name: l, by: subject, rate: { requests: 1.5, per: 1s } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 0s } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: -1s } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 1s, burst: -3 } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 1s, burst: 10000000000000000 } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 400d } }"),
      policy("{ name: l, by: subject, quota: { requests: 9007199254740991, per: day } }"),
      policy("{ name: l, by: subject, quota: { requests: -5, per: month } }"),
      policy("{ name: l, by: subject, quota: { requests: 5, per: fortnight } }"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 1s } }", "\n    cost: 0"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 1s } }", "\n    cost: -5"),
      policy("{ name: l, by: subject, rate: { requests: 1, per: 1s } }", "\n    cost: 1000001"),
    ];
    for (const text of bad) expect(() => parsePolicy(text, "p")).toThrow(PolicyError);
    // The bounds themselves are accepted.
    expect(() =>
      parsePolicy(
        policy(
          "{ name: l, by: subject, quota: { requests: 9007199253740991, per: day } }",
          "\n    cost: 1000000",
        ),
        "p",
      ),
    ).not.toThrow();
    expect(() =>
      parsePolicy(policy("{ name: l, by: subject, rate: { requests: 0, per: 1s } }"), "p"),
    ).not.toThrow();
  });
});

describe("logs", () => {
  it("keeps every log line single-line JSON whatever CR / LF the request carries", async () => {
    const inject = '\r\n{"level":"fatal","msg":"forged"}\n\u2028\u0085';
    const before = proc.logs.length;
    await envoy.check(
      checkRequest({
        headers: { "x-api-key": secret, traceparent: `00-${inject}`, "user-agent": inject },
        path: `/v1/orders?q=${encodeURIComponent(inject)}`,
      }),
    );
    await envoy.check(checkRequest({ headers: { "x-api-key": inject, traceparent: inject } }));
    await tollgate.authorize({ apiKey: inject, headers: { traceparent: inject } });
    await codeOf(tollgate.checkRateLimit({ subject: inject, endpoint: "x" }));
    await codeOf(keys.revokeKey({ id: keyId.replace(/.$/, "\n"), reason: inject }));
    await codeOf(
      keys.createKey({ owner: `o${inject}`, metadata: { [`k${inject}`.slice(0, 60)]: inject } }),
    );
    await codeOf(keys.updateKey({ id: keyId, updateMask: { paths: [inject] } }));
    await codeOf(
      tollgate.recordEvent({
        events: [
          {
            id: `crlf-${Date.now()}`,
            customType: "crlf.test",
            subject: inject,
            attributes: { note: inject },
          },
        ],
      }),
    );
    await sleep(300); // background event flush
    const lines = proc.output().split("\n").filter(Boolean);
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow();
    expect(proc.logs.some((l) => l.msg === "forged")).toBe(false);
    expect(proc.logs.slice(before).some((l) => "raw" in l)).toBe(false);
    // The injected value did reach the log, escaped.
    expect(proc.logs.slice(before).some((l) => String(l.traceparent ?? "").includes("\r\n"))).toBe(
      true,
    );
  });
});

/** Gzips `n` zero bytes without holding them in memory. */
async function gzipZeros(n: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gz.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => gz.on("end", r));
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < n / block.length; i++) {
    if (!gz.write(block)) await new Promise((r) => gz.once("drain", r));
  }
  gz.end();
  await done;
  return Buffer.concat(chunks);
}
