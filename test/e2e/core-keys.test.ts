/**
 * The core issue's "done when", on the built server with real clients: the CLI
 * mints a key; curl, grpc-js, Connect (HTTP/1.1 and h2c), gRPC-Web and buf curl
 * reach the RPCs; unknown, malformed, revoked and rotated-out keys get 401 with
 * the right reason; management needs the token; health, reflection and the
 * admin port answer; SIGTERM exits 0; no secret reaches the logs.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
} from "../../src/gen/health/v1/health_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { bufCurl, cli, curlJson, grpcUnary } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "e2e-management-token-0123456789";
let server: TollgateProcess;
const secrets: string[] = [];

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
  });
});
afterAll(async () => {
  const code = await server?.stop();
  expect(code).toBe(0);
  // No secret minted in this file, nor the token, ever reaches a log line.
  for (const s of [...secrets, TOKEN]) expect(server.output()).not.toContain(s);
});

async function mint(extra: string[] = []): Promise<{ secret: string; id: string }> {
  const r = await cli(
    [
      "keys",
      "create",
      "--owner",
      "acme",
      "--scope",
      "orders:read",
      "--json",
      "--server",
      server.url,
      ...extra,
    ],
    {
      TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    },
  );
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { secret: string; key: { id: string } };
  secrets.push(out.secret);
  return { secret: out.secret, id: out.key.id };
}

const authorizeUrl = () => `${server.url}/tollgate.v1.TollgateService/Authorize`;

describe("the core scenario, as a user runs it", () => {
  it("a key minted by the CLI authorizes over curl with its identity; wrong and malformed keys get 401", async () => {
    const { secret, id } = await mint();
    const ok = await curlJson(authorizeUrl(), {
      apiKey: secret,
      method: "GET",
      path: "/v1/orders",
      clientIp: "203.0.113.1",
    });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({
      allowed: true,
      reason: "REASON_OK",
      httpStatus: 200,
      endpoint: "list-orders",
    });
    expect(ok.json.identity).toMatchObject({
      keyId: id,
      owner: "acme",
      tier: "free",
      scopes: ["orders:read"],
    });
    expect(String(ok.json.decisionId)).toMatch(/^[0-9a-f]{24}$/);
    expect(JSON.stringify(ok.json)).not.toContain(secret);

    const unknown = await curlJson(authorizeUrl(), { apiKey: generateSecret("live") });
    expect(unknown.json).toMatchObject({ reason: "REASON_UNKNOWN_KEY", httpStatus: 401 });
    const malformed = await curlJson(authorizeUrl(), { apiKey: `${secret}x` });
    expect(malformed.json).toMatchObject({ reason: "REASON_MALFORMED_KEY", httpStatus: 401 });
    const fromHeader = await curlJson(authorizeUrl(), { headers: { "X-Api-Key": secret } });
    expect(fromHeader.json).toMatchObject({ allowed: true });
  });

  it("a revoked key gets 401 REVOKED_KEY at once", async () => {
    const { secret, id } = await mint();
    const r = await cli(["keys", "revoke", id, "--reason", "test", "--server", server.url], {
      TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("revoked");
    const after = await curlJson(authorizeUrl(), { apiKey: secret });
    // Proto JSON omits false booleans: a denial has no "allowed" field.
    expect(after.json.allowed).toBeUndefined();
    expect(after.json).toMatchObject({ reason: "REASON_REVOKED_KEY", httpStatus: 401 });
  });

  it("after rotation both secrets work until the grace period ends, then the old one gets 401", async () => {
    const { secret: old, id } = await mint();
    const r = await cli(["keys", "rotate", id, "--grace", "1s", "--json", "--server", server.url], {
      TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    });
    expect(r.code, r.stderr).toBe(0);
    const fresh = (JSON.parse(r.stdout) as { secret: string }).secret;
    secrets.push(fresh);
    expect((await curlJson(authorizeUrl(), { apiKey: fresh })).json.allowed).toBe(true);
    const during = await curlJson(authorizeUrl(), { apiKey: old });
    expect(during.json).toMatchObject({
      allowed: true,
      hints: { inGracePeriod: true, rotationDue: true },
    });
    const deadline = Date.now() + 5000;
    let last: Record<string, unknown> = during.json;
    while (Date.now() < deadline && last.allowed) {
      await new Promise((res) => setTimeout(res, 100));
      last = (await curlJson(authorizeUrl(), { apiKey: old })).json;
    }
    expect(last).toMatchObject({ reason: "REASON_UNKNOWN_KEY", httpStatus: 401 });
    expect((await curlJson(authorizeUrl(), { apiKey: fresh })).json.allowed).toBe(true);
  });

  it("keys get / list / update work from the CLI, and never print a secret", async () => {
    const { secret, id } = await mint(["--meta", "team=web"]);
    const env = { TOLLGATE_MANAGEMENT_TOKEN: TOKEN };
    const got = await cli(["keys", "get", id, "--server", server.url], env);
    expect(got.stdout).toContain(id);
    expect(got.stdout).toContain("team=web");
    const upd = await cli(
      [
        "keys",
        "update",
        id,
        "--tier",
        "pro",
        "--scopes",
        "orders:read,orders:write",
        "--server",
        server.url,
      ],
      env,
    );
    expect(upd.code, upd.stderr).toBe(0);
    expect(upd.stdout).toMatch(/tier\s+pro/);
    const list = await cli(["keys", "list", "--owner", "acme", "--server", server.url], env);
    expect(list.stdout).toContain(id);
    for (const out of [got, upd, list]) expect(out.stdout + out.stderr).not.toContain(secret);
    const bad = await cli(["keys", "get", "key_0000000000000000", "--server", server.url], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("NotFound");
  });

  it("management needs the bearer token", async () => {
    const noToken = await cli(["keys", "list", "--server", server.url]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain("Unauthenticated");
    const wrong = await curlJson(
      `${server.url}/tollgate.v1.KeyService/ListKeys`,
      {},
      { authorization: "Bearer wrong-token-wrong-token" },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.json.code).toBe("unauthenticated");
  });
});

describe("every transport reaches the API", () => {
  it("grpc-js: Authorize and grpc.health.v1 on the main port", async () => {
    const { secret } = await mint();
    const res = await grpcUnary(
      `127.0.0.1:${server.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      {
        apiKey: secret,
      },
    );
    expect(res.allowed).toBe(true);
    expect(res.reason).toBe(Reason.OK);
    const health = await grpcUnary(
      `127.0.0.1:${server.port}`,
      Health,
      "Check",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      {},
    );
    expect(health.status).toBe(1); // SERVING
    const err = await grpcUnary(
      `127.0.0.1:${server.port}`,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      {
        path: "no-slash",
      },
    ).catch((e: { code: number; details: string; metadata: { get(k: string): unknown[] } }) => e);
    expect((err as { code: number }).code).toBe(3); // INVALID_ARGUMENT
    expect(
      (err as { metadata: { get(k: string): unknown[] } }).metadata.get("grpc-status-details-bin")
        .length,
    ).toBe(1);
  });

  it("Connect over HTTP/1.1 (main port) and HTTP/2 (HTTP port), and gRPC-Web", async () => {
    const { secret } = await mint();
    for (const transport of [
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "2" }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    ]) {
      const client = createClient(TollgateService, transport);
      expect((await client.authorize({ apiKey: secret })).allowed).toBe(true);
      const keys = createClient(KeyService, transport);
      const e = await keys.listKeys({}).catch((x: unknown) => ConnectError.from(x));
      expect((e as ConnectError).code).toBe(Code.Unauthenticated);
      const listed = await keys.listKeys(
        { owner: "acme" },
        { headers: { authorization: `Bearer ${TOKEN}` } },
      );
      expect(listed.keys.length).toBeGreaterThan(0);
    }
  });

  it("buf curl: reflection lists the services; calls over gRPC, gRPC-Web and Connect", async () => {
    const list = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-services",
      server.url,
    ]);
    expect(list.code, list.stderr).toBe(0);
    for (const s of [
      "tollgate.v1.TollgateService",
      "tollgate.v1.KeyService",
      "grpc.health.v1.Health",
      "envoy.service.auth.v3.Authorization",
    ]) {
      expect(list.stdout).toContain(s);
    }
    const { secret } = await mint();
    const body = JSON.stringify(
      create(AuthorizeRequestSchema, { apiKey: secret }) && { apiKey: secret },
    );
    for (const args of [
      [
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "-d",
        body,
        `${server.url}/tollgate.v1.TollgateService/Authorize`,
      ],
      [
        "--schema",
        "proto",
        "--protocol",
        "grpcweb",
        "-d",
        body,
        `${server.url}/tollgate.v1.TollgateService/Authorize`,
      ],
      [
        "--schema",
        "proto",
        "--protocol",
        "connect",
        "-d",
        body,
        `${server.url}/tollgate.v1.TollgateService/Authorize`,
      ],
      [
        "--schema",
        "proto",
        "--protocol",
        "connect",
        "--http2-prior-knowledge",
        "-d",
        body,
        `${server.httpUrl}/tollgate.v1.TollgateService/Authorize`,
      ],
    ]) {
      const r = await bufCurl(args);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ allowed: true, reason: "REASON_OK" });
    }
  });

  it("the admin port serves /healthz, /readyz and /metrics without key ids or secrets", async () => {
    const base = `http://127.0.0.1:${server.adminPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain("tollgate_rpc_duration_seconds_bucket");
    expect(metrics).toContain(
      'tollgate_decisions_total{rpc="Authorize",decision="allow",reason="OK",tier="free"}',
    );
    expect(metrics).not.toMatch(/key_[0-9A-Za-z]{16}/);
    expect(metrics).not.toMatch(/tg_live_/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});

describe("startup and shutdown", () => {
  it("refuses bad settings with a message naming the variable, exit 2", async () => {
    for (const [env, name] of [
      [{ TOLLGATE_CACHE_TTL_MS: "abc" }, "TOLLGATE_CACHE_TTL_MS"],
      [
        { TOLLGATE_ADDR: "0.0.0.0:0", TOLLGATE_ALLOW_PLAINTEXT: "true" },
        "TOLLGATE_MANAGEMENT_TOKEN",
      ],
      [{ REDIS_URL: "redis://127.0.0.1:1" }, "TOLLGATE_PEPPER"],
      [
        { TOLLGATE_POLICY_FILE: "test/fixtures/policies/rate-limit-invalid.yaml" },
        "rate-limit-invalid.yaml",
      ],
    ] as const) {
      const r = await cli(["serve"], {
        ...env,
        TOLLGATE_ADDR: env.TOLLGATE_ADDR ?? "127.0.0.1:0",
        TOLLGATE_HTTP_ADDR: "",
        TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
      });
      expect(r.code, `${name}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(name);
    }
  });

  it("on SIGTERM goes not ready, finishes in-flight calls and exits 0", async () => {
    const p = await startTollgateProcess({});
    const transport = createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" });
    const client = createClient(TollgateService, transport);
    // Keep calls flowing and signal once some are answered: calls on open
    // connections must still be answered while the server drains.
    let answered = 0;
    let stopping = false;
    const loop = async () => {
      const outcomes: string[] = [];
      for (let i = 0; i < 200; i++) {
        const r = await client.authorize({ apiKey: "tg_live_x" }).then(
          () => "ok",
          () => "failed",
        );
        outcomes.push(stopping ? `${r}-after` : r);
        if (r === "ok") answered++;
        if (r === "failed") break;
      }
      return outcomes;
    };
    const workers = Array.from({ length: 8 }, loop);
    while (answered < 40) await new Promise((res) => setTimeout(res, 5));
    stopping = true;
    const code = p.stop("SIGTERM");
    const outcomes = (await Promise.all(workers)).flat();
    expect(await code).toBe(0);
    expect(outcomes.filter((r) => r === "ok-after").length).toBeGreaterThan(0);
    expect(p.logs.some((l) => String(l.msg).includes("shutting down"))).toBe(true);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });
});
