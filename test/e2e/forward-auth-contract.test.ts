/**
 * The forward-auth endpoint itself, as Traefik's `ForwardAuth` calls it (no
 * Traefik binary is obtainable here: its documented request headers are
 * X-Forwarded-Method, -Proto, -Host, -Uri, -For): the decision equals Envoy
 * Check's for the same facts, route settings come from the query, the client
 * address is X-Forwarded-For counted over the trusted hops, and a request
 * without the original URI is refused, never guessed.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CheckRequestSchema,
  Authorization as EnvoyAuthorization,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { POLICY } from "./forward-auth-support.js";

let dir: string;
let proc: TollgateProcess;
let keys: ReturnType<typeof createClient<typeof KeyService>>;
let envoy: ReturnType<typeof createClient<typeof EnvoyAuthorization>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-fa-contract-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
  proc = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: join(dir, "policy.yaml"),
    TOLLGATE_TRUSTED_HOPS: "1",
  });
  const t = createGrpcTransport({ baseUrl: proc.url });
  keys = createClient(KeyService, t);
  envoy = createClient(EnvoyAuthorization, t);
}, 30_000);

afterAll(async () => {
  expect(await proc?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

/** A Traefik ForwardAuth request for `method uri` from client `ip`. */
function traefik(query: string, secret: string, method: string, uri: string, ip = "203.0.113.9") {
  return fetch(`${proc.httpUrl}/forward-auth${query}`, {
    headers: {
      "x-api-key": secret,
      "x-forwarded-method": method,
      "x-forwarded-proto": "https",
      "x-forwarded-host": "api.example.com",
      "x-forwarded-uri": uri,
      "x-forwarded-for": ip,
    },
  });
}

/** Envoy Check's HTTP status for the same facts (client IP via X-Forwarded-For). */
async function checkStatus(
  secret: string,
  method: string,
  path: string,
  ext = {},
  ip = "203.0.113.9",
) {
  const r = await envoy.check(
    create(CheckRequestSchema, {
      attributes: {
        source: {
          address: { address: { case: "socketAddress", value: { address: "127.0.0.1" } } },
        },
        request: {
          http: { method, path, headers: { "x-api-key": secret, "x-forwarded-for": ip } },
        },
        contextExtensions: ext,
      },
    }),
  );
  return r.httpResponse.case === "deniedResponse" ? (r.httpResponse.value.status?.code ?? 0) : 200;
}

describe("forward-auth contract (Traefik ForwardAuth headers)", () => {
  it("decides as Envoy Check does for the same facts", async () => {
    const reader = (await keys.createKey({ owner: "contract-a", scopes: ["orders:read"] })).secret;
    const cases: [string, string, string, Record<string, string>][] = [
      [reader, "GET", "/v1/orders", {}],
      [reader, "GET", "/v1/admin", {}],
      ["", "GET", "/v1/orders", {}],
      ["tg_live_nope", "GET", "/v1/orders", {}],
      [reader, "GET", "/anything", { endpoint: "admin" }],
      [reader, "GET", "/anything", { endpoint: "no-such-endpoint" }],
      [reader, "GET", "/v1/orders", { scopes: "admin" }],
    ];
    for (const [secret, method, path, ext] of cases) {
      const q = new URLSearchParams({ ...ext, apply_limits: "false" }).toString();
      const fa = await traefik(`?${q}`, secret, method, path);
      await fa.arrayBuffer();
      const envoyStatus = await checkStatus(secret, method, path, {
        ...ext,
        apply_limits: "false",
      });
      expect(`${method} ${path} ${JSON.stringify(ext)} → ${fa.status}`).toBe(
        `${method} ${path} ${JSON.stringify(ext)} → ${envoyStatus}`,
      );
    }
  });

  it("answers 200 with identity and RateLimit headers; a spent limit is 429 with Retry-After", async () => {
    const created = await keys.createKey({ owner: "contract-b", scopes: ["orders:read"] });
    const ok = await traefik("", created.secret, "GET", "/v1/orders?x=1");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-tollgate-key-id")).toBe(created.key?.id);
    expect(ok.headers.get("x-tollgate-owner")).toBe("contract-b");
    expect(ok.headers.get("ratelimit")).toMatch(/orders-per-key/);
    await traefik("", created.secret, "GET", "/v1/orders");
    const spent = await traefik("", created.secret, "GET", "/v1/orders");
    expect(spent.status).toBe(429);
    expect(Number(spent.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await spent.json()).toMatchObject({ error: "rate_limited" });
  });

  it("takes the client address from X-Forwarded-For over the trusted hops only", async () => {
    const secret = (
      await keys.createKey({
        owner: "contract-c",
        scopes: ["orders:read"],
        ipAllow: ["203.0.113.0/24"],
      })
    ).secret;
    const inside = await traefik("?apply_limits=false", secret, "GET", "/v1/orders", "203.0.113.7");
    expect(inside.status).toBe(200);
    // A client-forged entry left of the proxy's is not trusted (TOLLGATE_TRUSTED_HOPS=1).
    const forged = await traefik(
      "?apply_limits=false",
      secret,
      "GET",
      "/v1/orders",
      "203.0.113.7, 198.51.100.1",
    );
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({ error: "ip_denied" });
  });

  it("refuses a request without the original URI (400), and in nginx mode says so as 403 + x-tollgate-status", async () => {
    const plain = await fetch(`${proc.httpUrl}/forward-auth`, { headers: { "x-api-key": "k" } });
    expect(plain.status).toBe(400);
    expect(await plain.json()).toMatchObject({ error: "bad_request" });
    const nginx = await fetch(`${proc.httpUrl}/forward-auth?compat=nginx`);
    expect(nginx.status).toBe(403);
    expect(nginx.headers.get("x-tollgate-status")).toBe("400");
    expect(JSON.parse(nginx.headers.get("x-tollgate-body") ?? "{}")).toMatchObject({
      error: "bad_request",
    });
  });

  it("leaves the Connect API on the same port alone", async () => {
    const r = await fetch(`${proc.httpUrl}/tollgate.v1.TollgateService/Authorize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: "" }),
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ reason: "REASON_MISSING_KEY" });
  });
});
