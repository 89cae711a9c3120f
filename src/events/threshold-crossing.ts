/**
 * Threshold crossing: which configured percentages of a bucket's capacity one
 * decision crossed. Pure arithmetic over what the decision already returned
 * (remaining before and after its charge), so a decision that crosses nothing
 * costs a few comparisons and no store call.
 *
 * A bucket is anything with a capacity that a decision draws down within a
 * period: a quota limit's calendar window (quotaBucket below), a credit
 * balance until its next refill. Usage is `capacity − remaining`; threshold t
 * (percent) is crossed when usage before the charge was below t % of the
 * capacity and usage after it is at or above. Integer comparisons
 * (`used × 100` against `t × capacity`) keep it exact.
 */
import { calendarWindow } from "../store/calendar-window.js";

/** A bucket a decision drew from, as notifications see it. */
export interface Bucket {
  /** `quota` (a quota limit) or `credits` (a credit balance). */
  kind: "quota" | "credits";
  /** The limit's name (quota) or the balance's name (credits). */
  name: string;
  /** Subject tag of the bucket (`k:key_…`, `o:acme`, …): whose bucket it is. */
  tag: string;
  /** Units the bucket holds when full; 0: no threshold can be crossed. */
  capacity: number;
  /** Units left before this decision's charge. */
  remainingBefore: number;
  /** Units left after it (equal to before when nothing was charged). */
  remainingAfter: number;
  /**
   * True if the decision was refused for lack of room in this bucket: the
   * bucket counts as full (100 %), whatever its remainder (a cost above it).
   */
  refused: boolean;
  /** Identity of the period (window id, refill period): markers are per period. */
  period: string;
  /** When the period ends, epoch ms: its markers expire then. */
  periodEnd: number;
}

/**
 * The thresholds (percent, ascending input) the decision crossed, ascending.
 * A refusal counts as reaching 100 % (only 100 % is crossed by it: a refused
 * request of large cost does not make 90 % used).
 */
export function crossedThresholds(b: Bucket, thresholds: readonly number[]): number[] {
  if (b.capacity <= 0 || thresholds.length === 0) return [];
  if (b.refused) return thresholds.includes(100) ? [100] : [];
  const before = (b.capacity - Math.min(b.capacity, Math.max(0, b.remainingBefore))) * 100;
  const after = (b.capacity - Math.min(b.capacity, Math.max(0, b.remainingAfter))) * 100;
  if (after <= before) return [];
  const out: number[] = [];
  for (const t of thresholds) {
    const at = t * b.capacity;
    if (before < at && after >= at) out.push(t);
  }
  return out;
}

/** What quotaBucket needs of a limit and its outcome in one decision. */
export interface QuotaUse {
  name: string;
  window: "day" | "week" | "month";
  /** The quota: requests per window. */
  capacity: number;
  /** Nominal window length, ms (Limit.periodMs). */
  periodMs: number;
  tag: string;
  /** Units left after the decision (LimitOutcome.remaining). */
  remaining: number;
  /** ms until the window ends (LimitOutcome.resetMs). */
  resetMs: number;
  /** The units this decision charged the bucket (0 when it was refused). */
  charged: number;
  /** This limit refused the decision. */
  exceeded: boolean;
}

/**
 * A quota limit's window as a Bucket. The window is named by the calendar
 * window holding the instant half a period before its end (`now + resetMs`,
 * from the store's clock): replicas whose clocks differ by anything short of
 * half a window name the same one, and the marker expires at its exact end.
 */
export function quotaBucket(q: QuotaUse, now: number): Bucket {
  const w = calendarWindow(q.window, now + q.resetMs - Math.floor(q.periodMs / 2));
  return {
    kind: "quota",
    name: q.name,
    tag: q.tag,
    capacity: q.capacity,
    remainingBefore: q.remaining + q.charged,
    remainingAfter: q.remaining,
    refused: q.exceeded,
    period: `${q.window}${w.id}`,
    periodEnd: w.end,
  };
}
