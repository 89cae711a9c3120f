/**
 * Caddy `forward_auth` in front of an app, with the shipped
 * examples/caddy/Caddyfile (ports replaced): allowed requests reach the app
 * with Tollgate's identity headers and without the key; denied ones never do,
 * and Caddy hands Tollgate's refusal (status, headers, body) to the client.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, spawnProxy, startHarness, templated } from "./forward-auth-support.js";

let h: Harness;

beforeAll(async () => {
  try {
    execFileSync("caddy", ["version"], { stdio: "ignore" });
  } catch {
    throw new Error("caddy is not installed: apt-get install -y caddy (.ci/run does)");
  }
  h = await startHarness(({ dir, ...ports }) => {
    const conf = join(dir, "Caddyfile");
    writeFileSync(conf, templated("caddy/Caddyfile", ports, 8001));
    return spawnProxy("caddy", ["run", "--config", conf, "--adapter", "caddyfile"], dir);
  });
}, 60_000);

afterAll(async () => {
  await h?.stop();
});

describe("Caddy forward_auth → Tollgate forward-auth", () => {
  it("passes an allowed request to the app with identity headers, without the key", async () => {
    const k = await h.mint(["orders:read"]);
    const res = await fetch(`${h.proxyUrl}/v1/orders?page=2`, {
      headers: {
        "x-api-key": k.secret,
        "x-tollgate-environment": "spoofed",
        "x-tollgate-key-id": "forged",
      },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ upstream: true });
    expect(h.received).toHaveLength(1);
    const got = h.received[0]?.headers ?? {};
    expect(h.received[0]?.url).toBe("/v1/orders?page=2");
    expect(got["x-tollgate-key-id"]).toBe(k.id);
    expect(got["x-tollgate-owner"]).toBe(k.owner);
    expect(got["x-tollgate-tier"]).toBe("free");
    expect(got["x-tollgate-scopes"]).toBe("orders:read");
    expect(got["x-tollgate-environment"]).toBeUndefined();
    expect(got["x-api-key"]).toBeUndefined();
  });

  it("answers 401 with WWW-Authenticate and a JSON body for a missing or bad key; the app sees nothing", async () => {
    h.received.length = 0;
    const missing = await fetch(`${h.proxyUrl}/v1/orders`);
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('ApiKey realm="tollgate"');
    expect(await missing.json()).toMatchObject({ error: "missing_key" });
    const bad = await fetch(`${h.proxyUrl}/v1/orders`, {
      headers: { "x-api-key": "tg_live_nope" },
    });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toMatchObject({
      error: "invalid_key",
      message: "the API key is not valid",
    });
    expect(h.received).toHaveLength(0);
  });

  it("answers 403 for a key lacking the endpoint's scope", async () => {
    h.received.length = 0;
    const k = await h.mint(["orders:read"]);
    const res = await fetch(`${h.proxyUrl}/v1/admin`, { headers: { "x-api-key": k.secret } });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: "insufficient_scope" });
    expect(h.received).toHaveLength(0);
  });

  it("gives the client 429 with Retry-After and RateLimit headers when the limit is spent", async () => {
    const k = await h.mint(["orders:read"]);
    for (let i = 0; i < 2; i++) {
      const ok = await fetch(`${h.proxyUrl}/v1/orders`, { headers: { "x-api-key": k.secret } });
      expect(ok.status).toBe(200);
      await ok.arrayBuffer();
    }
    h.received.length = 0;
    const res = await fetch(`${h.proxyUrl}/v1/orders`, { headers: { "x-api-key": k.secret } });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(res.headers.get("ratelimit")).toMatch(/orders-per-key/);
    expect(await res.json()).toMatchObject({ error: "rate_limited" });
    expect(h.received).toHaveLength(0);
  });
});
