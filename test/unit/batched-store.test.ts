/**
 * `sync: batched` limits (ratelimit/batched-store.ts) over the embedded store
 * standing in for the shared one: replicas are BatchedRateLimitStores over one
 * MemoryRateLimitStore. Decisions spend units taken in batches; never more
 * than the limit, at least the limit minus what replicas hold; all or nothing
 * with exact limits; unused units go back after flush_interval.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Limit } from "../../src/policy/policy.js";
import { BatchedRateLimitStore } from "../../src/ratelimit/batched-store.js";
import type {
  LimitItem,
  RateLimitStore,
  RateVerdict,
  TakeResult,
} from "../../src/ratelimit/rate-limit-store.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";
import { quotaLimit, rateLimit } from "../conformance/rate-limit-store-cases.js";

const START = Date.UTC(2026, 4, 13, 10, 0, 0);
const batched = (l: Limit, localShare: number, flushMs = 1000): Limit => ({
  ...l,
  batch: { localShare, flushMs },
});

/** The shared store, counting the calls replicas make to it. */
class CountingStore extends MemoryRateLimitStore {
  calls = { decide: 0, take: 0, giveBack: 0 };
  override decide(...a: Parameters<RateLimitStore["decide"]>): Promise<RateVerdict> {
    this.calls.decide++;
    return super.decide(...a);
  }
  override take(item: LimitItem, want: number): Promise<TakeResult> {
    this.calls.take++;
    return super.take(item, want);
  }
  override giveBack(item: LimitItem, amount: number): Promise<void> {
    this.calls.giveBack++;
    return super.giveBack(item, amount);
  }
}

const open: BatchedRateLimitStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

function fixture(replicas = 1) {
  const clock = new ManualClock(START);
  const shared = new CountingStore(clock);
  const stores = Array.from({ length: replicas }, () => {
    const s = new BatchedRateLimitStore(shared, { clock });
    open.push(s);
    return s;
  });
  const decide = (s: BatchedRateLimitStore, items: LimitItem[], cost = 1) =>
    s.decide({ items, cost, blockTags: [] });
  return { clock, shared, stores, decide };
}

/** Waits for the sweep (every 50 ms of real time) to see the clock moved. */
const sweep = () => new Promise((r) => setTimeout(r, 120));

