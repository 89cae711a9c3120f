/**
 * Runtime limit overrides in the rate-limit plan, over the memory store on a
 * manual clock: precedence (key > owner > endpoint > tier), exemption,
 * expiry, the bucket identity rule (a raise or a lower keeps the usage
 * counted; a new period starts a fresh bucket), the memoisation, and the
 * owner cache's bounds (entries, TTL, invalidation, "none" cached).
 */
import { describe, expect, it } from "vitest";
import { type Limit, limitsFor, matchEndpoint, parsePolicy } from "../../src/policy/policy.js";
import { BlockBook } from "../../src/ratelimit/block-book.js";
import { BlockCache } from "../../src/ratelimit/block-cache.js";
import {
  applyOverrides,
  type LimitOverride,
  OverrideCompiler,
} from "../../src/ratelimit/limit-override.js";
import {
  OWNER_OVERRIDES_MAX_ENTRIES,
  OwnerOverrides,
} from "../../src/ratelimit/owner-overrides.js";
import {
  type RateDecision,
  type RateInput,
  RateLimiter,
} from "../../src/ratelimit/rate-limiter.js";
import { InsuranceLimiter } from "../../src/resilience/insurance-limiter.js";
import { MemoryOverrideStore } from "../../src/store/memory-override-store.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";

const POLICY = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: per-key, by: key, rate: { requests: 3, per: 1h } }
      - { name: daily, by: owner, quota: { requests: 100, per: day } }
endpoints:
  - name: search
    path: /v1/search
    limits:
      - { name: per-key, by: key, rate: { requests: 5, per: 1h } }
