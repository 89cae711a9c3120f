/**
 * Connect JSON, gRPC-Web JSON and gRPC JSON refuse what they do not
 * understand, on the built server over real sockets (HTTP/1.1 and h2c): an unknown field (top-level or nested) or an
 * enum value that is not one of the enum's names or defined numbers is
 * INVALID_ARGUMENT with a google.rpc.BadRequest violation naming the field by
 * its proto path (`events[0].severity`); an enum's violation lists the
 * accepted names. Nothing is silently defaulted, no refused request has an
 * effect, and no error echoes a value (or a name that could be a secret).
 * Correct spellings — JSON names, proto names, enum names, defined numbers —
 * keep working, and binary protobuf keeps its unknown fields as before.
 */
import { connect, constants } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BadRequest_FieldViolation,
  BadRequestSchema,
} from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame, rawGrpc } from "../security/support.js";

const TOKEN = "e2e-json-strict-token-0123456789";
const BEARER = { authorization: `Bearer ${TOKEN}` };
const TG = "/tollgate.v1.TollgateService";
const KS = "/tollgate.v1.KeyService";
const AUTHORIZE = `${TG}/Authorize`;

let server: TollgateProcess;
let secret: string;
let keyId: string;

/** An answer reduced to what the tests compare: HTTP status, Connect/gRPC code, violations. */
interface Answer {
  status: number;
  /** Connect answers carry the status in the HTTP status; gRPC(-Web) ones in trailers. */
  protocol: "connect" | "grpc";
  code: string;
  violations: { field: string; description: string }[];
  /** Everything the caller received, for leak checks. */
  raw: string;
  json: Record<string, unknown>;
}

const GRPC_CODES: Record<string, string> = { "0": "ok", "3": "invalid_argument" };

function violationsOf(bin: Uint8Array): Answer["violations"] {
  const status = fromBinary(StatusSchema, bin);
  return status.details.flatMap((d) => {
    const bad = anyUnpack(d, BadRequestSchema);
    return bad ? bad.fieldViolations.map(pick) : [];
  });
}

function pick(v: BadRequest_FieldViolation): { field: string; description: string } {
  return { field: v.field, description: v.description };
}

/** Reads a Connect unary answer (success body or error body). */
function connectAnswer(status: number, text: string): Answer {
  const json = (text === "" ? {} : JSON.parse(text)) as Record<string, unknown>;
  const details = (json.details ?? []) as { type: string; value: string }[];
  const violations = details
    .filter((d) => d.type === "google.rpc.BadRequest")
    .flatMap((d) =>
      fromBinary(BadRequestSchema, Buffer.from(d.value, "base64")).fieldViolations.map(pick),
    );
  return {
    status,
    protocol: "connect",
    code: status === 200 ? "ok" : String(json.code),
    violations,
    raw: text,
    json,
  };
}

/** POSTs Connect JSON over HTTP/1.1 with fetch. */
async function connectJson(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return connectAnswer(res.status, await res.text());
}

/** POSTs over h2c (prior knowledge) with node:http2; resolves to status, headers, trailers, body. */
function h2c(
  base: string,
  path: string,
  contentType: string,
  body: Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = connect(base);
    session.on("error", reject);
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: path,
      "content-type": contentType,
      ...headers,
    });
    let status = 0;
    const all: Record<string, unknown> = {};
    req.on("response", (h) => {
      status = Number(h[":status"]);
      Object.assign(all, h);
    });
    req.on("trailers", (h) => Object.assign(all, h));
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      session.close();
      resolve({ status, headers: all, body: Buffer.concat(chunks) });
    });
    req.on("error", (err) => {
      session.destroy();
      reject(err);
    });
    req.end(body);
  });
}

/** POSTs Connect JSON over h2c. */
async function connectJsonH2c(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await h2c(base, path, "application/json", Buffer.from(body), headers);
  return connectAnswer(r.status, r.body.toString("utf8"));
}

