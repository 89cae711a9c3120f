/**
 * The numbers of a limit from its policy form (a `rate` or a `quota`), shared
 * by the limits of tiers and endpoints (policy.ts) and the buckets of the
 * `rlqs` section (rlqs-rules.ts).
 */

/** Nominal lengths of the calendar windows, ms (headers and bucket ids; the windows themselves are UTC dates). */
export const WINDOW_MS = { day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000 } as const;

/** A limit's kind and numbers. */
export type LimitCore =
  | { kind: "rate"; requests: number; periodMs: number; burst: number }
  | {
      kind: "quota";
      requests: number;
      periodMs: number;
      burst: number;
      window: keyof typeof WINDOW_MS;
    };

/** The core of a rate (burst defaulting to requests) or, without one, of the quota. */
export function limitCore(
  rate: { requests: number; per: number; burst?: number | undefined } | undefined,
  quota: { requests: number; per: keyof typeof WINDOW_MS } | undefined,
): LimitCore {
  if (rate) {
    return {
      kind: "rate",
      requests: rate.requests,
      periodMs: rate.per,
      burst: rate.burst ?? rate.requests,
    };
  }
  const q = quota as NonNullable<typeof quota>;
  return {
    kind: "quota",
    requests: q.requests,
    periodMs: WINDOW_MS[q.per],
    burst: q.requests,
    window: q.per,
  };
}
