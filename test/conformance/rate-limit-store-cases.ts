/**
 * The rate-limit store contract, as one suite every implementation passes:
 * the memory store (manual clock), Redis standalone and a real 3-master Redis
 * Cluster. Time is the harness's: `wait` moves a manual clock or sleeps on real
 * Redis, and `slackMs` bounds how far real elapsed time may move a value.
 *
 * Every case uses fresh subject tags, so cases never share a bucket.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type Blocking,
  type CreditPlan,
  creditLimit,
  type Limit,
} from "../../src/policy/policy.js";
import { MAX_COST, MAX_QUOTA } from "../../src/policy/policy-schema.js";
import type {
  LimitItem,
  LimitOutcome,
  RateLimitStore,
  RateRequest,
  RateVerdict,
} from "../../src/ratelimit/rate-limit-store.js";
import { calendarWindow, creditPeriod } from "../../src/store/calendar-window.js";

/** What a store implementation hands the shared cases. */
export interface RateLimitStoreHarness {
  store: RateLimitStore;
  /** Lets `ms` pass: moves a manual clock, or sleeps on a real store. */
  wait(ms: number): Promise<void>;
  /** "Now" as the store sees it (epoch ms). */
  now(): number;
  /** How far elapsed real time may move a time value (0 with a manual clock). */
  slackMs: number;
  /**
   * Makes it as if `periods` refill periods of a credits item's plan had begun
   * since its balance was last written: moves a manual clock to the refills,
   * or (Redis TIME cannot be moved) rewrites the stored period id that many
   * periods back. The refill itself is the store's own.
   */
  creditPeriodsPass(item: LimitItem, periods: number): Promise<void>;
}

/** A credit plan's limit item (as policy.ts's creditLimit builds it). */
export function creditsLimit(plan: Partial<CreditPlan> & { amount: number }): Limit {
  return creditLimit({ refill: "none", refillDay: 1, mode: "replace", cap: plan.amount, ...plan });
}

/** A rate limit (GCRA): `requests` per `periodMs`, at most `burst` at once. */
export function rateLimit(
  name: string,
  requests: number,
  periodMs: number,
  burst = requests,
  mode: "enforce" | "shadow" = "enforce",
): Limit {
  return {
    name,
    by: "key",
    kind: "rate",
    mode,
    requests,
    periodMs,
    burst,
    bucketId: `${name}.r${requests}p${periodMs}b${burst}`,
  };
}

/** A calendar quota: `requests` per UTC day, week or month. */
export function quotaLimit(
  name: string,
  requests: number,
  window: "day" | "week" | "month",
  mode: "enforce" | "shadow" = "enforce",
): Limit {
  const periodMs = { day: 86_400_000, week: 604_800_000, month: 2_592_000_000 }[window];
  return {
    name,
    by: "key",
    kind: "quota",
    mode,
    requests,
    periodMs,
    burst: requests,
    window,
    bucketId: `${name}.q${requests}${window}`,
  };
}

/** A fresh subject tag (`k:` key, `i:` ip, `s:` subject). */
export function freshTag(kind: "k" | "i" | "s" = "k"): string {
  return `${kind}:${randomUUID()}`;
}

const item = (tag: string, limit: Limit, cost?: number): LimitItem =>
  cost === undefined ? { tag, limit } : { tag, limit, cost };

