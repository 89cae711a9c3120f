/**
 * UTC calendar windows for quotas, the same arithmetic as rate-limit-n.lua:
 * days, ISO weeks (starting Monday) and months.
 */

const DAY = 86_400_000;

/** Days since 1970-01-01 → [year, month 1..12] (Howard Hinnant's civil_from_days). */
function civil(days: number): [number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m];
}

/** The window containing `nowMs`: an id (changes when the window does) and its end (epoch ms). */
export function calendarWindow(
  kind: "day" | "week" | "month",
  nowMs: number,
): { id: number; end: number } {
  const day = Math.floor(nowMs / DAY);
  if (kind === "day") return { id: day, end: (day + 1) * DAY };
  if (kind === "week") {
    // 1970-01-01 was a Thursday; ISO weeks start on Monday.
    const w = Math.floor((day + 3) / 7);
    return { id: w, end: ((w + 1) * 7 - 3) * DAY };
  }
  const [y, m] = civil(day);
  const end = m === 12 ? Date.UTC(y + 1, 0, 1) : Date.UTC(y, m, 1);
  return { id: y * 12 + m, end };
}

/** Refill codes of a credit plan, as rate-limit-n.lua and credits-adjust-1.lua take them. */
export const REFILL_CODE = { none: 0, daily: 1, monthly: 2 } as const;

/**
 * The credit refill period containing `nowMs`: an id that grows by one per
 * period (0 without refill; the UTC day number when daily; when monthly, the
 * month id y × 12 + m of the day `refillDay − 1` days earlier, so a period
 * runs from one month's `refillDay` to the next's) and the next refill (epoch
 * ms; undefined without refill). `refillDay` is 1..28, a day every month has.
 */
export function creditPeriod(
  refill: keyof typeof REFILL_CODE,
  refillDay: number,
  nowMs: number,
): { id: number; next?: number } {
  const day = Math.floor(nowMs / DAY);
  if (refill === "daily") return { id: day, next: (day + 1) * DAY };
  if (refill === "none") return { id: 0 };
  const [y, m] = civil(day - (refillDay - 1));
  // Date.UTC takes a 0-based month: `m` (1-based) is the month after.
  return { id: y * 12 + m, next: Date.UTC(y, m, refillDay) };
}

/**
 * A balance stored in period `from`, refilled for period `to` (credit periods
 * as creditPeriod numbers them): unchanged without refill or in the same
 * period; replace mode (`cap` < 0) gives `amount`; add mode adds `amount` per
 * period elapsed, up to `cap`, and never lowers a balance a top-up put above
 * it. The same arithmetic as `refilled` in rate-limit-n.lua.
 */
export function refilledBalance(
  amount: number,
  cap: number,
  refill: keyof typeof REFILL_CODE,
  from: number,
  balance: number,
  to: number,
): number {
  if (refill === "none" || to <= from) return balance;
  if (cap < 0) return amount;
  if (balance >= cap) return balance;
  // Compared before multiplying out: k × amount may pass 2^53 after years idle.
  if ((to - from) * amount >= cap - balance) return cap;
  return balance + (to - from) * amount;
}

/**
 * How long an untouched credit balance is kept: two years (every key written
 * has an expiry). A balance forgotten after that starts again at its plan's amount.
 */
export const CREDIT_TTL_MS = 730 * DAY;

/** The highest balance a top-up can reach (well inside 2^53, so sums stay exact). */
export const MAX_CREDIT_BALANCE = 2 ** 52;
