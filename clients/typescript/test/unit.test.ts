/** Pure parts, with a fake clock: breaker, backoff, allow-cache, skip list, problems, settings. */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AllowCache, MAX_ALLOW_CACHE_TTL_MS } from "../src/allow-cache.js";
import { CircuitBreaker } from "../src/circuit-breaker.js";
import { violatedFields } from "../src/middleware/decide.js";
import { problem, QUOTA_EXCEEDED_TYPE } from "../src/middleware/problem.js";
import { compileSkip } from "../src/middleware/skip-list.js";
import { backoffDelayMs, RETRY_SAFE, retryPolicy } from "../src/retry-policy.js";
import { resolveSettings } from "../src/settings.js";

describe("CircuitBreaker", () => {
  it("opens after 5 consecutive failures; a success in between resets the count", () => {
    let t = 0;
    const b = new CircuitBreaker({ now: () => t });
    for (let i = 0; i < 4; i++) b.failure();
    b.success();
    for (let i = 0; i < 4; i++) b.failure();
    expect(b.state()).toBe("closed");
    b.failure();
    expect(b.state()).toBe("open");
    expect(b.tryAcquire()).toBe(false);
    t = 999;
    expect(b.state()).toBe("open");
  });

  it("half-opens after 1 s with exactly one probe; the probe's failure reopens, its success closes", () => {
    let t = 0;
    const b = new CircuitBreaker({ now: () => t });
    for (let i = 0; i < 5; i++) b.failure();
    t = 1_000;
    expect(b.state()).toBe("half-open");
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
    b.failure();
    expect(b.state()).toBe("open");
    t = 2_000;
    expect(b.tryAcquire()).toBe(true);
    b.success();
    expect(b.state()).toBe("closed");
    expect(b.tryAcquire()).toBe(true);
  });

  it("a cancelled probe frees the half-open slot without deciding", () => {
    let t = 0;
    const b = new CircuitBreaker({ now: () => t, failureThreshold: 1, resetTimeoutMs: 10 });
    b.failure();
    t = 10;
    expect(b.tryAcquire()).toBe(true);
    b.neutral();
    expect(b.tryAcquire()).toBe(true);
  });
});

describe("retry policy", () => {
  it("full jitter: each delay is in [0, min(cap, base·2^n))", () => {
    const p = retryPolicy();
    expect(p).toEqual({ maxRetries: 2, baseDelayMs: 25, maxDelayMs: 250 });
    expect(backoffDelayMs(p, 0, () => 0.999)).toBeLessThan(25);
    expect(backoffDelayMs(p, 1, () => 0.999)).toBeLessThan(50);
    expect(backoffDelayMs(p, 10, () => 0.999)).toBeLessThan(250);
    expect(backoffDelayMs(p, 3, () => 0)).toBe(0);
  });

  it("marks only the calls safe to repeat", () => {
    expect(RETRY_SAFE.authorize({})).toBe(true);
    expect(RETRY_SAFE.authorize({ applyLimits: true })).toBe(false);
    const never = ["checkRateLimit", "createKey", "rotateKey", "updateKey", "deleteBlock"] as const;
    for (const m of never) expect(RETRY_SAFE[m]()).toBe(false);
    const safe = [
      "recordEvent",
      "reportUsage",
      "getKey",
      "listKeys",
      "listBlocks",
      "listEvents",
      "listAlerts",
      "getUsage",
      "revokeKey",
      "exportKeys",
    ] as const;
    for (const m of safe) expect(RETRY_SAFE[m]()).toBe(true);
    // ImportKeys: retried without `overwrite` (idempotent), dry run or not; never with it.
    const imports: [{ overwrite?: boolean; dryRun?: boolean }, boolean][] = [
      [{}, true],
      [{ dryRun: true }, true],
      [{ overwrite: true }, false],
      [{ overwrite: true, dryRun: true }, false],
    ];
    for (const [req, want] of imports)
      expect(RETRY_SAFE.importKeys(req), JSON.stringify(req)).toBe(want);
  });
});

