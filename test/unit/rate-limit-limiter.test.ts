/**
 * RateLimiter over the memory store on a manual clock: which limits apply to a
 * request, which one decides, and the response headers it produces
 * (RateLimit-Policy, RateLimit, Retry-After), with exact values.
 */
import { describe, expect, it } from "vitest";
import { normalisePath } from "../../src/policy/path-normaliser.js";
import { matchEndpoint, type Policy, parsePolicy } from "../../src/policy/policy.js";
import { BlockBook } from "../../src/ratelimit/block-book.js";
import { BlockCache } from "../../src/ratelimit/block-cache.js";
import {
  type MissingDimension,
  type RateDecision,
  type RateInput,
  RateLimiter,
} from "../../src/ratelimit/rate-limiter.js";
import { InsuranceLimiter } from "../../src/resilience/insurance-limiter.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";

const POLICY = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: per-key, by: key, rate: { requests: 2, per: 10s, burst: 4 } }
      - { name: daily, by: owner, quota: { requests: 6, per: day } }
endpoints:
  - name: create
    method: POST
    path: /v1/orders
    cost: 2
    limits:
      - { name: per-ip, by: ip, rate: { requests: 3, per: 1m }, mode: shadow }
  - name: export
    path: /v1/exports/**
    limits:
      - { name: per-subject, by: subject, rate: { requests: 1, per: 1s } }
blocking:
  by: [key]
  after: 2
  within: 1m
  duration: 30s
  factor: 3
  max_duration: 5m
`;

function fixture() {
  // 10:00 UTC: 14 h to the end of the day.
  const clock = new ManualClock(Date.UTC(2026, 4, 13, 10));
  const policy: Policy = parsePolicy(POLICY, "test");
  const store = new MemoryRateLimitStore(clock);
  const limiter = new RateLimiter({
    store,
    clock,
    policy: () => policy,
    blocks: new BlockBook({ cache: new BlockCache(clock), store, announce: () => {} }),
    failMode: () => "closed",
    insurance: new InsuranceLimiter(clock, 0.5),
  });
  const input = (o: Partial<RateInput> = {}): RateInput => ({
    tier: "free",
    keyId: "key_aaaaaaaaaaaaaaaa",
    owner: "acme",
    clientIp: "10.0.0.1",
    subject: "",
    endpoint: undefined,
    cost: 0,
    ...o,
  });
  const check = async (o: Partial<RateInput> = {}): Promise<RateDecision> => {
    const r = await limiter.check(input(o));
    if ("missing" in r) throw new Error(`missing ${r.missing}`);
    return r;
  };
  return { clock, policy, limiter, input, check };
}

const headers = (d: RateDecision) => Object.fromEntries(d.headers);

describe("RateLimiter headers and deciding limit", () => {
  it("on allow: RateLimit-Policy lists every enforced limit, RateLimit names the tightest", async () => {
    const { check } = fixture();
    const d = await check();
    expect(d.allowed).toBe(true);
    expect(headers(d)).toEqual({
      "ratelimit-policy": '"per-key";q=4;w=10, "daily";q=6;w=86400',
      // per-key has 3/4 left, daily 5/6: per-key is tighter; its bucket empties in 5 s.
      ratelimit: '"per-key";r=3;t=5',
    });
  });

  it("on denial: RateLimit names the denying limit, Retry-After says when a retry fits", async () => {
    const { check, clock } = fixture();
    for (let i = 0; i < 4; i++) expect((await check()).allowed).toBe(true);
    const d = await check();
    expect(d).toMatchObject({ allowed: false, reason: "RATE_LIMITED", retryAfterMs: 5_000 });
    expect(headers(d)).toEqual({
      "ratelimit-policy": '"per-key";q=4;w=10, "daily";q=6;w=86400',
      ratelimit: '"per-key";r=0;t=20',
      "retry-after": "5",
    });
    clock.advance(5_000);
    expect((await check()).allowed).toBe(true);
  });

  it("a denial by a quota points Retry-After at the window's end", async () => {
    const { check, clock } = fixture();
    for (let i = 0; i < 6; i++) {
      expect((await check()).allowed).toBe(true);
      clock.advance(10_000); // keep per-key clear
    }
    const d = await check();
    expect(d.allowed).toBe(false);
    const left = Date.UTC(2026, 4, 14) - clock.now();
    expect(d.retryAfterMs).toBe(left);
    expect(headers(d).ratelimit).toBe(`"daily";r=0;t=${Math.ceil(left / 1000)}`);
    expect(headers(d)["retry-after"]).toBe(String(Math.ceil(left / 1000)));
  });

  it("uses the endpoint's cost, and reports shadow limits without denying or advertising them", async () => {
    const { check, policy } = fixture();
    const create = matchEndpoint(policy, "POST", "/v1/orders");
    const first = await check({ endpoint: create });
    expect(first.allowed).toBe(true);
    expect(first.limits.map((l) => l.outcome.remaining)).toEqual([2, 4, 1]);
    expect(first.shadowExceeded).toEqual([]);
    const second = await check({ endpoint: create });
    expect(second.allowed).toBe(true);
    expect(second.shadowExceeded.map((l) => l.name)).toEqual(["per-ip"]);
    expect(second.limits[2]?.outcome).toMatchObject({ exceeded: true, remaining: 1 });
    expect(second.limits.map((l) => l.outcome.remaining)).toEqual([0, 2, 1]);
    expect(headers(second)["ratelimit-policy"]).not.toContain("per-ip");
  });

  it("asks for the dimension a limit needs when the request lacks it", async () => {
    const { limiter, input, policy } = fixture();
    const exp = matchEndpoint(policy, "GET", "/v1/exports/a/b");
    const r = (await limiter.check(input({ endpoint: exp }))) as MissingDimension;
    expect(r).toEqual({ missing: "subject", limit: "per-subject" });
    // per-ip is a shadow limit: without a client IP it is skipped, never an error.
    const noIp = (await limiter.check(
      input({ clientIp: "", endpoint: matchEndpoint(policy, "POST", "/v1/orders") }),
    )) as RateDecision;
    expect(noIp.allowed).toBe(true);
    expect(noIp.shadowSkipped.map((l) => l.name)).toEqual(["per-ip"]);
    expect(noIp.limits.map((l) => l.limit.name)).not.toContain("per-ip");
  });

  it("blocks after repeated denials: Retry-After covers the block, escalating ×3", async () => {
    const { check, clock } = fixture();
    for (let i = 0; i < 4; i++) await check();
    expect((await check()).newBlocks).toEqual([]);
    const placing = await check();
    expect(placing.newBlocks).toEqual([
      { tag: "k:key_aaaaaaaaaaaaaaaa", until: clock.now() + 30_000 },
    ]);
    clock.advance(10_000);
    const blocked = await check();
    expect(blocked).toMatchObject({ allowed: false, reason: "BLOCKED", retryAfterMs: 20_000 });
    expect(headers(blocked)).toEqual({ "retry-after": "20" });
    clock.advance(20_000);
    // Free again; the next offence (two more denials) blocks for 30 s × 3.
    const reasons: string[] = [];
    let again: RateDecision | undefined;
    while (!again?.newBlocks.length && reasons.length < 10) {
      again = await check();
      reasons.push(again.reason);
    }
    expect(reasons).toEqual(["OK", "OK", "RATE_LIMITED", "RATE_LIMITED"]);
    expect(again?.newBlocks[0]?.until).toBe(clock.now() + 90_000);
  });
});

describe("path variants reach the same endpoint rule", () => {
  const policy = parsePolicy(POLICY, "test");
  const variants = [
    "/v1/orders",
    "//v1/orders",
    "/v1//orders",
    "/v1/%2e%2e/v1/orders",
    "/V1/Orders",
    "/v1/orders/",
    "/v1/./orders",
    "/v1/orders?x=1",
    "/%761/orders",
  ];
  for (const raw of variants) {
    it(`${JSON.stringify(raw)} matches "create"`, () => {
      const n = normalisePath(raw);
      expect(n.ok).toBe(true);
      expect(n.ok && matchEndpoint(policy, "POST", n.path)?.name).toBe("create");
    });
  }
  for (const raw of ["/v1%2forders", "/v1/orders%00", "/v1\\orders", "v1/orders", "/v1/%zz"]) {
    it(`${JSON.stringify(raw)} is refused rather than matched elsewhere`, () => {
      expect(normalisePath(raw).ok).toBe(false);
    });
  }
});