`;

const T0 = Date.UTC(2026, 4, 13, 10);
const ov = (limit: string, o: Partial<LimitOverride> = {}): LimitOverride => ({
  limit,
  exempt: false,
  requests: 10,
  createdAt: T0,
  ...o,
});

function fixture() {
  const clock = new ManualClock(T0);
  const policy = parsePolicy(POLICY, "test");
  const store = new MemoryRateLimitStore(clock);
  const limiter = new RateLimiter({
    store,
    clock,
    policy: () => policy,
    blocks: new BlockBook({ cache: new BlockCache(clock), store, announce: () => {} }),
    failMode: () => "closed",
    insurance: new InsuranceLimiter(clock, 0.5),
  });
  const search = matchEndpoint(policy, "GET", "/v1/search");
  const input = (o: Partial<RateInput> = {}): RateInput => ({
    tier: "free",
    keyId: "key_aaaaaaaaaaaaaaaa",
    owner: "acme",
    clientIp: "",
    subject: "",
    endpoint: undefined,
    cost: 1,
    ...o,
  });
  const decide = async (i: RateInput) => (await limiter.check(i)) as RateDecision;
  const admitted = async (i: RateInput, n: number) => {
    let ok = 0;
    for (let k = 0; k < n; k++) if ((await decide(i)).allowed) ok++;
    return ok;
  };
  return { clock, policy, limiter, search, input, decide, admitted };
}

const perKey = (limits: readonly Limit[]) => limits.find((l) => l.name === "per-key");

describe("precedence: key > owner > endpoint > tier", () => {
  it("the endpoint's limit beats the tier's of the same name (no override)", () => {
    const { policy, search } = fixture();
    expect(perKey(limitsFor(policy, "free", undefined))?.requests).toBe(3);
    expect(perKey(limitsFor(policy, "free", search))?.requests).toBe(5);
  });

  it("an owner override beats the endpoint and the tier; a key override beats the owner's", () => {
    const { policy, search } = fixture();
    for (const endpoint of [undefined, search]) {
      const base = limitsFor(policy, "free", endpoint);
      const owner = [ov("per-key", { requests: 20 })];
      const key = [ov("per-key", { requests: 30 })];
      expect(perKey(applyOverrides(base, { owner }, T0))?.requests).toBe(20);
      expect(perKey(applyOverrides(base, { owner, key }, T0))?.requests).toBe(30);
      expect(perKey(applyOverrides(base, { key }, T0))?.requests).toBe(30);
      // Other limits are untouched, in the policy's order.
      expect(applyOverrides(base, { owner, key }, T0).map((l) => l.name)).toEqual(
        base.map((l) => l.name),
      );
    }
  });

  it("an exempt key override drops the limit even when the owner's sets numbers", () => {
    const { policy } = fixture();
    const base = limitsFor(policy, "free", undefined);
    const out = applyOverrides(
      base,
      { owner: [ov("per-key", { requests: 1 })], key: [ov("per-key", { exempt: true })] },
      T0,
    );
    expect(out.map((l) => l.name)).toEqual(["daily"]);
  });

  it("an expired override is ignored: the next level applies", () => {
    const { policy } = fixture();
    const base = limitsFor(policy, "free", undefined);
    const key = [ov("per-key", { requests: 30, expiresAt: T0 + 1000 })];
    const owner = [ov("per-key", { requests: 20 })];
    expect(perKey(applyOverrides(base, { key, owner }, T0 + 999))?.requests).toBe(30);
    expect(perKey(applyOverrides(base, { key, owner }, T0 + 1000))?.requests).toBe(20);
    expect(perKey(applyOverrides(base, { key }, T0 + 1000))?.requests).toBe(3);
  });

  it("an override of a limit the request does not have changes nothing", () => {
    const { policy } = fixture();
    const base = limitsFor(policy, "free", undefined);
    expect(applyOverrides(base, { key: [ov("elsewhere")] }, T0)).toBe(base);
  });
});

describe("bucket identity", () => {
  it("requests and burst keep the policy limit's bucket id; a new period gets another", () => {
    const { policy } = fixture();
    const base = perKey(limitsFor(policy, "free", undefined)) as Limit;
    const raised = perKey(applyOverrides([base], { key: [ov("per-key", { burst: 50 })] }, T0));
    expect(raised).toMatchObject({ requests: 10, burst: 50, bucketId: base.bucketId });
    const burstDefault = perKey(applyOverrides([base], { key: [ov("per-key")] }, T0));
    expect(burstDefault?.burst).toBe(10);
    const period = perKey(
      applyOverrides([base], { key: [ov("per-key", { periodMs: 60_000 })] }, T0),
    );
    expect(period?.bucketId).not.toBe(base.bucketId);
    // Back to the policy's period: the policy's bucket again.
    const back = perKey(
      applyOverrides([base], { key: [ov("per-key", { periodMs: 3_600_000 })] }, T0),
    );
    expect(back?.bucketId).toBe(base.bucketId);
  });

  it("a raise keeps the usage counted (3 used of 3, raised to 5: 2 more), a lower denies", async () => {
    const f = fixture();
    expect(await f.admitted(f.input(), 4)).toBe(3);
    const raised = f.input({ overrides: { key: [ov("per-key", { requests: 5 })] } });
    expect(await f.admitted(raised, 4)).toBe(2);
    const lowered = f.input({ overrides: { owner: [ov("per-key", { requests: 2 })] } });
    expect(await f.admitted(lowered, 2)).toBe(0);
    const exempt = f.input({ overrides: { owner: [ov("per-key", { exempt: true })] } });
    expect(await f.admitted(exempt, 10)).toBe(10);
    // Exempt requests were not counted: the raise still sees 5 used of 5.
    expect(await f.admitted(raised, 1)).toBe(0);
  });

  it("a quota override keeps the window's count", async () => {
    const f = fixture();
    const exemptKey = { key: [ov("per-key", { exempt: true })] };
    expect(await f.admitted(f.input({ overrides: exemptKey }), 8)).toBe(8);
    const lowered = { key: [...exemptKey.key, ov("daily", { requests: 10 })] };
    expect(await f.admitted(f.input({ overrides: lowered }), 5)).toBe(2);
  });

  it("headers show the overridden numbers", async () => {
    const f = fixture();
    const d = await f.decide(
      f.input({ overrides: { key: [ov("per-key", { requests: 7, burst: 7 })] } }),
    );
    expect(d.limits.find((s) => s.limit.name === "per-key")?.limit.requests).toBe(7);
    expect(d.headers.map(([, v]) => v).join(" ")).toMatch(/q=7|7;w=/);
  });
});

describe("memoisation", () => {
  it("the same inputs give the same array; none gives the policy's own; expiry recomputes", () => {
    const c = new OverrideCompiler();
    const { policy } = fixture();
    const base = limitsFor(policy, "free", undefined);
    expect(c.apply(base, {}, T0)).toBe(base);
    expect(c.apply(base, { key: [], owner: [] }, T0)).toBe(base);
    const key = [ov("per-key", { requests: 9, expiresAt: T0 + 5000 })];
    const a = c.apply(base, { key }, T0);
    expect(c.apply(base, { key }, T0 + 4999)).toBe(a);
    expect(perKey(a)?.requests).toBe(9);
    const after = c.apply(base, { key }, T0 + 5000);
    expect(after).not.toBe(a);
    expect(perKey(after)?.requests).toBe(3);
  });
});

describe("OwnerOverrides (the owner cache)", () => {
  function cache(o: { ttlMs?: number; maxEntries?: number } = {}) {
    const clock = new ManualClock(T0);
    const store = new MemoryOverrideStore();
    let reads = 0;
    const counting = {
      ...store,
      ownerOverrides: (owner: string) => {
        reads++;
        return store.ownerOverrides(owner);
      },
    } as MemoryOverrideStore;
    const owners = new OwnerOverrides({
      store: counting,
      clock,
      ttlMs: o.ttlMs ?? 5000,
      ...(o.maxEntries !== undefined && { maxEntries: o.maxEntries }),
    });
    return { clock, store, owners, reads: () => reads };
  }

  it("caches an owner's overrides and the fact it has none: one read per TTL", async () => {
    const c = cache();
    expect(await c.owners.get("acme")).toEqual([]);
    expect(c.owners.cached("acme")).toEqual([]);
    await c.owners.get("acme");
    expect(c.reads()).toBe(1);
    c.clock.advance(4999);
    await c.owners.get("acme");
    expect(c.reads()).toBe(1);
    c.clock.advance(1);
    expect(c.owners.cached("acme")).toBeUndefined();
    await c.owners.get("acme");
    expect(c.reads()).toBe(2);
  });

  it("a change is seen after invalidate at once, and after the TTL without it", async () => {
    const c = cache();
    await c.owners.get("acme");
    await c.store.setOwnerOverride("acme", ov("per-key"));
    expect(await c.owners.get("acme")).toEqual([]);
    c.owners.invalidate(["acme"]);
    expect((await c.owners.get("acme")).map((o) => o.limit)).toEqual(["per-key"]);
    await c.store.removeOwnerOverrides("acme", ["per-key"]);
    c.clock.advance(5000);
    expect(await c.owners.get("acme")).toEqual([]);
  });

  it("holds at most maxEntries owners (the default is 10 000)", async () => {
    expect(OWNER_OVERRIDES_MAX_ENTRIES).toBe(10_000);
    const c = cache({ maxEntries: 3 });
    for (const o of ["a", "b", "c", "d"]) await c.owners.get(o);
    expect(c.owners.size).toBe(3);
    expect(c.owners.cached("a")).toBeUndefined();
    expect(c.owners.cached("d")).toEqual([]);
  });

  it("a read under way when an invalidation arrives is answered but not cached", async () => {
    const c = cache();
    const p = c.owners.get("acme");
    c.owners.invalidate(["acme"]);
    await p;
    expect(c.owners.cached("acme")).toBeUndefined();
  });

  it("a failed read answers the stale copy, else none", async () => {
    const clock = new ManualClock(T0);
    let fail = false;
    const store = new MemoryOverrideStore();
    await store.setOwnerOverride("acme", ov("per-key"));
    const failing = {
      ...store,
      ownerOverrides: (owner: string) =>
        fail ? Promise.reject(new Error("down")) : store.ownerOverrides(owner),
    } as MemoryOverrideStore;
    const errors: unknown[] = [];
    const owners = new OwnerOverrides({
      store: failing,
      clock,
      ttlMs: 1000,
      onError: (e) => errors.push(e),
    });
    expect(await owners.get("acme")).toHaveLength(1);
    fail = true;
    clock.advance(1000);
    expect(await owners.get("acme")).toHaveLength(1);
    expect(await owners.get("other")).toEqual([]);
    expect(errors).toHaveLength(2);
  });
});
