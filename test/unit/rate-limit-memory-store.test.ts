/**
 * The embedded rate-limit store on a manual clock: the shared conformance
 * cases, then exact GCRA arithmetic and calendar-window edges (day, ISO week,
 * month, Dec→Jan, leap February) that real time cannot reach.
 */
import { describe, expect, it } from "vitest";
import type { CreditPlan, Limit } from "../../src/policy/policy.js";
import type { LimitOutcome } from "../../src/ratelimit/rate-limit-store.js";
import { creditPeriod } from "../../src/store/calendar-window.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";
import {
  freshTag,
  quotaLimit,
  rateLimit,
  rateLimitStoreCases,
} from "../conformance/rate-limit-store-cases.js";

rateLimitStoreCases("memory", () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 13, 10, 0, 0));
  return {
    store: new MemoryRateLimitStore(clock),
    wait: async (ms) => clock.advance(ms),
    now: () => clock.now(),
    slackMs: 0,
    // The clock moves to each refill in turn (a rate limit in the case drains meanwhile).
    creditPeriodsPass: async (item, periods) => {
      const plan = item.limit.credits as CreditPlan;
      for (let i = 0; i < periods; i++)
        clock.set(creditPeriod(plan.refill, plan.refillDay, clock.now()).next as number);
    },
  };
});

function fixture(at: number) {
  const clock = new ManualClock(at);
  const store = new MemoryRateLimitStore(clock);
  const tag = freshTag();
  const once = async (limit: Limit, cost = 1): Promise<LimitOutcome> => {
    const v = await store.decide({ items: [{ tag, limit }], cost, blockTags: [] });
    return v.outcomes[0] as LimitOutcome;
  };
  return { clock, store, once };
}

describe("GCRA arithmetic (memory store, manual clock)", () => {
  it("drains one request every period / requests ms, exactly", async () => {
    const { clock, once } = fixture(Date.UTC(2026, 0, 1));
    const limit = rateLimit("three-per-s", 3, 1_000); // one request per 333.33 ms
    for (let i = 0; i < 3; i++) await once(limit);
    expect(await once(limit)).toEqual({
      exceeded: true,
      remaining: 0,
      resetMs: 1_000,
      retryMs: 334,
    });
    clock.advance(333);
    expect((await once(limit)).retryMs).toBe(1);
    clock.advance(1);
    expect(await once(limit)).toEqual({
      exceeded: false,
      remaining: 0,
      resetMs: 1_000,
      retryMs: 0,
    });
  });

  it("refills to the burst and no further, however long it waits", async () => {
    const { clock, once } = fixture(Date.UTC(2026, 0, 1));
    const limit = rateLimit("two-per-s-burst-4", 2, 1_000, 4);
    for (let i = 0; i < 4; i++) expect((await once(limit)).exceeded).toBe(false);
    expect((await once(limit)).exceeded).toBe(true);
    clock.advance(3_600_000);
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) remaining.push((await once(limit)).remaining);
    expect(remaining).toEqual([3, 2, 1, 0, 0]);
  });

  it("a steady caller at exactly the rate is never denied", async () => {
    const { clock, once } = fixture(Date.UTC(2026, 0, 1));
    const limit = rateLimit("ten-per-s-burst-1", 10, 1_000, 1);
    for (let i = 0; i < 50; i++) {
      expect((await once(limit)).exceeded).toBe(false);
      clock.advance(100);
    }
  });

  it("reports reset as the time until the bucket is empty", async () => {
    const { clock, once } = fixture(Date.UTC(2026, 0, 1));
    const limit = rateLimit("ten-per-min", 10, 60_000);
    expect((await once(limit, 4)).resetMs).toBe(24_000);
    clock.advance(6_000);
    expect(await once(limit)).toEqual({
      exceeded: false,
      remaining: 6,
      resetMs: 24_000,
      retryMs: 0,
    });
  });
});

