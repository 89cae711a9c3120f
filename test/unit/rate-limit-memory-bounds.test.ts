/**
 * The embedded rate-limit store's memory bounds (and the insurance limiter's):
 * never more than maxEntries entries or maxBytes estimated bytes, drained
 * buckets dropped first, then the entries holding the least — so a flood of
 * distinct subjects cannot be used to reset a subject at its limit, a quota
 * spent, or a block.
 */
import { describe, expect, it } from "vitest";
import type { Blocking, Limit } from "../../src/policy/policy.js";
import type { RateVerdict } from "../../src/ratelimit/rate-limit-store.js";
import { InsuranceLimiter } from "../../src/resilience/insurance-limiter.js";
import {
  MemoryRateLimitStore,
  RATE_STORE_DEFAULTS,
} from "../../src/store/memory-rate-limit-store.js";
import { ManualClock } from "../../src/util/clock.js";
import { quotaLimit, rateLimit } from "../conformance/rate-limit-store-cases.js";

const START = Date.UTC(2026, 4, 13, 10, 0, 0);

function fixture(maxEntries: number, maxBytes = 1024 ** 3) {
  const clock = new ManualClock(START);
  const store = new MemoryRateLimitStore(clock, { maxEntries, maxBytes });
  const decide = (tag: string, limits: Limit[], blocking?: Blocking): Promise<RateVerdict> =>
    store.decide({
      items: limits.map((limit) => ({ tag, limit })),
      cost: 1,
      blockTags: blocking ? [tag] : [],
      ...(blocking && { blocking }),
    });
  /** One request from each of `n` new subjects. */
  const flood = async (n: number, limits: Limit[], prefix = "attacker") => {
    for (let i = 0; i < n; i++) await decide(`s:${prefix}-${i}`, limits);
  };
  return { clock, store, decide, flood };
}

const perMinute = rateLimit("per-minute", 10, 60_000);
const monthly = quotaLimit("monthly", 5, "month");

