/**
 * nginx `auth_request` in front of an app, with the shipped
 * examples/nginx/nginx.conf (ports replaced): allowed requests reach the app
 * with Tollgate's identity headers and without the key; denied ones never do,
 * and the client sees 401 / 403 / 429 with the headers it needs — 429 and
 * Retry-After included, although auth_request itself only knows 2xx/401/403.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, spawnProxy, startHarness, templated } from "./forward-auth-support.js";

let h: Harness;

beforeAll(async () => {
  try {
    execFileSync("nginx", ["-v"], { stdio: "ignore" });
  } catch {
    throw new Error("nginx is not installed: apt-get install -y nginx (.ci/run does)");
  }
  h = await startHarness(({ dir, ...ports }) => {
    const conf = join(dir, "nginx.conf");
    writeFileSync(conf, templated("nginx/nginx.conf", ports, 8000));
    return spawnProxy("nginx", ["-p", dir, "-e", "stderr", "-c", conf, "-g", "daemon off;"], dir);
  });
}, 60_000);

afterAll(async () => {
  await h?.stop();
});

describe("nginx auth_request → Tollgate forward-auth", () => {
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
    expect(res.headers.get("ratelimit")).toMatch(/orders-per-key/);
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
    expect(bad.headers.get("www-authenticate")).toContain('error="invalid_key"');
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
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toMatchObject({
      error: "rate_limited",
      message: "rate limit exceeded",
    });
    expect(h.received).toHaveLength(0);
  });
});