/** Reads a gRPC-Web answer: status and details from headers or the trailer frame. */
function grpcWebAnswer(status: number, headers: Record<string, unknown>, body: Buffer): Answer {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) fields[k.toLowerCase()] = String(v);
  let i = 0;
  let message: Record<string, unknown> = {};
  while (i + 5 <= body.length) {
    const flag = body[i] as number;
    const len = body.readUInt32BE(i + 1);
    const payload = body.subarray(i + 5, i + 5 + len);
    if (flag & 0x80) {
      for (const line of payload.toString("latin1").split("\r\n")) {
        const at = line.indexOf(":");
        if (at > 0) fields[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
    } else {
      message = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
    }
    i += 5 + len;
  }
  const bin = fields["grpc-status-details-bin"];
  return {
    status,
    protocol: "grpc",
    code: GRPC_CODES[fields["grpc-status"] ?? ""] ?? `grpc-${fields["grpc-status"]}`,
    violations: bin ? violationsOf(Buffer.from(bin, "base64")) : [],
    raw: `${JSON.stringify(fields)}\n${body.toString("latin1")}`,
    json: message,
  };
}

/** gRPC-Web JSON over HTTP/1.1 with fetch. */
async function grpcWebJson(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/grpc-web+json", "x-grpc-web": "1", ...headers },
    body: grpcFrame(Buffer.from(body)),
  });
  const received: Record<string, unknown> = {};
  res.headers.forEach((v, k) => {
    received[k] = v;
  });
  return grpcWebAnswer(res.status, received, Buffer.from(await res.arrayBuffer()));
}

/** gRPC-Web JSON over h2c. */
async function grpcWebJsonH2c(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await h2c(
    base,
    path,
    "application/grpc-web+json",
    grpcFrame(Buffer.from(body)),
    headers,
  );
  return grpcWebAnswer(r.status, r.headers, r.body);
}

/** gRPC with the JSON codec (application/grpc+json) over h2c: connect-node's gRPC. */
async function grpcJsonH2c(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const r = await h2c(base, path, "application/grpc+json", grpcFrame(Buffer.from(body)), {
    te: "trailers",
    ...headers,
  });
  return grpcWebAnswer(r.status, r.headers, r.body);
}

/** Every JSON way in, by name: Connect, gRPC-Web and gRPC; HTTP/1.1 and h2c; both ports. */
function jsonWaysIn(): Record<
  string,
  (path: string, body: string, headers?: Record<string, string>) => Promise<Answer>
> {
  return {
    "Connect JSON, HTTP/1.1, main port": (p, b, h) => connectJson(server.url, p, b, h),
    "Connect JSON, HTTP/1.1, HTTP port": (p, b, h) => connectJson(server.httpUrl, p, b, h),
    "Connect JSON, h2c, HTTP port": (p, b, h) => connectJsonH2c(server.httpUrl, p, b, h),
    "gRPC-Web JSON, HTTP/1.1, main port": (p, b, h) => grpcWebJson(server.url, p, b, h),
    "gRPC-Web JSON, h2c, HTTP port": (p, b, h) => grpcWebJsonH2c(server.httpUrl, p, b, h),
    "gRPC JSON, h2c, HTTP port": (p, b, h) => grpcJsonH2c(server.httpUrl, p, b, h),
  };
}

/** The refusal every case expects, with a transport-independent shape. */
function refusal(a: Answer) {
  return {
    status: a.protocol === "connect" ? a.status : "trailers",
    code: a.code,
    fields: a.violations.map((v) => v.field),
  };
}

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
  });
  const created = await connectJson(
    server.url,
    `${KS}/CreateKey`,
    JSON.stringify({ owner: "strict", scopes: ["orders:read"] }),
    BEARER,
  );
  expect(created.status, created.raw).toBe(200);
  secret = String(created.json.secret);
  keyId = String((created.json.key as { id: string }).id);
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  expect(server.output()).not.toContain(secret);
});

