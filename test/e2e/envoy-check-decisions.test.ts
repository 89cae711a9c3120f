/**
 * Envoy ext_authz Check against the built server, through a real gRPC client:
 * the same facts give the same decision as Authorize — one endpoint (the
 * route's `context_extensions.endpoint`, else the one matched from method and
 * path) for scopes, cost and limits — a revoked or expired key is refused
 * before any limit is charged, and a shadow limit never fails a request.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  Authorization as EnvoyAuthorization,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free:
    limits:
      - name: owner-daily
        by: owner
        quota: { requests: 1000, per: day }
endpoints:
  - name: orders
    method: GET
    path: /v1/orders
    scopes: [orders:read]
  - name: exports
    method: POST
    path: /v1/exports
    scopes: [exports:run]
    cost: 10
    limits:
      - name: exports-per-key
        by: key
        rate: { requests: 20, per: 1h }
  - name: watch
    method: GET
    path: /v1/watch
    limits:
      - name: watch-per-ip
        by: ip
        rate: { requests: 1, per: 1h }
        mode: shadow
`;

const GRPC_OK = 0;
let dir: string;
let proc: TollgateProcess;
let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
let keys: ReturnType<typeof createClient<typeof KeyService>>;
let envoy: ReturnType<typeof createClient<typeof EnvoyAuthorization>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-check-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
  proc = await startTollgateProcess({ TOLLGATE_POLICY_FILE: join(dir, "policy.yaml") });
  const t = createGrpcTransport({ baseUrl: proc.url });
  tollgate = createClient(TollgateService, t);
  keys = createClient(KeyService, t);
  envoy = createClient(EnvoyAuthorization, t);
}, 30_000);

afterAll(async () => {
  expect(await proc?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

function checkRequest(o: {
  secret: string;
  method: string;
  path: string;
  source?: string;
  ext?: Record<string, string>;
}): CheckRequest {
  return create(CheckRequestSchema, {
    attributes: {
      ...(o.source !== "" && {
        source: {
          address: {
            address: {
              case: "socketAddress",
              value: {
                address: o.source ?? "198.51.100.4",
                portSpecifier: { case: "portValue", value: 40000 },
              },
            },
          },
        },
      }),
      request: { http: { method: o.method, path: o.path, headers: { "x-api-key": o.secret } } },
      contextExtensions: o.ext ?? {},
    },
  });
}

/** Waits for a Check access-log line with this reason. */
async function waitForLog(reason: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (proc.logs.some((l) => l.access === "Check" && l.reason === reason)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no Check access-log line with reason ${reason}`);
}

function httpStatus(r: CheckResponse): number {
  return r.httpResponse.case === "deniedResponse"
    ? (r.httpResponse.value.status?.code ?? 0)
    : r.status?.code === GRPC_OK
      ? 200
      : -1;
}

async function mint(scopes: string[], expiresAt?: number) {
  const r = await keys.createKey({
    owner: `o-${Math.random().toString(36).slice(2)}`,
    scopes,
    ...(expiresAt !== undefined && { expireTime: timestampFromMs(expiresAt) }),
  });
  return { secret: r.secret, id: r.key?.id ?? "" };
}

/** What a key's `exports-per-key` bucket has left (CheckRateLimit with cost 1 charges 1). */
async function exportsLeft(id: string): Promise<bigint> {
  const r = await tollgate.checkRateLimit({ keyId: id, endpoint: "exports", cost: 1 });
  return (r.result?.limits.find((l) => l.name === "exports-per-key")?.remaining ?? -1n) + 1n;
}

describe("Check and Authorize agree on the endpoint", () => {
  it("a route's endpoint decides the scopes, as Authorize's endpoint does", async () => {
    // The path matches `orders` (orders:read), the route names `exports` (exports:run).
    const reader = await mint(["orders:read"]);
    const facts = { method: "GET", path: "/v1/orders" };
    const a = await tollgate.authorize({
      apiKey: reader.secret,
      ...facts,
      endpoint: "exports",
      applyLimits: true,
    });
    expect(a).toMatchObject({
      allowed: false,
      reason: Reason.INSUFFICIENT_SCOPE,
      httpStatus: 403,
      endpoint: "exports",
      missingScopes: ["exports:run"],
    });
    const c = await envoy.check(
      checkRequest({ secret: reader.secret, ...facts, ext: { endpoint: "exports" } }),
    );
    expect(httpStatus(c)).toBe(403);
    expect(c.httpResponse.case === "deniedResponse" && c.httpResponse.value.body).toContain(
      "insufficient_scope",
    );
    // Denied for scope: nothing charged on the named endpoint's limit.
    expect(await exportsLeft(reader.id)).toBe(20n);
  });

  it("the named endpoint's cost and limits are charged, the same on both doors", async () => {
    const runner = await mint(["exports:run"]);
    const facts = { method: "GET", path: "/v1/orders" };
    // Authorize first: the named endpoint's cost (10) of its 20-request bucket.
    const a = await tollgate.authorize({
      apiKey: runner.secret,
      ...facts,
      endpoint: "exports",
      applyLimits: true,
    });
    expect(a).toMatchObject({ allowed: true, endpoint: "exports" });
    expect(a.rateLimit?.limits.find((l) => l.name === "exports-per-key")?.remaining).toBe(10n);
    // Check with the same facts charges the same 10 from the same bucket.
    const c = await envoy.check(
      checkRequest({ secret: runner.secret, ...facts, ext: { endpoint: "exports" } }),
    );
    expect(httpStatus(c)).toBe(200);
    expect(c.dynamicMetadata?.endpoint).toBe("exports");
    const headers =
      c.httpResponse.case === "okResponse" ? c.httpResponse.value.responseHeadersToAdd : [];
    expect(headers.find((h) => h.header?.key === "ratelimit")?.header?.value).toMatch(/r=0\b/);
    // Both doors deny alike once the bucket is spent.
    const c2 = await envoy.check(
      checkRequest({ secret: runner.secret, ...facts, ext: { endpoint: "exports" } }),
    );
    const a2 = await tollgate.authorize({
      apiKey: runner.secret,
      ...facts,
      endpoint: "exports",
      applyLimits: true,
    });
    expect(httpStatus(c2)).toBe(429);
    expect(a2).toMatchObject({ allowed: false, reason: Reason.RATE_LIMITED, httpStatus: 429 });
  });

  it("without a route endpoint, both match method and path", async () => {
    const reader = await mint(["orders:read"]);
    const c = await envoy.check(
      checkRequest({ secret: reader.secret, method: "POST", path: "/v1/exports" }),
    );
    const a = await tollgate.authorize({
      apiKey: reader.secret,
      method: "POST",
      path: "/v1/exports",
      applyLimits: true,
    });
    expect(httpStatus(c)).toBe(403);
    expect(a).toMatchObject({ reason: Reason.INSUFFICIENT_SCOPE, endpoint: "exports" });
  });

  it("a route naming an endpoint the policy lacks is denied (500), never matched another way", async () => {
    const reader = await mint(["orders:read"]);
    const c = await envoy.check(
      checkRequest({
        secret: reader.secret,
        method: "GET",
        path: "/v1/orders",
        ext: { endpoint: "no-such-endpoint" },
      }),
    );
    expect(c.status?.code).not.toBe(GRPC_OK);
    expect(httpStatus(c)).toBe(500);
    expect(c.httpResponse.case === "deniedResponse" && c.httpResponse.value.body).toContain(
      "unknown_endpoint",
    );
  });
});

describe("Check refuses dead keys before any limit", () => {
  it("a revoked key: 401 revoked_key at once, nothing charged", async () => {
    const k = await mint(["exports:run"]);
    const req = checkRequest({ secret: k.secret, method: "POST", path: "/v1/exports" });
    expect(httpStatus(await envoy.check(req))).toBe(200);
    await keys.revokeKey({ id: k.id, reason: "test" });
    const r = await envoy.check(req);
    expect(httpStatus(r)).toBe(401);
    // The body reads like any bad key (TOLLGATE_DENIAL_DETAIL=generic); the log says why.
    expect(r.httpResponse.case === "deniedResponse" && r.httpResponse.value.body).toContain(
      "invalid_key",
    );
    await waitForLog("REVOKED_KEY");
  });

  it("an expired key: 401 expired_key", async () => {
    const expiresAt = Date.now() + 1500;
    const k = await mint(["exports:run"], expiresAt);
    const req = checkRequest({ secret: k.secret, method: "POST", path: "/v1/exports" });
    expect(httpStatus(await envoy.check(req))).toBe(200);
    // Refused as expired from its expiry on, never before: the first 401
    // comes no earlier than the expiry, and soon after it. (Polling may run
    // into the endpoint's per-key limit, a 429 before the expiry.)
    const { value: r } = await pollUntil(
      () => envoy.check(req),
      (c) => httpStatus(c) === 401,
      expiresAt + 5_000 - Date.now(),
      100,
    );
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(httpStatus(r)).toBe(401);
    expect(r.httpResponse.case === "deniedResponse" && r.httpResponse.value.body).toContain(
      "invalid_key",
    );
    await waitForLog("EXPIRED_KEY");
  });
});

describe("Check and shadow limits", () => {
  it("a shadow by: ip limit without a client address is skipped: allowed", async () => {
    const k = await mint([]);
    for (let i = 0; i < 3; i++) {
      const r = await envoy.check(
        checkRequest({ secret: k.secret, method: "GET", path: "/v1/watch", source: "" }),
      );
      expect(httpStatus(r)).toBe(200);
    }
  });
});