/** Runs the shared cases against the harness `setup` returns (called per case). */
export function rateLimitStoreCases(
  name: string,
  setup: () => RateLimitStoreHarness | Promise<RateLimitStoreHarness>,
): void {
  describe(`${name}: rate-limit store conformance`, () => {
    const decide = (h: RateLimitStoreHarness, items: LimitItem[], cost = 1, more = {}) =>
      h.store.decide({ items, cost, blockTags: [], ...more } as RateRequest);
    const only = (v: RateVerdict, i = 0): LimitOutcome => v.outcomes[i] as LimitOutcome;
    /** Asserts `actual` is `expected` minus at most the harness slack. */
    const near = (h: RateLimitStoreHarness, actual: number, expected: number) => {
      expect(actual).toBeLessThanOrEqual(expected);
      expect(actual).toBeGreaterThanOrEqual(expected - h.slackMs);
    };

    describe("GCRA rates", () => {
      it("admits exactly the burst at time zero, counting down remaining, then denies", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("five-per-10s", 5, 10_000);
        const remaining: number[] = [];
        for (let i = 0; i < 5; i++) {
          const v = await decide(h, [item(tag, limit)]);
          expect(v.status).toBe("ok");
          expect(only(v).exceeded).toBe(false);
          expect(only(v).retryMs).toBe(0);
          remaining.push(only(v).remaining);
        }
        expect(remaining).toEqual([4, 3, 2, 1, 0]);
        const denied = await decide(h, [item(tag, limit)]);
        expect(denied.status).toBe("limited");
        expect(only(denied).exceeded).toBe(true);
        expect(only(denied).remaining).toBe(0);
        // One request drains in period / requests = 2 s; the full bucket in 10 s.
        near(h, only(denied).retryMs, 2_000);
        near(h, only(denied).resetMs, 10_000);
      });

      it("with a burst above the rate, admits the burst at once and then refills at the rate", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("ten-per-s-burst-3", 10, 1_000, 3);
        for (let i = 0; i < 3; i++) expect((await decide(h, [item(tag, limit)])).status).toBe("ok");
        const denied = await decide(h, [item(tag, limit)]);
        expect(denied.status).toBe("limited");
        near(h, only(denied).retryMs, 100);
        await h.wait(only(denied).retryMs + 5);
        const refilled = await decide(h, [item(tag, limit)]);
        expect(refilled.status).toBe("ok");
        expect(only(refilled).remaining).toBe(0);
        expect((await decide(h, [item(tag, limit)])).status).toBe("limited");
      });

      it("gives every subject its own bucket", async () => {
        const h = await setup();
        const limit = rateLimit("one-per-10s", 1, 10_000);
        const [a, b] = [freshTag(), freshTag()];
        expect((await decide(h, [item(a, limit)])).status).toBe("ok");
        expect((await decide(h, [item(a, limit)])).status).toBe("limited");
        expect((await decide(h, [item(b, limit)])).status).toBe("ok");
      });

      it("admits exactly the burst when 200 callers decide at once", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("fifty-per-min", 50, 60_000);
        const verdicts = await Promise.all(
          Array.from({ length: 200 }, () => decide(h, [item(tag, limit)])),
        );
        expect(verdicts.filter((v) => v.status === "ok")).toHaveLength(50);
        expect(verdicts.filter((v) => v.status === "limited")).toHaveLength(150);
      });
    });

    describe("calendar quotas", () => {
      it("admits exactly N in the window and says when the window ends", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = quotaLimit("three-a-day", 3, "day");
        const remaining: number[] = [];
        for (let i = 0; i < 3; i++) {
          const v = await decide(h, [item(tag, limit)]);
          expect(v.status).toBe("ok");
          remaining.push(only(v).remaining);
        }
        expect(remaining).toEqual([2, 1, 0]);
        const before = h.now();
        const denied = await decide(h, [item(tag, limit)]);
        expect(denied.status).toBe("limited");
        expect(only(denied)).toMatchObject({ exceeded: true, remaining: 0 });
        const untilMidnight = calendarWindow("day", before).end - before;
        near(h, only(denied).resetMs, untilMidnight);
        expect(only(denied).retryMs).toBe(only(denied).resetMs);
      });

      it("counts weekly and monthly windows to their UTC ends", async () => {
        const h = await setup();
        const now = h.now();
        for (const w of ["week", "month"] as const) {
          const v = await decide(h, [item(freshTag(), quotaLimit(`two-a-${w}`, 2, w))]);
          expect(only(v).remaining).toBe(1);
          near(h, only(v).resetMs, calendarWindow(w, now).end - now);
        }
      });
    });

    describe("limits of 0 and costs", () => {
      it("a limit of 0 always denies and never frees up", async () => {
        const h = await setup();
        for (const limit of [
          rateLimit("zero-rate", 0, 1_000),
          quotaLimit("zero-quota", 0, "day"),
        ]) {
          const tag = freshTag();
          for (let i = 0; i < 2; i++) {
            const v = await decide(h, [item(tag, limit)]);
            expect(v.status).toBe("limited");
            expect(only(v)).toMatchObject({ exceeded: true, remaining: 0, retryMs: -1 });
          }
        }
      });

      it("a rate with burst 0 always denies", async () => {
        const h = await setup();
        const v = await decide(h, [item(freshTag(), rateLimit("no-burst", 10, 1_000, 0))]);
        expect(v.status).toBe("limited");
        expect(only(v)).toMatchObject({ exceeded: true, remaining: 0, retryMs: -1 });
      });

      it("denies a cost above what remains without charging it; a cost that fits then passes", async () => {
        const h = await setup();
        const cases = [rateLimit("ten-per-10s", 10, 10_000), quotaLimit("ten-a-day", 10, "day")];
        for (const limit of cases) {
          const tag = freshTag();
          expect(only(await decide(h, [item(tag, limit)], 7)).remaining).toBe(3);
          const denied = await decide(h, [item(tag, limit)], 7);
          expect(denied.status).toBe("limited");
          expect(only(denied)).toMatchObject({ exceeded: true, remaining: 3 });
          // Rate: 4 of the 7 must drain first, at 1 per second.
          if (limit.kind === "rate") near(h, only(denied).retryMs, 4_000);
          const fits = await decide(h, [item(tag, limit)], 3);
          expect(fits.status).toBe("ok");
          expect(only(fits).remaining).toBe(0);
        }
      });

      it("a cost above the limit itself can never succeed (retry -1) and charges nothing", async () => {
        const h = await setup();
        for (const limit of [
          rateLimit("five-per-10s", 5, 10_000),
          quotaLimit("five-a-day", 5, "day"),
        ]) {
          const tag = freshTag();
          const v = await decide(h, [item(tag, limit)], 6);
          expect(v.status).toBe("limited");
          expect(only(v).retryMs).toBe(-1);
          expect(only(v).remaining).toBe(5);
          expect(only(await decide(h, [item(tag, limit)], 5)).remaining).toBe(0);
        }
      });

      it("a limit's own cost wins over the request's", async () => {
        const h = await setup();
        const tag = freshTag();
        const v = await decide(
          h,
          [item(tag, rateLimit("r", 10, 10_000), 4), item(tag, quotaLimit("q", 10, "day"))],
          2,
        );
        expect(v.outcomes.map((o) => o.remaining)).toEqual([6, 8]);
      });
    });

    describe("all or nothing", () => {
      it("when one limit denies, no other limit of the decision is charged (two subjects, two slots)", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const perKey = rateLimit("per-key", 5, 10_000);
        const daily = quotaLimit("daily", 5, "day");
        const perIp = rateLimit("per-ip", 1, 10_000);
        const all = [item(key, perKey), item(key, daily), item(ip, perIp)];
        const first = await decide(h, all);
        expect(first.status).toBe("ok");
        expect(first.outcomes.map((o) => o.remaining)).toEqual([4, 4, 0]);
        for (let i = 0; i < 3; i++) {
          const v = await decide(h, all);
          expect(v.status).toBe("limited");
          expect(v.outcomes[2]?.exceeded).toBe(true);
        }
        // Only the first decision was charged to the key's limits.
        const after = await decide(h, [item(key, perKey), item(key, daily)]);
        expect(after.outcomes.map((o) => o.remaining)).toEqual([3, 3]);
      });

      it("when the first subject's limit denies, the second subject is not charged", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const perKey = rateLimit("per-key", 1, 10_000);
        const perIp = quotaLimit("per-ip", 5, "day");
        expect((await decide(h, [item(key, perKey), item(ip, perIp)])).status).toBe("ok");
        for (let i = 0; i < 3; i++)
          expect((await decide(h, [item(key, perKey), item(ip, perIp)])).status).toBe("limited");
        expect(only(await decide(h, [item(ip, perIp)])).remaining).toBe(3);
      });

      it("shadow limits never deny but report what they would have denied", async () => {
        const h = await setup();
        const tag = freshTag();
        const shadow = rateLimit("shadow-one", 1, 10_000, 1, "shadow");
        const enforce = rateLimit("enforce-five", 5, 10_000);
        const verdicts: RateVerdict[] = [];
        for (let i = 0; i < 3; i++)
          verdicts.push(await decide(h, [item(tag, shadow), item(tag, enforce)]));
        expect(verdicts.map((v) => v.status)).toEqual(["ok", "ok", "ok"]);
        expect(verdicts.map((v) => v.outcomes[0]?.exceeded)).toEqual([false, true, true]);
        expect(verdicts.map((v) => v.outcomes[1]?.remaining)).toEqual([4, 3, 2]);
      });
    });

    describe("remaining on a denial", () => {
      // Periods of an hour: a request drains in 15 min or more, so real time
      // elapsed during a case never changes a floor()ed remaining.
      const hour = 3_600_000;

      it("a rate limit's denial charges nothing: every limit reports what is available now", async () => {
        const h = await setup();
        const tag = freshTag();
        const tight = rateLimit("tight", 4, hour);
        const daily = quotaLimit("daily", 1_000, "day");
        const wide = rateLimit("wide", 100, hour);
        // Request cost 2; `wide` charges its own cost of 5.
        const all = [item(tag, tight), item(tag, daily), item(tag, wide, 5)];
        const remaining = (v: RateVerdict) => v.outcomes.map((o) => o.remaining);
        // Allowed decisions report remaining after their charge.
        expect(remaining(await decide(h, all, 2))).toEqual([2, 998, 95]);
        expect(remaining(await decide(h, all, 2))).toEqual([0, 996, 90]);
        for (let i = 0; i < 2; i++) {
          const denied = await decide(h, all, 2);
          expect(denied.status).toBe("limited");
          expect(denied.outcomes.map((o) => o.exceeded)).toEqual([true, false, false]);
          expect(remaining(denied)).toEqual([0, 996, 90]);
          // The limits that did not deny would admit this cost now.
          expect(denied.outcomes.map((o) => o.retryMs).slice(1)).toEqual([0, 0]);
          // Reset is the bucket's too, without this request: 10 requests of
          // 36 s each are pending on `wide`, not 15.
          near(h, only(denied, 2).resetMs, 360_000);
        }
        // The next allowed request shows the denials took nothing.
        const next = await decide(h, [item(tag, daily), item(tag, wide, 5)], 2);
        expect(next.status).toBe("ok");
        expect(remaining(next)).toEqual([994, 85]);
      });

      it("a quota's denial charges nothing: every limit reports what is available now", async () => {
        const h = await setup();
        const tag = freshTag();
        const quota = quotaLimit("five-a-day", 5, "day");
        const hourly = rateLimit("hourly", 100, hour);
        const weekly = quotaLimit("weekly", 50, "week");
        // Request cost 3; `weekly` charges its own cost of 4.
        const all = [item(tag, hourly), item(tag, quota), item(tag, weekly, 4)];
        const first = await decide(h, all, 3);
        expect(first.status).toBe("ok");
        expect(first.outcomes.map((o) => o.remaining)).toEqual([97, 2, 46]);
        const denied = await decide(h, all, 3);
        expect(denied.status).toBe("limited");
        expect(denied.outcomes.map((o) => [o.exceeded, o.remaining])).toEqual([
          [false, 97],
          [true, 2],
          [false, 46],
        ]);
        // The quota's window end is its reset whether charged or not.
        expect(only(denied, 1).retryMs).toBe(only(denied, 1).resetMs);
        const next = await decide(h, [item(tag, hourly), item(tag, weekly, 4)], 3);
        expect(next.outcomes.map((o) => o.remaining)).toEqual([94, 42]);
        // And the quota still holds the 2 it reported.
        expect(only(await decide(h, [item(tag, quota)], 2)).remaining).toBe(0);
      });

      it("across subjects (one Cluster slot each), a denial reports every other subject's limits as before the request", async () => {
        const h = await setup();
        const noBlocks: Blocking = {
          by: new Set(["key", "ip", "subject"]),
          after: 1_000,
          withinMs: 10_000,
          durationMs: 1_000,
          factor: 1,
          maxDurationMs: 1_000,
          forgetAfterMs: 10_000,
        };
        // On Cluster the subjects run one slot at a time, block tags first:
        // without blocking the key is charged (then refunded) before the ip
        // denies; with the ip as the first block tag it denies before the
        // others are looked at. Either way the outcome must be the same.
        const variants = [
          { name: "key charged, then refunded", more: () => ({ blockTags: [] }) },
          {
            name: "ip first, others after",
            more: (ip: string, sub: string) => ({ blockTags: [ip, sub], blocking: noBlocks }),
          },
        ];
        for (const variant of variants) {
          const key = freshTag("k");
          const ip = freshTag("i");
          const sub = freshTag("s");
          const more = variant.more(ip, sub);
          const all = [
            item(key, rateLimit("per-key", 10, hour)),
            item(key, quotaLimit("key-daily", 100, "day")),
            item(ip, quotaLimit("ip-daily", 4, "day")),
            item(sub, rateLimit("per-subject", 20, hour), 2),
          ];
          const first = await decide(h, all, 3, more);
          expect(first.status, variant.name).toBe("ok");
          expect(
            first.outcomes.map((o) => o.remaining),
            variant.name,
          ).toEqual([7, 97, 1, 18]);
          const denied = await decide(h, all, 3, more);
          expect(denied.status, variant.name).toBe("limited");
          expect(
            denied.outcomes.map((o) => [o.exceeded, o.remaining]),
            variant.name,
          ).toEqual([
            [false, 7],
            [false, 97],
            [true, 1],
            [false, 18],
          ]);
          const next = await decide(h, [all[0], all[1], all[3]] as LimitItem[], 3);
          expect(next.status, variant.name).toBe("ok");
          expect(
            next.outcomes.map((o) => o.remaining),
            variant.name,
          ).toEqual([4, 94, 16]);
        }
      });
    });

    describe("peek (read-only)", () => {
      it("reads every bucket as it stands, across subjects, and charges nothing", async () => {
        const h = await setup();
        const [a, b] = [freshTag(), freshTag("i")];
        const rate = rateLimit("peek-rate", 5, 60_000);
        const quota = quotaLimit("peek-quota", 10, "day");
        const items = [item(a, rate), item(a, quota), item(b, quota)];
        const fresh = await h.store.peek(items);
        expect(fresh.map((o) => o.remaining)).toEqual([5, 10, 10]);
        expect(fresh.every((o) => !o.exceeded)).toBe(true);
        for (let i = 0; i < 3; i++) await decide(h, [item(a, rate), item(a, quota)]);
        // Peeking many times charges nothing: the numbers stay where the decisions left them.
        for (let i = 0; i < 3; i++) {
          const seen = await h.store.peek(items);
          expect(seen.map((o) => o.remaining)).toEqual([2, 7, 10]);
        }
        // The clock read before the call, as the other cases do: the store's
        // own now is then no earlier, so its reset is no later.
        const before = h.now();
        const quotaSeen = (await h.store.peek([item(a, quota)]))[0] as LimitOutcome;
        near(h, quotaSeen.resetMs, calendarWindow("day", before).end - before);
        const next = await decide(h, [item(a, rate), item(a, quota)]);
        expect(next.outcomes.map((o) => o.remaining)).toEqual([1, 6]);
      });

      it("says a full bucket is exceeded, and places no block", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("peek-one", 1, 60_000);
        expect((await decide(h, [item(tag, limit)])).status).toBe("ok");
        const [o] = await h.store.peek([item(tag, limit)]);
        expect(o?.exceeded).toBe(true);
        expect(o?.remaining).toBe(0);
        expect(await h.store.peek([])).toEqual([]);
        expect((await h.store.listBlocks(100)).map((x) => x.tag)).not.toContain(tag);
      });
    });

    describe("forced charges (usage reports)", () => {
      const force = (
        h: RateLimitStoreHarness,
        items: LimitItem[],
        cost = 1,
        id?: string,
        ttlMs = 60_000,
      ) => h.store.forceCharge({ items, cost, ...(id !== undefined && { once: { id, ttlMs } }) });

      it("charges a rate past its burst without denying; the debt denies the next decision until it drains", async () => {
        const h = await setup();
        const tag = freshTag();
        // 10 per second, burst 10: one unit drains in 100 ms.
        const limit = rateLimit("ten-per-s", 10, 1_000);
        const r = await force(h, [item(tag, limit)], 13);
        expect(r.duplicate).toBe(false);
        const o = r.outcomes[0] as LimitOutcome;
        expect(o.remaining).toBe(0);
        expect(o.exceeded).toBe(true);
        // 13 units of debt on a burst of 10: a request of cost 1 fits once 4 have drained.
        near(h, o.retryMs, 400);
        near(h, o.resetMs, 1_300);
        const denied = await decide(h, [item(tag, limit)]);
        expect(denied.status).toBe("limited");
        expect(only(denied).remaining).toBe(0);
        near(h, only(denied).retryMs, 400);
        await h.wait(only(denied).retryMs + 10);
        expect((await decide(h, [item(tag, limit)])).status).toBe("ok");
        // Forcing never blocks and never counts a denial.
        expect((await h.store.listBlocks(1000)).map((x) => x.tag)).not.toContain(tag);
      });

      it("charges a quota past its limit; the next decision is denied until the window ends", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = quotaLimit("three-a-day", 3, "day");
        expect((await decide(h, [item(tag, limit)])).status).toBe("ok");
        const before = h.now();
        const r = await force(h, [item(tag, limit)], 4);
        const o = r.outcomes[0] as LimitOutcome;
        expect(o).toMatchObject({ exceeded: true, remaining: 0 });
        near(h, o.retryMs, calendarWindow("day", before).end - before);
        const denied = await decide(h, [item(tag, limit)]);
        expect(denied.status).toBe("limited");
        expect(only(denied).remaining).toBe(0);
        // A forced charge that leaves room says so: the limit is not exceeded.
        const other = freshTag();
        const fits = (await force(h, [item(other, limit)], 2)).outcomes[0] as LimitOutcome;
        expect(fits).toMatchObject({ exceeded: false, remaining: 1, retryMs: 0 });
      });

      it("charges every item, across subjects, shadow ones too, with each item's own cost", async () => {
        const h = await setup();
        const [a, b] = [freshTag(), freshTag("i")];
        const rate = rateLimit("per-key", 5, 60_000);
        const shadow = rateLimit("shadow", 5, 60_000, 5, "shadow");
        const quota = quotaLimit("per-ip", 10, "day");
        const items = [item(a, rate), item(a, shadow, 2), item(b, quota)];
        const r = await force(h, items, 3);
        expect(r.outcomes.map((o) => o.remaining)).toEqual([2, 3, 7]);
        expect((await h.store.peek(items)).map((o) => o.remaining)).toEqual([2, 3, 7]);
      });

      it("does not charge a limit of 0 and reports it exhausted", async () => {
        const h = await setup();
        const tag = freshTag();
        const r = await force(h, [item(tag, rateLimit("zero", 0, 1_000))], 2);
        expect(r.outcomes[0]?.remaining).toBe(0);
        expect((await decide(h, [item(tag, rateLimit("zero", 0, 1_000))])).status).toBe("limited");
      });

      it("charges an id once: a second report with it charges nothing and says it is a duplicate", async () => {
        const h = await setup();
        const [a, b] = [freshTag(), freshTag("s")];
        const items = [
          item(a, rateLimit("per-key", 10, 60_000)),
          item(b, quotaLimit("q", 10, "day")),
        ];
        const id = randomUUID();
        const first = await force(h, items, 4, id);
        expect(first.duplicate).toBe(false);
        expect(first.outcomes.map((o) => o.remaining)).toEqual([6, 6]);
        const again = await force(h, items, 4, id);
        expect(again.duplicate).toBe(true);
        expect(again.outcomes.map((o) => o.remaining)).toEqual([6, 6]);
        // A duplicate reports, for a request of cost 1, the buckets as they stand.
        expect(again.outcomes.map((o) => [o.exceeded, o.retryMs])).toEqual([
          [false, 0],
          [false, 0],
        ]);
        const debt = [item(freshTag(), rateLimit("debt", 10, 1_000))];
        const debtId = randomUUID();
        const charged = await force(h, debt, 13, debtId);
        const resent = await force(h, debt, 13, debtId);
        near(h, (charged.outcomes[0] as LimitOutcome).retryMs, 400);
        expect(resent.duplicate).toBe(true);
        near(h, (resent.outcomes[0] as LimitOutcome).retryMs, 400);
        expect((await h.store.peek(items)).map((o) => o.remaining)).toEqual([6, 6]);
        // Another id is another report.
        const other = await force(h, items, 1, randomUUID());
        expect(other.duplicate).toBe(false);
        expect(other.outcomes.map((o) => o.remaining)).toEqual([5, 5]);
        // Without an id nothing is remembered: each call charges.
        expect((await force(h, items, 1)).duplicate).toBe(false);
        expect((await force(h, items, 1)).outcomes.map((o) => o.remaining)).toEqual([3, 3]);
      });

      it("remembers an id that charged no limit, and forgets it after its retention", async () => {
        const h = await setup();
        const id = randomUUID();
        expect((await force(h, [], 1, id, 200)).duplicate).toBe(false);
        expect((await force(h, [], 1, id, 200)).duplicate).toBe(true);
        const tag = freshTag();
        const limit = rateLimit("slow", 10, 3_600_000);
        const id2 = randomUUID();
        await force(h, [item(tag, limit)], 1, id2, 200);
        await h.wait(300);
        expect((await force(h, [], 1, id, 200)).duplicate).toBe(false);
        const later = await force(h, [item(tag, limit)], 1, id2, 200);
        expect(later.duplicate).toBe(false);
        expect(later.outcomes[0]?.remaining).toBe(8);
      });
    });

    describe("large values", () => {
      it("a quota near MAX_QUOTA counts exactly", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = quotaLimit("huge", MAX_QUOTA, "month");
        expect(only(await decide(h, [item(tag, limit)], MAX_COST)).remaining).toBe(
          MAX_QUOTA - MAX_COST,
        );
        // The store takes any cost: fill it to 5 below the top.
        expect(only(await decide(h, [item(tag, limit)], MAX_QUOTA - MAX_COST - 5)).remaining).toBe(
          5,
        );
        const over = await decide(h, [item(tag, limit)], 6);
        expect(over.status).toBe("limited");
        expect(only(over).remaining).toBe(5);
        expect(only(await decide(h, [item(tag, limit)], 5)).remaining).toBe(0);
        expect((await decide(h, [item(tag, limit)], 1)).status).toBe("limited");
      });

      it("a rate whose burst × period is just under 2^53 counts exactly", async () => {
        const h = await setup();
        const cases = [
          { periodMs: 1_000, burst: Math.floor(Number.MAX_SAFE_INTEGER / 1_000) },
          {
            periodMs: 366 * 86_400_000,
            burst: Math.floor(Number.MAX_SAFE_INTEGER / (366 * 86_400_000)),
          },
        ];
        for (const { periodMs, burst } of cases) {
          expect(burst * periodMs).toBeLessThan(2 ** 53);
          const tag = freshTag();
          // 1 request per period: draining a whole request takes `periodMs`.
          const limit = rateLimit("huge-burst", 1, periodMs, burst);
          expect(only(await decide(h, [item(tag, limit)], burst - 3)).remaining).toBe(3);
          const over = await decide(h, [item(tag, limit)], 4);
          expect(over.status).toBe("limited");
          expect(only(over).remaining).toBe(3);
          near(h, only(over).retryMs, periodMs);
          expect(only(await decide(h, [item(tag, limit)], 3)).remaining).toBe(0);
          expect((await decide(h, [item(tag, limit)], 1)).status).toBe("limited");
        }
      });
    });

    describe("blocks", () => {
      const blocking = (o: Partial<Blocking> = {}): Blocking => ({
        by: new Set(["key", "ip", "subject"]),
        after: 2,
        withinMs: 10_000,
        durationMs: 300,
        factor: 2,
        maxDurationMs: 1_000,
        forgetAfterMs: 60_000,
        ...o,
      });
      /** Burst 1, refilling every 100 ms: the second request at once is denied. */
      const tight = rateLimit("tight", 10, 1_000, 1);
      /** Decides until a block is placed; returns the new block's duration. */
      const offend = async (h: RateLimitStoreHarness, tags: string[], b: Blocking) => {
        for (let i = 0; i < 10; i++) {
          const v = await h.store.decide({
            items: [item(tags[0] as string, tight)],
            cost: 1,
            blockTags: tags,
            blocking: b,
          });
          if (v.newBlocks.length > 0) return v;
        }
        throw new Error("no block placed after 10 decisions");
      };

      it("blocks after `after` denials, refuses without charging, and lets go when the block ends", async () => {
        const h = await setup();
        const tag = freshTag();
        const b = blocking();
        const daily = quotaLimit("daily", 100, "day");
        const req = {
          items: [item(tag, tight), item(tag, daily)],
          cost: 1,
          blockTags: [tag],
          blocking: b,
        };
        expect((await h.store.decide(req)).status).toBe("ok");
        const d1 = await h.store.decide(req);
        expect(d1.status).toBe("limited");
        expect(d1.newBlocks).toEqual([]);
        const d2 = await h.store.decide(req);
        expect(d2.status).toBe("limited");
        expect(d2.newBlocks).toEqual([{ tag, durationMs: 300 }]);
        await h.wait(150);
        for (let i = 0; i < 3; i++) {
          const blocked = await h.store.decide(req);
          expect(blocked.status).toBe("blocked");
          expect(blocked.blockedTag).toBe(tag);
          near(h, blocked.blockMs, 150);
        }
        await h.wait(160);
        const free = await h.store.decide(req);
        expect(free.status).toBe("ok");
        // Only the two admitted decisions used the quota.
        expect(free.outcomes[1]?.remaining).toBe(98);
      });

      it("forgets denials older than `within`", async () => {
        const h = await setup();
        const tag = freshTag();
        const b = blocking({ withinMs: 200 });
        const req = {
          items: [item(tag, rateLimit("slow", 1, 10_000))],
          cost: 1,
          blockTags: [tag],
          blocking: b,
        };
        await h.store.decide(req);
        expect((await h.store.decide(req)).newBlocks).toEqual([]);
        await h.wait(220);
        expect((await h.store.decide(req)).newBlocks).toEqual([]);
        expect((await h.store.decide(req)).newBlocks).toEqual([{ tag, durationMs: 300 }]);
      });

      it("escalates by factor per repeat offence, capped at max, and lists the level", async () => {
        const h = await setup();
        const tag = freshTag();
        const b = blocking();
        const durations: number[] = [];
        const levels: number[] = [];
        for (let i = 0; i < 4; i++) {
          const v = await offend(h, [tag], b);
          durations.push(v.newBlocks[0]?.durationMs ?? 0);
          const listed = (await h.store.listBlocks(1000)).find((x) => x.tag === tag);
          levels.push(listed?.level ?? 0);
          // Lifting keeps the offence level, so the next offence escalates.
          expect(await h.store.liftBlock(tag)).toBe(true);
          await h.wait(110); // let the burst-1 bucket refill
        }
        expect(durations).toEqual([300, 600, 1_000, 1_000]);
        expect(levels).toEqual([1, 2, 3, 4]);
      });

      it("an offender is forgotten after `forget_after` without a block", async () => {
        const h = await setup();
        const tag = freshTag();
        const b = blocking({ durationMs: 100, forgetAfterMs: 150 });
        expect((await offend(h, [tag], b)).newBlocks[0]?.durationMs).toBe(100);
        await h.wait(110);
        expect((await offend(h, [tag], b)).newBlocks[0]?.durationMs).toBe(200);
        await h.wait(200 + 150 + 20);
        expect((await offend(h, [tag], b)).newBlocks[0]?.durationMs).toBe(100);
      });

      it("lists active blocks longest-lasting first, at most `limit`, and lifts them", async () => {
        const h = await setup();
        const [a, c] = [freshTag(), freshTag()];
        await offend(h, [a], blocking({ durationMs: 400, maxDurationMs: 400 }));
        await offend(h, [c], blocking({ durationMs: 800, maxDurationMs: 800 }));
        const before = h.now();
        const listed = (await h.store.listBlocks(1000)).filter((x) => x.tag === a || x.tag === c);
        expect(listed.map((x) => x.tag)).toEqual([c, a]);
        expect(listed.map((x) => x.level)).toEqual([1, 1]);
        expect(listed[0]?.until).toBeGreaterThan(before + 800 - 50 - h.slackMs);
        expect(listed[0]?.until).toBeLessThanOrEqual(before + 800 + 50);
        expect(await h.store.listBlocks(1)).toHaveLength(1);
        expect(await h.store.liftBlock(c)).toBe(true);
        expect(await h.store.liftBlock(c)).toBe(false);
        const req = { items: [], cost: 1, blockTags: [c], blocking: blocking() };
        expect((await h.store.decide(req)).status).toBe("ok");
        expect((await h.store.listBlocks(1000)).map((x) => x.tag)).not.toContain(c);
      });

      it("a denial counts toward every blocking subject of the decision", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const v = await offend(h, [key, ip], blocking());
        expect(v.newBlocks.map((x) => x.tag).sort()).toEqual([ip, key].sort());
        // The ip is now blocked on its own, whatever key it comes with.
        const other = await h.store.decide({
          items: [item(freshTag("k"), tight)],
          cost: 1,
          blockTags: [freshTag("k"), ip],
          blocking: blocking(),
        });
        expect(other.status).toBe("blocked");
        expect(other.blockedTag).toBe(ip);
      });

      it("placing a block while one is active keeps its escalation level and the later end", async () => {
        const h = await setup();
        const tag = freshTag();
        const b = blocking({ durationMs: 300, maxDurationMs: 600 });
        await offend(h, [tag], b);
        expect(await h.store.liftBlock(tag)).toBe(true);
        await h.wait(110);
        expect((await offend(h, [tag], b)).newBlocks[0]?.durationMs).toBe(600);
        const listed = async () => (await h.store.listBlocks(1000)).find((x) => x.tag === tag);
        // A shorter placement changes nothing: the level-2 block and its end stand.
        const before = h.now();
        const shorter = await h.store.placeBlock(tag, 200);
        expect(shorter).toBeGreaterThan(before + 600 - 50 - h.slackMs);
        expect(await listed()).toMatchObject({ level: 2 });
        expect((await listed())?.until).toBeGreaterThan(before + 600 - 50 - h.slackMs);
        // A longer one extends it, still at level 2, and the index lists the new end.
        const at = h.now();
        const longer = await h.store.placeBlock(tag, 5_000);
        expect(longer).toBeGreaterThan(at + 5_000 - 50 - h.slackMs);
        expect(longer).toBeLessThanOrEqual(at + 5_000 + 50);
        const after = await listed();
        expect(after?.level).toBe(2);
        expect(after?.until).toBeGreaterThan(at + 5_000 - 50 - h.slackMs);
        expect(after?.until).toBeLessThanOrEqual(at + 5_000 + 50);
        await h.wait(700);
        const blocked = await h.store.decide({ items: [], cost: 1, blockTags: [tag], blocking: b });
        expect(blocked.status).toBe("blocked");
        expect(await h.store.liftBlock(tag)).toBe(true);
      });

      it("a block placed on a subject without one is level 1, listed, and refuses decisions", async () => {
        const h = await setup();
        const tag = freshTag("i");
        const at = h.now();
        const until = await h.store.placeBlock(tag, 2_000);
        expect(until).toBeGreaterThan(at + 2_000 - 50 - h.slackMs);
        const listed = (await h.store.listBlocks(1000)).find((x) => x.tag === tag);
        expect(listed?.level).toBe(1);
        expect(listed?.until).toBeGreaterThan(at + 2_000 - 50 - h.slackMs);
        const v = await h.store.decide({
          items: [item(tag, tight)],
          cost: 1,
          blockTags: [tag],
          blocking: blocking(),
        });
        expect(v.status).toBe("blocked");
        expect(v.blockedTag).toBe(tag);
      });

      it("placements at once on one subject: the index keeps the latest end", async () => {
        const h = await setup();
        const tag = freshTag();
        const at = h.now();
        await Promise.all([
          h.store.placeBlock(tag, 3_000),
          h.store.placeBlock(tag, 400),
          h.store.placeBlock(tag, 1_000),
        ]);
        const listed = (await h.store.listBlocks(1000)).find((x) => x.tag === tag);
        expect(listed?.level).toBe(1);
        expect(listed?.until).toBeGreaterThan(at + 3_000 - 50 - h.slackMs);
        expect(listed?.until).toBeLessThanOrEqual(at + 3_000 + 50 + h.slackMs);
      });

      it("a block on the second subject refunds what the first subject was charged", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const b = blocking();
        await offend(h, [ip], b);
        const perKey = rateLimit("per-key", 5, 10_000);
        const req = { items: [item(key, perKey)], cost: 1, blockTags: [key, ip], blocking: b };
        for (let i = 0; i < 3; i++) expect((await h.store.decide(req)).status).toBe("blocked");
        expect(only(await decide(h, [item(key, perKey)])).remaining).toBe(4);
      });
    });

    describe("credits", () => {
      const credits = (tag: string, plan: Parameters<typeof creditsLimit>[0], cost?: number) =>
        item(tag, creditsLimit(plan), cost);

      it("starts at the plan's amount, spends each cost, and denies at zero, never going below", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 5 });
        const seen: number[] = [];
        for (let i = 0; i < 2; i++) {
          const v = await decide(h, [c], 2);
          expect(v.status).toBe("ok");
          seen.push(only(v).remaining);
        }
        expect(seen).toEqual([3, 1]);
        // A cost of 2 does not fit a balance of 1: denied, nothing spent, never refilled.
        for (let i = 0; i < 3; i++) {
          const v = await decide(h, [c], 2);
          expect(v.status).toBe("limited");
          expect(only(v)).toEqual({ exceeded: true, remaining: 1, resetMs: 0, retryMs: -1 });
        }
        expect(only(await decide(h, [c], 1))).toMatchObject({ exceeded: false, remaining: 0 });
        const empty = await decide(h, [c], 1);
        expect(empty.status).toBe("limited");
        expect(only(empty).remaining).toBe(0);
      });

      it("spends the item's own cost when it has one, and an amount of 0 always denies", async () => {
        const h = await setup();
        const own = credits(freshTag("k"), { amount: 10 }, 4);
        expect(only(await decide(h, [own], 1)).remaining).toBe(6);
        const zero = credits(freshTag("k"), { amount: 0 });
        expect((await decide(h, [zero])).status).toBe("limited");
      });

      it("a usage report takes the balance into debt without denying; decisions are refused until a refill pays it", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 10, refill: "daily", mode: "add", cap: 30 });
        expect(only(await decide(h, [c], 4)).remaining).toBe(6);
        const once = { id: `r-${Math.random().toString(36).slice(2)}`, ttlMs: 60_000 };
        const r = await h.store.forceCharge({ items: [c], cost: 15, once });
        expect(r.duplicate).toBe(false);
        // 6 - 15 = -9: shown as 0 remaining, exceeded, and charged as a debt.
        expect(r.outcomes[0]).toMatchObject({ exceeded: true, remaining: 0 });
        // The same report id again charges nothing.
        const again = await h.store.forceCharge({ items: [c], cost: 15, once });
        expect(again.duplicate).toBe(true);
        const denied = await decide(h, [c], 1);
        expect(denied.status).toBe("limited");
        expect(only(denied).remaining).toBe(0);
        // One refill (+10) pays the debt of 9 first: 1 left, so a cost of 1 fits, a second does not.
        await h.creditPeriodsPass(c, 1);
        expect(only(await decide(h, [c], 1))).toMatchObject({ exceeded: false, remaining: 0 });
        expect((await decide(h, [c], 1)).status).toBe("limited");
      });

      it("admits exactly the balance when 40 callers decide at once", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 15 });
        const verdicts = await Promise.all(Array.from({ length: 40 }, () => decide(h, [c])));
        expect(verdicts.filter((v) => v.status === "ok")).toHaveLength(15);
        expect(only(await decide(h, [c])).remaining).toBe(0);
      });

      it("credits exhausted: the rate limits of the decision are not charged (other subject too)", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const perKey = rateLimit("per-key", 5, 60_000);
        const perIp = rateLimit("per-ip", 5, 60_000);
        const c = credits(key, { amount: 1 });
        // The ip's slot first, then the key's: on Cluster the ip is refunded.
        expect((await decide(h, [item(ip, perIp), item(key, perKey), c])).status).toBe("ok");
        for (let i = 0; i < 3; i++) {
          const v = await decide(h, [item(ip, perIp), item(key, perKey), c]);
          expect(v.status).toBe("limited");
          expect(v.outcomes.map((o) => o.exceeded)).toEqual([false, false, true]);
          expect(v.outcomes.map((o) => o.remaining)).toEqual([4, 4, 0]);
        }
        const after = await decide(h, [item(ip, perIp), item(key, perKey)]);
        expect(after.outcomes.map((o) => o.remaining)).toEqual([3, 3]);
      });

      it("a rate limit denying (in another slot) leaves the credits uncharged", async () => {
        const h = await setup();
        const key = freshTag("k");
        const ip = freshTag("i");
        const perIp = rateLimit("per-ip", 1, 60_000);
        const c = credits(key, { amount: 10 });
        // The key's slot first (charged), then the ip's denies: the credits come back.
        expect((await decide(h, [c, item(ip, perIp)])).status).toBe("ok");
        for (let i = 0; i < 3; i++) {
          const v = await decide(h, [c, item(ip, perIp)]);
          expect(v.status).toBe("limited");
          expect(only(v)).toMatchObject({ exceeded: false, remaining: 9 });
        }
        expect(only(await decide(h, [c]))).toMatchObject({ exceeded: false, remaining: 8 });
      });

      it("replace: a new period sets the balance back to the amount, once", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 10, refill: "daily" });
        expect(only(await decide(h, [c], 7)).remaining).toBe(3);
        const before = h.now();
        const denied = await decide(h, [c], 5);
        expect(denied.status).toBe("limited");
        // The next refill (UTC midnight) lets a cost of 5 fit: retry then.
        const midnight = creditPeriod("daily", 1, before).next as number;
        near(h, only(denied).resetMs, midnight - before);
        expect(only(denied).retryMs).toBe(only(denied).resetMs);
        await h.creditPeriodsPass(c, 3);
        expect(only(await decide(h, [c], 1)).remaining).toBe(9);
        expect(only(await decide(h, [c], 1)).remaining).toBe(8);
      });

      it("add: a new period adds the amount per period elapsed, up to the cap", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 5, refill: "daily", mode: "add", cap: 12 });
        expect(only(await decide(h, [c], 5)).remaining).toBe(0);
        await h.creditPeriodsPass(c, 1);
        expect(only(await decide(h, [c], 1)).remaining).toBe(4); // 0 + 5 − 1
        await h.creditPeriodsPass(c, 1);
        expect(only(await decide(h, [c], 1)).remaining).toBe(8); // 4 + 5 − 1
        await h.creditPeriodsPass(c, 3);
        expect(only(await decide(h, [c], 1)).remaining).toBe(11); // min(12, 8 + 15) − 1
      });

      it("a cost no refill can cover is never retried; one the refill covers retries at the refill", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 5, refill: "daily", mode: "add", cap: 8 });
        const tooBig = await decide(h, [c], 9);
        expect(only(tooBig)).toMatchObject({ exceeded: true, remaining: 5, retryMs: -1 });
        const fits = await decide(h, [c], 7);
        expect(only(fits).retryMs).toBe(only(fits).resetMs);
        expect(only(fits).retryMs).toBeGreaterThan(0);
      });

      it("refills once when 30 decisions of a new period race", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), {
          amount: 10,
          refill: "monthly",
          refillDay: 15,
          mode: "add",
          cap: 100,
        });
        expect(only(await decide(h, [c], 10)).remaining).toBe(0);
        await h.creditPeriodsPass(c, 2);
        const verdicts = await Promise.all(Array.from({ length: 30 }, () => decide(h, [c])));
        // 0 + 2 × 10 refilled once: exactly 20 admitted, then empty.
        expect(verdicts.filter((v) => v.status === "ok")).toHaveLength(20);
        expect(only(await decide(h, [c])).remaining).toBe(0);
      });

      it("monthly: the next refill is the plan's day of the month, UTC", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 3, refill: "monthly", refillDay: 15 });
        const now = h.now();
        const v = await decide(h, [c]);
        near(h, only(v).resetMs, (creditPeriod("monthly", 15, now).next as number) - now);
        expect(new Date(now + only(v).resetMs + h.slackMs).getUTCDate()).toBe(15);
      });

      it("set and top-up: atomic changes that apply a due refill first", async () => {
        const h = await setup();
        const tag = freshTag("k");
        const c = credits(tag, { amount: 10, refill: "daily", mode: "add", cap: 20 });
        // Nothing stored yet: a top-up adds to the starting amount.
        expect((await h.store.adjustCredits(c, { kind: "add", amount: 5 })).balance).toBe(15);
        expect(only(await decide(h, [c], 15)).remaining).toBe(0);
        await h.creditPeriodsPass(c, 1);
        // The due refill (+10), then the top-up (+3): 13.
        const topped = await h.store.adjustCredits(c, { kind: "add", amount: 3 });
        expect(topped.balance).toBe(13);
        expect(topped.resetMs).toBeGreaterThan(0);
        // The refill was stored with the top-up: it is not applied again.
        expect(only(await decide(h, [c], 1)).remaining).toBe(12);
        const set = await h.store.adjustCredits(c, { kind: "set", amount: 50 });
        expect(set.balance).toBe(50);
        // Above the cap by a top-up or set: a refill never lowers it.
        await h.creditPeriodsPass(c, 1);
        expect(only(await decide(h, [c], 1)).remaining).toBe(49);
        expect((await h.store.adjustCredits(c, { kind: "set", amount: 0 })).balance).toBe(0);
        expect((await decide(h, [c])).status).toBe("limited");
      });

      it("peek shows the balance without spending it", async () => {
        const h = await setup();
        const c = credits(freshTag("k"), { amount: 4 });
        await decide(h, [c]);
        for (let i = 0; i < 2; i++)
          expect((await h.store.peek([c]))[0]).toMatchObject({ exceeded: false, remaining: 3 });
      });
    });

    describe("allotments of batched limits (take, giveBack)", () => {
      it("a rate: takes up to what the bucket has, charged as that many decisions", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("ten-per-minute", 10, 60_000);
        const first = await h.store.take(item(tag, limit), 4);
        expect(first.taken).toBe(4);
        expect(first.outcome).toMatchObject({ exceeded: false, remaining: 6 });
        // Four decisions' worth is charged: a decision now sees 6 left.
        expect(only(await decide(h, [item(tag, limit)])).remaining).toBe(5);
        const rest = await h.store.take(item(tag, limit), 10);
        expect(rest.taken).toBe(5);
        expect(rest.outcome).toMatchObject({ exceeded: true, remaining: 0 });
        expect((await h.store.take(item(tag, limit), 1)).taken).toBe(0);
        expect((await decide(h, [item(tag, limit)])).status).toBe("limited");
      });

      it("a quota: takes up to what the window has left", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = quotaLimit("five-a-day", 5, "day");
        expect((await h.store.take(item(tag, limit), 3)).taken).toBe(3);
        const more = await h.store.take(item(tag, limit), 3);
        expect(more.taken).toBe(2);
        expect(more.outcome).toMatchObject({ exceeded: true, remaining: 0 });
        near(h, more.outcome.resetMs, more.outcome.resetMs);
        expect((await decide(h, [item(tag, limit)])).status).toBe("limited");
      });

      it("giveBack returns unused units, never past a fresh bucket", async () => {
        const h = await setup();
        const tag = freshTag();
        const rate = rateLimit("ten-per-minute", 10, 60_000);
        const quota = quotaLimit("five-a-day", 5, "day");
        await h.store.take(item(tag, rate), 10);
        await h.store.take(item(tag, quota), 5);
        await h.store.giveBack(item(tag, rate), 3);
        await h.store.giveBack(item(tag, quota), 2);
        expect(
          (await h.store.peek([item(tag, rate), item(tag, quota)])).map((o) => o.remaining),
        ).toEqual([3, 2]);
        await h.store.giveBack(item(tag, rate), 50);
        await h.store.giveBack(item(tag, quota), 50);
        expect(
          (await h.store.peek([item(tag, rate), item(tag, quota)])).map((o) => o.remaining),
        ).toEqual([10, 5]);
      });

      it("a denied decision (deny) charges nothing and reports each limit as it stands", async () => {
        const h = await setup();
        const tag = freshTag();
        const limit = rateLimit("ten-per-minute", 10, 60_000);
        await decide(h, [item(tag, limit)]);
        const v = await decide(h, [item(tag, limit)], 1, { deny: true });
        expect(v.status).toBe("limited");
        expect(only(v).remaining).toBe(9);
        expect(only(await decide(h, [item(tag, limit)])).remaining).toBe(8);
      });
    });
  });
}