describe("batched limits", () => {
  it("spend units taken in batches: one take per local_share × burst decisions", async () => {
    const { shared, stores, decide } = fixture();
    const limit = batched(rateLimit("per-key", 1000, 60_000), 0.05); // takes of 50
    const it1 = { tag: "k:a", limit };
    for (let i = 0; i < 200; i++) {
      expect((await decide(stores[0] as BatchedRateLimitStore, [it1])).status).toBe("ok");
    }
    expect(shared.calls).toEqual({ decide: 0, take: 4, giveBack: 0 });
    // 200 charged in the shared store, 0 held.
    expect((await shared.peek([it1]))[0]?.remaining).toBe(800);
  });

  it("never admit more than the limit across replicas, nor fewer than the limit minus what they hold", async () => {
    const { shared, stores, decide } = fixture(3);
    const limit = batched(quotaLimit("daily", 1000, "day"), 0.05); // takes of 50
    const it1 = { tag: "k:shared", limit };
    let admitted = 0;
    // Round robin, until every replica is denied.
    for (let round = 0; round < 600; round++) {
      for (const s of stores) if ((await decide(s, [it1])).status === "ok") admitted++;
    }
    expect(admitted).toBeLessThanOrEqual(1000);
    expect(admitted).toBeGreaterThanOrEqual(1000 - 3 * 50);
    // The shared store counted every unit taken: admitted plus what is held.
    expect((await shared.peek([it1]))[0]?.remaining).toBe(0);
  });

  it("give unused units back after flush_interval, so the counts converge on what was admitted", async () => {
    const { clock, shared, stores, decide } = fixture(2);
    const limit = batched(quotaLimit("daily", 1000, "day"), 0.1, 500); // takes of 100
    const it1 = { tag: "k:shared", limit };
    for (let i = 0; i < 30; i++) await decide(stores[i % 2] as BatchedRateLimitStore, [it1]);
    expect((await shared.peek([it1]))[0]?.remaining).toBe(800); // two takes of 100
    clock.advance(500);
    await sweep();
    expect(shared.calls.giveBack).toBe(2);
    expect((await shared.peek([it1]))[0]?.remaining).toBe(970);
    expect(stores[0]?.stats().allotments).toBe(0);
  });

  it("are all or nothing with an exact limit: an exact denial spends no batched unit", async () => {
    const { shared, stores, decide } = fixture();
    const s = stores[0] as BatchedRateLimitStore;
    const fast = batched(quotaLimit("daily", 1000, "day"), 0.01); // takes of 10
    const exact = rateLimit("exact", 2, 60_000);
    const items = [
      { tag: "k:a", limit: fast },
      { tag: "k:a", limit: exact },
    ];
    expect((await decide(s, items)).status).toBe("ok");
    expect((await decide(s, items)).status).toBe("ok");
    const denied = await decide(s, items);
    expect(denied.status).toBe("limited");
    expect(denied.outcomes.map((o) => o.exceeded)).toEqual([false, true]);
    // 10 taken, 2 spent: 8 held, so 990 left in the store plus 8 here.
    expect(denied.outcomes[0]?.remaining).toBe(998);
    expect(shared.calls.take).toBe(1);
  });

  it("deny the whole decision when a batched limit cannot pay, charging the exact limits nothing", async () => {
    const { shared, stores, decide } = fixture();
    const s = stores[0] as BatchedRateLimitStore;
    const small = batched(quotaLimit("daily", 3, "day"), 0.5); // takes of 1
    const exact = rateLimit("exact", 100, 60_000);
    const items = [
      { tag: "k:a", limit: small },
      { tag: "k:a", limit: exact },
    ];
    for (let i = 0; i < 3; i++) expect((await decide(s, items)).status).toBe("ok");
    const denied = await decide(s, items);
    expect(denied.status).toBe("limited");
    expect(denied.outcomes.map((o) => o.exceeded)).toEqual([true, false]);
    expect(denied.outcomes[1]?.remaining).toBe(97);
    expect((await shared.peek([items[1] as LimitItem]))[0]?.remaining).toBe(97);
  });

  it("leave shadow batched limits non-denying, and rates refill between takes", async () => {
    const { clock, stores, decide } = fixture();
    const s = stores[0] as BatchedRateLimitStore;
    const shadow = batched(rateLimit("shadow", 2, 1000, 2, "shadow"), 0.5);
    const rate = batched(rateLimit("per-second", 10, 1000), 0.2); // takes of 2
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      const v = await decide(s, [
        { tag: "k:a", limit: shadow },
        { tag: "k:a", limit: rate },
      ]);
      if (v.status === "ok") ok++;
    }
    expect(ok).toBe(10);
    clock.advance(1000);
    const v = await decide(s, [{ tag: "k:a", limit: rate }]);
    expect(v.status).toBe("ok");
  });

  it("deny past the limit without a take each: an empty bucket is not asked again until units can be back", async () => {
    const { clock, shared, stores, decide } = fixture();
    const s = stores[0] as BatchedRateLimitStore;
    const quota = batched(quotaLimit("daily", 10, "day"), 0.5, 1000); // takes of 5
    const it1 = { tag: "k:a", limit: quota };
    for (let i = 0; i < 10; i++) expect((await decide(s, [it1])).status).toBe("ok");
    for (let i = 0; i < 100; i++) expect((await decide(s, [it1])).status).toBe("limited");
    // Two full takes, one that came back empty, then none for the rest.
    expect(shared.calls.take).toBe(3);
    clock.advance(1000);
    expect((await decide(s, [it1])).status).toBe("limited");
    expect(shared.calls.take).toBe(4);
    // A rate waits only until a take's worth has refilled (here 5 units: 500 ms).
    const rate = batched(rateLimit("per-second", 10, 1000), 0.5, 60_000);
    const it2 = { tag: "k:b", limit: rate };
    for (let i = 0; i < 10; i++) expect((await decide(s, [it2])).status).toBe("ok");
    expect((await decide(s, [it2])).status).toBe("limited");
    const takes = shared.calls.take;
    clock.advance(499);
    expect((await decide(s, [it2])).status).toBe("limited");
    expect(shared.calls.take).toBe(takes);
    clock.advance(1);
    expect((await decide(s, [it2])).status).toBe("ok");
  });

  it("hold at most maxAllotments buckets, giving the oldest back", async () => {
    const clock = new ManualClock(START);
    const shared = new CountingStore(clock);
    const s = new BatchedRateLimitStore(shared, { clock, maxAllotments: 100 });
    open.push(s);
    const limit = batched(quotaLimit("daily", 100, "day"), 0.1);
    for (let i = 0; i < 1000; i++) {
      await s.decide({ items: [{ tag: `k:${i}`, limit }], cost: 1, blockTags: [] });
      expect(s.stats().allotments).toBeLessThanOrEqual(100);
    }
    const usage = s.usage();
    expect(usage.entries).toBeLessThanOrEqual(100);
    expect(usage.evictions).toBeGreaterThanOrEqual(900);
    expect(usage.bytes).toBeLessThanOrEqual(100 * (200 + 24 + 30));
    await sweep();
    expect(shared.calls.giveBack).toBeGreaterThanOrEqual(900);
    // The first subject's unused 9 units went back when it was evicted.
    expect((await shared.peek([{ tag: "k:0", limit }]))[0]?.remaining).toBe(99);
  });
});