describe("unknown fields are INVALID_ARGUMENT naming the field", () => {
  it('Authorize {"apiKy": …} is refused (not answered MISSING_KEY) on every JSON way in', async () => {
    for (const [name, send] of Object.entries(jsonWaysIn())) {
      const a = await send(AUTHORIZE, JSON.stringify({ apiKy: secret }));
      const expected = name.startsWith("Connect") ? 400 : "trailers";
      expect({ name, ...refusal(a) }).toEqual({
        name,
        status: expected,
        code: "invalid_argument",
        fields: ["apiKy"],
      });
      expect(a.violations[0]?.description, name).toContain("unknown field");
      expect(a.violations[0]?.description, name).toContain("api_key");
      expect(a.raw, name).not.toContain(secret);
    }
  });

  it('RevokeKey {"keyId": …} is refused naming keyId, and the key stays active', async () => {
    for (const [name, send] of Object.entries(jsonWaysIn())) {
      const a = await send(`${KS}/RevokeKey`, JSON.stringify({ keyId, reason: "typo" }), BEARER);
      expect({ name, ...refusal(a) }).toEqual({
        name,
        status: name.startsWith("Connect") ? 400 : "trailers",
        code: "invalid_argument",
        fields: ["keyId"],
      });
    }
    const got = await connectJson(
      server.url,
      `${KS}/GetKey`,
      JSON.stringify({ id: keyId }),
      BEARER,
    );
    expect(got.json).toMatchObject({ key: { id: keyId, status: "KEY_STATUS_ACTIVE" } });
  });

  it("a nested unknown field is named by its proto path", async () => {
    const cases: [string, unknown, string][] = [
      [
        `${TG}/RecordEvent`,
        {
          events: [
            { id: "n-1", customType: "x.y", subject: "s" },
            { id: "n-2", customType: "x.y", subject: "s", colour: "red" },
          ],
        },
        "events[1].colour",
      ],
      [
        "/envoy.service.auth.v3.Authorization/Check",
        { attributes: { request: { http: { method: "GET", methd: "GET", path: "/v1/orders" } } } },
        "attributes.request.http.methd",
      ],
      [
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        { domain: "d", descriptors: [{ entries: [{ key: "k", value: "v", vaule: "w" }] }] },
        "descriptors[0].entries[0].vaule",
      ],
    ];
    for (const [path, body, field] of cases) {
      for (const [name, send] of Object.entries(jsonWaysIn())) {
        const a = await send(path, JSON.stringify(body), BEARER);
        expect({ name, path, ...refusal(a) }).toEqual({
          name,
          path,
          status: name.startsWith("Connect") ? 400 : "trailers",
          code: "invalid_argument",
          fields: [field],
        });
      }
    }
  });

  it("never echoes an unknown name that could be a secret or is too long", async () => {
    const long = "f".repeat(300);
    for (const body of [{ [secret]: true }, { [long]: 1 }, { "ap\u0000iKey\r\n": "x" }]) {
      const a = await connectJson(server.url, AUTHORIZE, JSON.stringify(body));
      expect(refusal(a)).toEqual({ status: 400, code: "invalid_argument", fields: ["[#0]"] });
      expect(a.raw).not.toContain(secret);
      expect(a.raw).not.toContain(long.slice(0, 80));
    }
  });
});

describe("enum values are checked, never defaulted", () => {
  const event = (extra: Record<string, unknown>) =>
    JSON.stringify({
      events: [
        {
          id: `enum-${Math.random()}`,
          customType: "login.failed",
          subject: "203.0.113.7",
          ...extra,
        },
      ],
    });

  it('RecordEvent "subjectKind": "ip" and "severity": "HIGH" are refused listing the accepted names', async () => {
    for (const [name, send] of Object.entries(jsonWaysIn())) {
      const kind = await send(`${TG}/RecordEvent`, event({ subjectKind: "ip" }));
      expect({ name, ...refusal(kind) }).toEqual({
        name,
        status: name.startsWith("Connect") ? 400 : "trailers",
        code: "invalid_argument",
        fields: ["events[0].subject_kind"],
      });
      for (const n of [
        "SUBJECT_KIND_KEY",
        "SUBJECT_KIND_IP",
        "SUBJECT_KIND_OWNER",
        "SUBJECT_KIND_CALLER",
      ])
        expect(kind.violations[0]?.description, name).toContain(n);
      const sev = await send(`${TG}/RecordEvent`, event({ severity: "HIGH" }));
      expect(refusal(sev).fields, name).toEqual(["events[0].severity"]);
      expect(sev.violations[0]?.description, name).toContain("SEVERITY_HIGH");
      expect(sev.violations[0]?.description, name).toContain("SEVERITY_CRITICAL");
    }
  });

  it("refuses enum numbers the enum does not define, and non-integer numbers", async () => {
    for (const severity of [9, -1, 4.5, 2147483648]) {
      const a = await connectJson(server.url, `${TG}/RecordEvent`, event({ severity }));
      expect({ severity, ...refusal(a) }).toEqual({
        severity,
        status: 400,
        code: "invalid_argument",
        fields: ["events[0].severity"],
      });
    }
    const a = await connectJson(
      server.url,
      `${KS}/ListEvents`,
      JSON.stringify({ subjectKind: 7 }),
      BEARER,
    );
    expect(refusal(a)).toEqual({ status: 400, code: "invalid_argument", fields: ["subject_kind"] });
  });

  it("a refused event is not stored, and never as `caller` / `info`", async () => {
    const id = `refused-ip-${Date.now()}`;
    const body = JSON.stringify({
      events: [
        {
          id,
          customType: "login.failed",
          subject: "203.0.113.9",
          subjectKind: "ip",
          severity: "HIGH",
        },
      ],
    });
    expect((await connectJson(server.url, `${TG}/RecordEvent`, body)).status).toBe(400);
    // A control event sent after it, so a flushed store has had its chance.
    const control = `control-${Date.now()}`;
    const ok = await connectJson(
      server.url,
      `${TG}/RecordEvent`,
      JSON.stringify({ events: [{ id: control, customType: "strict.control", subject: "s" }] }),
    );
    expect(ok.status, ok.raw).toBe(200);
    const { value } = await pollUntil(
      () => connectJson(server.url, `${KS}/ListEvents`, "{}", BEARER),
      (r) => r.raw.includes(control),
      3000,
      50,
    );
    expect(value.raw).toContain(control);
    expect(value.raw).not.toContain(id);
  });

  it("never echoes a refused value", async () => {
    for (const body of [
      event({ severity: secret }),
      JSON.stringify({ apiKey: secret, cost: secret }),
      JSON.stringify({ apiKey: secret, cost: -1 }),
      `{"apiKey": ${secret}}`, // not JSON at all
    ]) {
      const a = await connectJson(
        server.url,
        body.includes("events") ? `${TG}/RecordEvent` : AUTHORIZE,
        body,
      );
      expect({ status: a.status, code: a.code }).toEqual({ status: 400, code: "invalid_argument" });
      expect(a.raw).not.toContain(secret);
    }
  });
});

