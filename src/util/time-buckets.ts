/** UTC minute and hour buckets (usage counters are kept per minute and per hour). */

/** A bucket width. */
export type TimeBucket = "minute" | "hour";

/** One minute, ms. */
export const MINUTE_MS = 60_000;
/** One hour, ms. */
export const HOUR_MS = 3_600_000;

/** Aligns `ms` down to the start of its bucket. */
export function bucketStart(ms: number, bucket: TimeBucket): number {
  const w = bucket === "minute" ? MINUTE_MS : HOUR_MS;
  return Math.floor(ms / w) * w;
}