describe("AllowCache", () => {
  const key = {
    apiKey: "tg_live_secret",
    method: "GET",
    path: "/x",
    endpoint: "",
    clientIp: "",
    scopes: ["b", "a"],
  };

  it("clamps the TTL to the server's revocation bound and expires entries", () => {
    expect(new AllowCache({ ttlMs: 60_000 }).ttlMs).toBe(MAX_ALLOW_CACHE_TTL_MS);
    let t = 1_000;
    const c = new AllowCache<{ v: number }>({ ttlMs: 100, now: () => t });
    c.set(key, { v: 1 });
    t = 1_099;
    expect(c.get(key)).toEqual({ v: 1 });
    t = 1_101;
    expect(c.get(key)).toBeUndefined();
  });

  it("is bounded (LRU) and keyed by a SHA-256 that never contains the key", () => {
    const c = new AllowCache<{ v: number }>({ maxEntries: 2 });
    c.set({ ...key, path: "/1" }, { v: 1 });
    c.set({ ...key, path: "/2" }, { v: 2 });
    c.set({ ...key, path: "/3" }, { v: 3 });
    expect(c.size).toBe(2);
    expect(c.get({ ...key, path: "/1" })).toBeUndefined();
    const d = AllowCache.digest(key);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(d).not.toContain("secret");
    // Scope order does not matter; any other field does.
    expect(AllowCache.digest({ ...key, scopes: ["a", "b"] })).toBe(d);
    expect(AllowCache.digest({ ...key, clientIp: "10.0.0.1" })).not.toBe(d);
  });
});

describe("skip list", () => {
  it("matches exact paths and * prefixes, never ambiguous spellings", () => {
    const skip = compileSkip(["/healthz", "/public/*"]);
    expect(skip("/healthz")).toBe(true);
    expect(skip("/healthz/")).toBe(false);
    expect(skip("/public/a/b")).toBe(true);
    expect(skip("/public/../admin")).toBe(false);
    expect(skip("/public/%2e%2e/admin")).toBe(false);
    expect(skip("//healthz")).toBe(false);
    expect(compileSkip(undefined)("/healthz")).toBe(false);
  });
});

describe("problem details", () => {
  it("uses the quota-exceeded type for 429 and about:blank with the reason phrase otherwise", () => {
    expect(problem(429, "rate limit exceeded", "RATE_LIMITED", "d1")).toEqual({
      type: QUOTA_EXCEEDED_TYPE,
      title: "Quota exceeded",
      status: 429,
      detail: "rate limit exceeded",
      decision_id: "d1",
      reason: "RATE_LIMITED",
    });
    expect(problem(401, "x", "MISSING_KEY").title).toBe("Unauthorized");
    expect(problem(403, "x", "IP_DENIED").title).toBe("Forbidden");
    expect(problem(503, "x", "UNAVAILABLE").type).toBe("about:blank");
  });

  it("reads the field names of Tollgate's INVALID_ARGUMENT message", () => {
    expect(violatedFields("invalid request: path: bad; required_scopes[0]: too long")).toEqual([
      "path",
      "required_scopes[0]",
    ]);
  });
});

describe("settings", () => {
  it("resolves like the CLI: explicit options, then the token file, then the variables", () => {
    const file = join(tmpdir(), `tollgate-ts-settings-${process.pid}`);
    writeFileSync(file, "  from-file\n");
    expect(resolveSettings({ env: {} })).toEqual({
      server: "http://127.0.0.1:50051",
      managementToken: "",
    });
    const env = { TOLLGATE_SERVER: "http://10.0.0.1:1/", TOLLGATE_MANAGEMENT_TOKEN: "from-env" };
    expect(resolveSettings({ env })).toEqual({
      server: "http://10.0.0.1:1",
      managementToken: "from-env",
    });
    expect(
      resolveSettings({ env: { ...env, TOLLGATE_MANAGEMENT_TOKEN_FILE: file } }).managementToken,
    ).toBe("from-file");
    expect(resolveSettings({ env, server: "https://x:2", managementToken: "explicit" })).toEqual({
      server: "https://x:2",
      managementToken: "explicit",
    });
    expect(() => resolveSettings({ env: {}, server: "unix:/tmp/x" })).toThrow(/http\(s\) URL/);
  });
});
