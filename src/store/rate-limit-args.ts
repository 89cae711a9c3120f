import type { CreditPlan } from "../policy/policy.js";
import type { LimitItem } from "../ratelimit/rate-limit-store.js";
import { REFILL_CODE } from "./calendar-window.js";

/**
 * A credit plan as the scripts take it (see rate-limit-n.lua's header):
 * amount, refill × 100 + refill day, and the cap (-1: replace mode).
 */
export function creditArgs(plan: CreditPlan): [number, number, number] {
  return [
    plan.amount,
    REFILL_CODE[plan.refill] * 100 + plan.refillDay,
    plan.mode === "add" ? plan.cap : -1,
  ];
}

/** A quota window as the scripts take it. */
export const WINDOW_CODE = { day: 1, week: 2, month: 3 } as const;

/** Flat script arguments for one set of items (shared by Redis and tests). */
export function limitArgs(items: readonly LimitItem[]): (string | number)[] {
  const out: (string | number)[] = [];
  const windowCode = WINDOW_CODE;
  for (const { limit: l, cost } of items) {
    if (l.kind === "credits" && l.credits) {
      const [amount, code, cap] = creditArgs(l.credits);
      out.push(3, 0, amount, code, cap, cost ?? 0);
      continue;
    }
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