describe("embedded rate-limit store: memory bounds", () => {
  it("defaults to 150 000 entries and 32 MiB", () => {
    expect(RATE_STORE_DEFAULTS).toEqual({ maxEntries: 150_000, maxBytes: 32 * 1024 ** 2 });
  });

  it("never holds more than maxEntries entries, evicting in batches down to 90 %", async () => {
    const { store, flood } = fixture(1000);
    for (let round = 0; round < 5; round++) {
      await flood(1000, [perMinute, monthly], `r${round}`);
      expect(store.size).toBeLessThanOrEqual(1000);
    }
    const u = store.usage();
    expect(u.entries).toBeGreaterThanOrEqual(900);
    expect(u.evictions).toBe(10_000 - u.entries);
  });

  it("bounds usage-report markers too: the oldest go first, before any counter", async () => {
    const { clock, store, decide } = fixture(1000);
    const report = (id: string) =>
      store.forceCharge({ items: [], cost: 1, once: { id, ttlMs: 86_400_000 } });
    // A subject well into its quota, then a flood of reports, oldest first.
    for (let i = 0; i < 4; i++) await decide("k:customer", [monthly]);
    for (let i = 0; i < 3000; i++) {
      await report(`resp-${i}`);
      if (i % 100 === 0) clock.advance(1000);
    }
    expect(store.size).toBeLessThanOrEqual(1000);
    // The counter survived (its quota is not reset) …
    expect((await decide("k:customer", [monthly])).outcomes[0]?.remaining).toBe(0);
    // … and so did the newest markers, while the oldest were forgotten.
    expect((await report("resp-2999")).duplicate).toBe(true);
    expect((await report("resp-0")).duplicate).toBe(false);
  });

  it("never holds more than maxBytes estimated bytes, counting each key's length", async () => {
    const { store, decide } = fixture(1_000_000, 200_000);
    for (let i = 0; i < 5000; i++) {
      // 62 characters: the longest tag kept whole in the keys.
      await decide(`s:${`long-${i}-`.padEnd(60, "x")}`, [perMinute]);
      expect(store.usage().bytes).toBeLessThanOrEqual(200_000);
    }
    const { entries, bytes } = store.usage();
    // Each entry costs its key (≈ 80 characters) plus a fixed overhead.
    expect(bytes / entries).toBeGreaterThan(240);
    expect(entries).toBeLessThan(1000);
    expect(bytes).toBeGreaterThan(0.8 * 200_000);
  });

  it("keys a long subject by its digest: its size is fixed, and subjects stay apart", async () => {
    const { store, decide } = fixture(1_000_000);
    const oneAMinute = rateLimit("one-a-minute", 1, 60_000);
    // 256-byte subjects differing only in their last character, and the same
    // subject one character shorter: each has a bucket of its own.
    const subjects = [
      ...Array.from({ length: 50 }, (_, i) => `s:${"x".repeat(252)}${String(i).padStart(2, "0")}`),
      `s:${"x".repeat(253)}`,
    ];
    for (const s of subjects) expect((await decide(s, [oneAMinute])).status).toBe("ok");
    for (const s of subjects) expect((await decide(s, [oneAMinute])).status).toBe("limited");
    const { entries, bytes } = store.usage();
    expect(entries).toBe(subjects.length);
    // Well under the 256 characters of the subject itself, per entry and overhead.
    expect(bytes / entries).toBeLessThan(300);
  });

  it("drops drained buckets (equal to fresh ones) before any bucket still in use", async () => {
    const { clock, store, decide, flood } = fixture(1000);
    const slow = rateLimit("slow", 1, 3_600_000, 10); // a request's debt lasts an hour
    await decide("s:in-use", [slow]);
    // 999 subjects whose one request drains within 6 s…
    await flood(999, [perMinute]);
    clock.advance(6_000);
    // …then more: the drained ones go, and nothing in use is touched.
    await flood(100, [perMinute], "later");
    expect(store.usage().evictions).toBe(0);
    const v = await decide("s:in-use", [slow]);
    expect(v.outcomes[0]?.remaining).toBe(8); // the first request is still charged
  });

  it("cannot be used to reset a subject at its rate limit: 20 × the bound in new subjects later, still denied", async () => {
    const { store, decide, flood } = fixture(1000);
    for (let i = 0; i < 10; i++) expect((await decide("s:victim", [perMinute])).status).toBe("ok");
    expect((await decide("s:victim", [perMinute])).status).toBe("limited");
    await flood(20_000, [perMinute]);
    expect(store.usage().evictions).toBeGreaterThan(18_000);
    expect((await decide("s:victim", [perMinute])).status).toBe("limited");
  });

  it("cannot be used to reset a spent monthly quota", async () => {
    const { decide, flood } = fixture(1000);
    for (let i = 0; i < 5; i++) await decide("s:victim", [perMinute, monthly]);
    expect((await decide("s:victim", [perMinute, monthly])).status).toBe("limited");
    await flood(20_000, [perMinute, monthly]);
    const v = await decide("s:victim", [perMinute, monthly]);
    expect(v.status).toBe("limited");
    expect(v.outcomes[1]).toMatchObject({ exceeded: true, remaining: 0 });
  });

  it("evicts the entries holding the least first: what is forgotten is worth no more than the flood spent per subject", async () => {
    const { store, decide } = fixture(1000);
    const big = rateLimit("big", 100, 3_600_000); // debt lasts: nothing drains during the test
    // 90 subjects with 1..90 requests charged.
    for (let s = 1; s <= 90; s++) for (let r = 0; r < s; r++) await decide(`s:user-${s}`, [big]);
    // 5 000 attacker subjects with 2 requests each.
    for (let i = 0; i < 5000; i++) {
      await decide(`s:attacker-${i}`, [big]);
      await decide(`s:attacker-${i}`, [big]);
    }
    expect(store.usage().evictions).toBeGreaterThan(0);
    for (let s = 1; s <= 90; s++) {
      const remaining = (await decide(`s:user-${s}`, [big])).outcomes[0]?.remaining;
      // A subject holding more than the attacker's 2 requests kept every one of them
      // (this request now charged too); one holding less may have been forgotten.
      if (s > 2) expect(remaining).toBe(100 - s - 1);
    }
  });

  it("forgets blocks and offence levels last, so a flood cannot lift a block", async () => {
    const { decide } = fixture(1000);
    const blocking: Blocking = {
      by: new Set(["subject"]),
      after: 2,
      withinMs: 60_000,
      durationMs: 600_000,
      factor: 2,
      maxDurationMs: 3_600_000,
      forgetAfterMs: 86_400_000,
    };
    const one = rateLimit("one", 1, 3_600_000);
    await decide("s:offender", [one], blocking);
    await decide("s:offender", [one], blocking);
    const placed = await decide("s:offender", [one], blocking);
    expect(placed.newBlocks.map((b) => b.tag)).toEqual(["s:offender"]);
    // Subjects holding far more than the offender's counters.
    const heavy = rateLimit("heavy", 1000, 3_600_000);
    for (let i = 0; i < 3000; i++) {
      for (let r = 0; r < 5; r++) await decide(`s:heavy-${i}`, [heavy]);
    }
    const v = await decide("s:offender", [one], blocking);
    expect(v.status).toBe("blocked");
  });

  it("bounds the insurance limiter the same way", async () => {
    const clock = new ManualClock(START);
    const insurance = new InsuranceLimiter(clock, 0.5, { maxEntries: 500, maxBytes: 1024 ** 3 });
    for (let i = 0; i < 5000; i++) {
      await insurance.decide({
        items: [{ tag: `s:${i}`, limit: perMinute }],
        cost: 1,
        blockTags: [],
      });
    }
    expect(insurance.usage().entries).toBeLessThanOrEqual(500);
    expect(insurance.usage().evictions).toBeGreaterThan(4000);
  });
});
