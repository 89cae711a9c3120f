/** Durations as the policy file (and CLI) write them: `250ms`, `30s`, `5m`, `2h`, `7d`, or seconds. */
import { z } from "zod";

/** Parses a duration into ms; NaN if invalid. A number is seconds. */
export function parseDurationMs(v: string | number): number {
  if (typeof v === "number")
    return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : Number.NaN;
  const m = /^(\d{1,12})(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) return Number.NaN;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "s"];
}

/** A zod schema of a duration between `min` and `max` ms, parsed to ms. */
export const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const ms = parseDurationMs(v);
    if (Number.isNaN(ms) || ms < min || ms > max) {
      ctx.addIssue({
        code: "custom",
        message: `must be a duration like 500ms, 30s, 5m, 2h or 1d, between ${min} ms and ${max} ms`,
      });
      return z.NEVER;
    }
    return ms;
  });