describe("calendar quota windows (memory store, manual clock)", () => {
  const edges = [
    {
      name: "a day, at UTC midnight",
      window: "day",
      from: Date.UTC(2026, 4, 13, 23, 59, 59, 999),
      next: Date.UTC(2026, 4, 14),
    },
    {
      name: "an ISO week, Sunday → Monday",
      window: "week",
      from: Date.UTC(2026, 4, 17, 23, 59, 59, 999),
      next: Date.UTC(2026, 4, 18),
    },
    {
      name: "a month, Apr 30 → May 1",
      window: "month",
      from: Date.UTC(2026, 3, 30, 23, 59, 59, 999),
      next: Date.UTC(2026, 4, 1),
    },
    {
      name: "a month, Dec 31 → Jan 1",
      window: "month",
      from: Date.UTC(2025, 11, 31, 23, 59, 59, 999),
      next: Date.UTC(2026, 0, 1),
    },
    {
      name: "a day, Dec 31 → Jan 1",
      window: "day",
      from: Date.UTC(2025, 11, 31, 23, 59, 59, 999),
      next: Date.UTC(2026, 0, 1),
    },
    {
      name: "an ISO week across the new year",
      window: "week",
      from: Date.UTC(2028, 0, 2, 23, 59, 59, 999),
      next: Date.UTC(2028, 0, 3),
    },
    {
      name: "a leap February, Feb 29 → Mar 1",
      window: "month",
      from: Date.UTC(2028, 1, 29, 23, 59, 59, 999),
      next: Date.UTC(2028, 2, 1),
    },
    {
      name: "a common February, Feb 28 → Mar 1",
      window: "month",
      from: Date.UTC(2027, 1, 28, 23, 59, 59, 999),
      next: Date.UTC(2027, 2, 1),
    },
  ] as const;

  for (const e of edges) {
    it(`resets ${e.name}, not a millisecond earlier`, async () => {
      const { clock, once } = fixture(e.from);
      const limit = quotaLimit("two", 2, e.window);
      expect(await once(limit)).toEqual({ exceeded: false, remaining: 1, resetMs: 1, retryMs: 0 });
      expect((await once(limit)).remaining).toBe(0);
      expect(await once(limit)).toEqual({ exceeded: true, remaining: 0, resetMs: 1, retryMs: 1 });
      clock.set(e.next);
      const fresh = await once(limit);
      expect(fresh.exceeded).toBe(false);
      expect(fresh.remaining).toBe(1);
    });
  }

  it("a leap February holds 29 days of a monthly quota", async () => {
    const { clock, once } = fixture(Date.UTC(2028, 1, 1));
    const limit = quotaLimit("one-a-month", 1, "month");
    expect((await once(limit)).resetMs).toBe(29 * 86_400_000);
    clock.set(Date.UTC(2028, 1, 29, 12));
    expect((await once(limit)).exceeded).toBe(true);
  });

  it("a monthly quota used on Jan 31 is fresh on Feb 1, and one used Feb 1 still counts on Feb 28", async () => {
    const { clock, once } = fixture(Date.UTC(2026, 0, 31, 12));
    const limit = quotaLimit("one-a-month", 1, "month");
    expect((await once(limit)).exceeded).toBe(false);
    clock.set(Date.UTC(2026, 1, 1));
    expect((await once(limit)).exceeded).toBe(false);
    clock.set(Date.UTC(2026, 1, 28, 23, 59, 59, 999));
    expect((await once(limit)).exceeded).toBe(true);
  });
});

describe("memory store housekeeping", () => {
  it("every entry expires: memory stays proportional to active subjects", async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const store = new MemoryRateLimitStore(clock);
    const limit = rateLimit("ten-per-s", 10, 1_000);
    for (let i = 0; i < 10_000; i++) {
      await store.decide({ items: [{ tag: `k:${i}`, limit }], cost: 1, blockTags: [] });
    }
    expect(store.size).toBe(10_000);
    clock.advance(1_000);
    await store.decide({ items: [{ tag: "k:last", limit }], cost: 1, blockTags: [] });
    // Sweeps run every 10 000 writes: the next one drops the 10 000 expired entries.
    for (let i = 0; i < 10_000; i++) {
      await store.decide({ items: [{ tag: `k:again-${i}`, limit }], cost: 1, blockTags: [] });
    }
    expect(store.size).toBeLessThanOrEqual(10_001);
  });
});
