/**
 * Threshold crossing (events/threshold-crossing.ts): which percentages one
 * decision crossed, from remaining-before / remaining-after against the
 * bucket's capacity, and how a quota window becomes a bucket whose period
 * every replica names alike.
 */
import { describe, expect, it } from "vitest";
import {
  type Bucket,
  crossedThresholds,
  quotaBucket,
} from "../../src/events/threshold-crossing.js";

const bucket = (before: number, after: number, over: Partial<Bucket> = {}): Bucket => ({
  kind: "quota",
  name: "monthly",
  tag: "k:key_a",
  capacity: 1000,
  remainingBefore: before,
  remainingAfter: after,
  refused: false,
  period: "month1",
  periodEnd: 0,
  ...over,
});
const T = [80, 90, 100];

describe("threshold crossing", () => {
  it("crosses a threshold when usage goes from below it to at or above it", () => {
    expect(crossedThresholds(bucket(201, 200), T)).toEqual([80]);
    expect(crossedThresholds(bucket(201, 199), T)).toEqual([80]);
  });

  it("crosses nothing below, above or exactly after a threshold", () => {
    expect(crossedThresholds(bucket(300, 299), T)).toEqual([]);
    // 800 used before: 80 % was crossed by an earlier decision.
    expect(crossedThresholds(bucket(200, 199), T)).toEqual([]);
    expect(crossedThresholds(bucket(150, 140), T)).toEqual([]);
  });

  it("crosses every threshold a large cost jumps over, ascending", () => {
    expect(crossedThresholds(bucket(500, 0), T)).toEqual([80, 90, 100]);
    expect(crossedThresholds(bucket(500, 0), [80, 100])).toEqual([80, 100]);
  });

  it("reaches 100 % only when the last unit is taken", () => {
    expect(crossedThresholds(bucket(2, 1), T)).toEqual([]);
    expect(crossedThresholds(bucket(1, 0), T)).toEqual([100]);
  });

  it("counts a refusal for lack of room as 100 % only", () => {
    const refused = bucket(150, 150, { refused: true });
    expect(crossedThresholds(refused, T)).toEqual([100]);
    expect(crossedThresholds(refused, [80, 90])).toEqual([]);
  });

  it("is exact for capacities whose percentages are fractions", () => {
    // 3 units: 67 % is crossed at 2.01 units used, i.e. by the third unit.
    const b = (before: number, after: number) => bucket(before, after, { capacity: 3 });
    expect(crossedThresholds(b(2, 1), [67])).toEqual([]);
    expect(crossedThresholds(b(1, 0), [67])).toEqual([67]);
    expect(crossedThresholds(b(3, 2), [33])).toEqual([33]);
  });

  it("never crosses for a bucket of no capacity or a charge of nothing", () => {
    expect(crossedThresholds(bucket(0, 0, { capacity: 0 }), T)).toEqual([]);
    expect(crossedThresholds(bucket(200, 200), T)).toEqual([]);
    expect(crossedThresholds(bucket(201, 200), [])).toEqual([]);
  });

  it("clamps remainders outside 0..capacity (a limit lowered under its bucket)", () => {
    expect(crossedThresholds(bucket(5000, 100), T)).toEqual([80, 90]);
    expect(crossedThresholds(bucket(1, -3), T)).toEqual([100]);
  });
});

describe("a quota window as a bucket", () => {
  const may15 = Date.UTC(2026, 4, 15, 12);
  const june1 = Date.UTC(2026, 5, 1);
  const use = {
    name: "monthly",
    window: "month" as const,
    capacity: 1000,
    periodMs: 30 * 86_400_000,
    tag: "k:key_a",
    remaining: 199,
    resetMs: june1 - may15,
    charged: 2,
    exceeded: false,
  };

  it("adds the charge back for the remainder before the decision", () => {
    const b = quotaBucket(use, may15);
    expect(b).toMatchObject({ remainingBefore: 201, remainingAfter: 199, capacity: 1000 });
    expect(crossedThresholds(b, T)).toEqual([80]);
  });

  it("names the window by the calendar and expires its markers at the window's end", () => {
    const b = quotaBucket(use, may15);
    expect(b.periodEnd).toBe(june1);
    // Two replicas, clocks a minute apart, name the same window.
    const skewed = quotaBucket({ ...use, resetMs: use.resetMs - 60_000 }, may15 + 60_000 + 5000);
    expect(skewed.period).toBe(b.period);
    // The next window is another period.
    const july1 = Date.UTC(2026, 6, 1);
    const next = quotaBucket({ ...use, resetMs: july1 - june1 - 1000 }, june1 + 1000);
    expect(next.period).not.toBe(b.period);
    expect(next.periodEnd).toBe(july1);
  });

  it("names day and week windows too", () => {
    const day = quotaBucket(
      { ...use, window: "day", periodMs: 86_400_000, resetMs: 3_600_000 },
      Date.UTC(2026, 4, 15, 23),
    );
    expect(day.periodEnd).toBe(Date.UTC(2026, 4, 16));
    const week = quotaBucket(
      { ...use, window: "week", periodMs: 7 * 86_400_000, resetMs: 86_400_000 },
      Date.UTC(2026, 4, 17), // a Sunday: the ISO week ends on Monday
    );
    expect(week.periodEnd).toBe(Date.UTC(2026, 4, 18));
  });

  it("marks a refusal by the quota itself", () => {
    const b = quotaBucket({ ...use, remaining: 0, charged: 0, exceeded: true }, may15);
    expect(b.refused).toBe(true);
    expect(crossedThresholds(b, T)).toEqual([100]);
  });
});
