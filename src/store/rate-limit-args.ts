import type { LimitItem } from "../ratelimit/rate-limit-store.js";

/** Flat script arguments for one set of items (shared by Redis and tests). */
export function limitArgs(items: readonly LimitItem[]): (string | number)[] {
  const out: (string | number)[] = [];
  const windowCode = { day: 1, week: 2, month: 3 } as const;
  for (const { limit: l, cost } of items) {
    out.push(
      l.kind === "rate" ? 1 : 2,
      l.mode === "shadow" ? 1 : 0,
      l.requests,
      l.kind === "rate" ? l.periodMs : windowCode[l.window ?? "day"],
      l.burst,
      cost ?? 0,
    );
  }
  return out;
}
