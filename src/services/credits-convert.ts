/**
 * Credits at the API edge: a credit plan and a balance change from their
 * proto form (validated field by field, INVALID_ARGUMENT naming the field),
 * a plan and a balance to their proto form, and a key's credits as GetKey
 * shows them (one read-only store call: nothing is spent or refilled).
 */
import { create } from "@bufbuild/protobuf";
import {
  type CreditPlan as CreditPlanProto,
  CreditRefill,
  CreditRefillMode,
  type CreditsChange,
  type CreditsState as CreditsStateProto,
  CreditsStateSchema,
} from "../gen/tollgate/v1/credits_pb.js";
import type { KeyRecord } from "../keys/key-record.js";
import { type CreditPlan, creditLimit, creditPlanFor } from "../policy/policy.js";
import type { CreditChange } from "../ratelimit/rate-limit-store.js";
import { type CreditsState, refillTime } from "../ratelimit/rate-limiter.js";
import { subjectTag } from "../subjects/subject-tag.js";
import { INPUT_BOUNDS as B } from "../util/input-bounds.js";
import { creditPlanToProto, ts } from "./convert.js";
import type { ServiceDeps } from "./service-deps.js";
import type { Violations } from "./validation.js";

const REFILL_OF: Record<number, CreditPlan["refill"]> = {
  [CreditRefill.UNSPECIFIED]: "none",
  [CreditRefill.NONE]: "none",
  [CreditRefill.DAILY]: "daily",
  [CreditRefill.MONTHLY]: "monthly",
};

/**
 * A plan from its proto form, with the policy file's rules: amount and cap
 * 0..maxCredits, refill_day 1..28 and only monthly, mode add only with a
 * refill and a cap ≥ amount, cap only in add mode. Undefined if a field is bad
 * (each recorded in `v` as `<field>.<name>`).
 */
export function creditPlanFromProto(
  v: Violations,
  field: string,
  p: CreditPlanProto,
): CreditPlan | undefined {
  const amount = credits(v, `${field}.amount`, p.amount, 0);
  const refill = REFILL_OF[p.refill];
  if (refill === undefined) v.add(`${field}.refill`, "must be NONE, DAILY or MONTHLY");
  const mode =
    p.mode === CreditRefillMode.ADD
      ? "add"
      : p.mode === CreditRefillMode.UNSPECIFIED || p.mode === CreditRefillMode.REPLACE
        ? "replace"
        : undefined;
  if (mode === undefined) v.add(`${field}.mode`, "must be REPLACE or ADD");
  if (p.refillDay !== 0 && refill !== "monthly")
    v.add(`${field}.refill_day`, "only a MONTHLY refill takes a refill_day");
  else if (p.refillDay > B.creditRefillDayMax)
    v.add(`${field}.refill_day`, `must be 1..${B.creditRefillDayMax} (every month has it)`);
  if (mode === "add" && refill === "none")
    v.add(`${field}.mode`, "ADD needs a DAILY or MONTHLY refill");
  let cap = amount;
  if (mode === "add") {
    if (p.cap === 0n)
      v.add(`${field}.cap`, "ADD needs a cap: the most a refill brings the balance to");
    else cap = credits(v, `${field}.cap`, p.cap, amount);
  } else if (p.cap !== 0n) v.add(`${field}.cap`, "only mode ADD takes a cap");
  // Any violation fails the call: no plan then.
  if (!v.ok || refill === undefined || mode === undefined) return undefined;
  return { amount, refill, refillDay: p.refillDay || 1, mode, cap };
}

/** A balance change from its proto form (top_up 1..max, set 0..max), or undefined (recorded in `v`). */
export function creditsChangeFromProto(
  v: Violations,
  field: string,
  c: CreditsChange | undefined,
): CreditChange | undefined {
  const change = c?.change;
  if (!change || change.case === undefined) {
    v.add(field, "must set top_up or set");
    return undefined;
  }
  const topUp = change.case === "topUp";
  const amount = credits(v, `${field}.${topUp ? "top_up" : "set"}`, change.value, topUp ? 1 : 0);
  return v.ok ? { kind: change.case === "set" ? "set" : "add", amount } : undefined;
}

/** A uint64 of credits within [min, maxCredits], as a number (0 if out of range, recorded). */
function credits(v: Violations, field: string, value: bigint, min: number): number {
  if (value < BigInt(min) || value > BigInt(B.maxCredits)) {
    v.add(field, `must be ${min}..${B.maxCredits}`);
    return 0;
  }
  return Number(value);
}

/** A decision's (or GetKey's) credits in their proto form. */
export function creditsStateToProto(s: CreditsState): CreditsStateProto {
  return create(CreditsStateSchema, {
    plan: creditPlanToProto(s.plan),
    ownPlan: s.own,
    balance: BigInt(s.balance),
    nextRefillTime: ts(s.nextRefillAt),
  });
}

/** The plan that applies to a key, and its credits item (undefined: no plan applies). */
export function keyCreditsItem(d: ServiceDeps, r: KeyRecord) {
  const plan = creditPlanFor(d.policy(), r.tier, r.credits);
  return plan && { plan, item: { tag: subjectTag("key", r.id), limit: creditLimit(plan) } };
}

/**
 * A key's credits as the store has them now, read-only (no refill is written,
 * nothing is spent): the balance a decision would see before its cost.
 */
export async function readKeyCredits(
  d: ServiceDeps,
  r: KeyRecord,
): Promise<CreditsState | undefined> {
  const found = keyCreditsItem(d, r);
  if (!found) return undefined;
  const [o] = await d.rateStore.peek([found.item]);
  if (!o) return undefined;
  return {
    plan: found.plan,
    own: r.credits !== undefined,
    balance: o.remaining,
    ...(found.plan.refill !== "none" && { nextRefillAt: refillTime(d.clock.now(), o.resetMs) }),
  };
}