describe("correct spellings keep working", () => {
  it("Authorize accepts the JSON name and the proto name of a field", async () => {
    for (const [name, send] of Object.entries(jsonWaysIn())) {
      for (const body of [{ apiKey: secret }, { api_key: secret }]) {
        const a = await send(AUTHORIZE, JSON.stringify(body));
        expect({ name, code: a.code, allowed: a.json.allowed }).toEqual({
          name,
          code: "ok",
          allowed: true,
        });
      }
    }
  });

  it("RecordEvent accepts enum names as proto3 JSON spells them and defined numbers", async () => {
    const stamp = Date.now();
    const events = [
      { id: `ip-name-${stamp}`, subjectKind: "SUBJECT_KIND_IP", severity: "SEVERITY_HIGH" },
      { id: `ip-number-${stamp}`, subject_kind: 2, severity: 4 },
    ].map((e) => ({ ...e, customType: "login.failed", subject: "198.51.100.4" }));
    const a = await connectJson(server.url, `${TG}/RecordEvent`, JSON.stringify({ events }));
    expect(a.status, a.raw).toBe(200);
    expect(a.json.acceptedIds).toEqual(events.map((e) => e.id));
    const { value } = await pollUntil(
      () =>
        connectJson(
          server.url,
          `${KS}/ListEvents`,
          JSON.stringify({ subject: "198.51.100.4", subjectKind: "SUBJECT_KIND_IP" }),
          BEARER,
        ),
      (r) => events.every((e) => r.raw.includes(e.id)),
      3000,
      50,
    );
    const stored = (value.json.events ?? []) as {
      id: string;
      subjectKind: string;
      severity: string;
    }[];
    for (const e of events) {
      expect(stored.find((s) => s.id === e.id)).toMatchObject({
        subjectKind: "SUBJECT_KIND_IP",
        severity: "SEVERITY_HIGH",
      });
    }
  });

  it("Envoy Check and ShouldRateLimit answer well-formed JSON as before", async () => {
    const check = await connectJson(
      server.url,
      "/envoy.service.auth.v3.Authorization/Check",
      JSON.stringify({
        attributes: {
          request: {
            http: { method: "GET", path: "/v1/orders", headers: { "x-api-key": secret } },
          },
        },
      }),
    );
    expect(check.status, check.raw).toBe(200);
    expect(check.json).toMatchObject({ okResponse: {} });
    const rl = await connectJson(
      server.url,
      "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
      JSON.stringify({ domain: "none", descriptors: [{ entries: [{ key: "k", value: "v" }] }] }),
    );
    expect(rl.status, rl.raw).toBe(200);
  });
});

describe("binary protobuf is unchanged", () => {
  it("keeps accepting an unknown field in binary Authorize (gRPC and Connect)", async () => {
    const known = toBinary(
      AuthorizeRequestSchema,
      create(AuthorizeRequestSchema, { apiKey: secret }),
    );
    // Field 999, varint 1: unknown to AuthorizeRequest, legal protobuf.
    const body = Buffer.concat([Buffer.from(known), Buffer.from([0xb8, 0x3e, 0x01])]);
    const g = await rawGrpc(server.url, AUTHORIZE, grpcFrame(body));
    expect(g.grpcStatus).toBe(0);
    const res = await fetch(`${server.url}${AUTHORIZE}`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body,
    });
    expect(res.status).toBe(200);
    const out = fromBinary(AuthorizeResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect(out.allowed).toBe(true);
  });
});
