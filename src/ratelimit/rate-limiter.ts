/**
 * The rate-limit step of a decision: which limits apply (precompiled per tier
 * and endpoint when the policy is compiled, then a key's or owner's runtime
 * overrides: limit-override.ts), which subject each bucket belongs to, then
 * one store call that charges all or none. Blocks known locally are
 * answered without the store: `check` does it all, or the decision engine
 * plans, looks up blocks itself (once per request) and charges.
 */
import {
  type CreditPlan,
  creditLimit,
  creditPlanFor,
  type Endpoint,
  type Limit,
  limitsFor,
  type Policy,
} from "../policy/policy.js";
import { beforeDeadline } from "../resilience/caller-deadline.js";
import type { InsuranceLimiter } from "../resilience/insurance-limiter.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import { subjectTag } from "../subjects/subject-tag.js";
import type { Clock } from "../util/clock.js";
import type { BlockBook } from "./block-book.js";
import { OverrideCompiler, type OverrideSources } from "./limit-override.js";
import type {
  ForceChargeVerdict,
  LimitItem,
  LimitOutcome,
  RateLimitStore,
  RateRequest,
  RateVerdict,
} from "./rate-limit-store.js";
import { rateLimitHeaders } from "./ratelimit-headers.js";

/** Who and what a decision is about. Empty strings mean "not given". */
export interface RateInput {
  tier: string;
  keyId: string;
  owner: string;
  /** The client IP, already normalised (keys/ip-rules.ts normaliseIp), or "". */
  clientIp: string;
  subject: string;
  endpoint: Endpoint | undefined;
  /** Request cost; 0 means the endpoint's (or the policy default) cost. */
  cost: number;
  /** The key's and its owner's limit overrides; undefined: none (the policy's limits as they are). */
  overrides?: OverrideSources;
  /** The key's own credit plan (wins over its tier's); only with a key id. */
  credits?: CreditPlan;
}

/** A key's credit balance as a decision left it. */
export interface CreditsState {
  /** The plan that applied: the key's own, or its tier's. */
  plan: CreditPlan;
  /** True if the plan is the key's own. */
  own: boolean;
  /** The balance after the decision (this request's cost spent only if it was allowed). */
  balance: number;
  /** Epoch ms of the next refill; undefined: the plan never refills. */
  nextRefillAt?: number;
}

/** One limit's state in a decision. */
export interface LimitState {
  limit: Limit;
  outcome: LimitOutcome;
}

/** A decision. */
export interface RateDecision {
  allowed: boolean;
  /** CREDITS_EXHAUSTED: the key's credit balance cannot pay the cost (wins over RATE_LIMITED). */
  reason: "OK" | "RATE_LIMITED" | "CREDITS_EXHAUSTED" | "BLOCKED";
  /** Every limit of the decision, the credit balance (kind `credits`) last when there is one. */
  limits: LimitState[];
  /** The key's credit balance, when a credit plan applied and the store was asked. */
  credits?: CreditsState;
  /** Index into `limits` of the deciding limit. */
  deciding?: number;
  retryAfterMs?: number;
  blockedUntil?: number;
  headers: [string, string][];
  /** Shadow limits that would have denied. */
  shadowExceeded: Limit[];
  /**
   * Shadow limits skipped because the request lacks their dimension (e.g. a
   * `by: ip` shadow limit without a client IP): shadow never denies and never fails.
   */
  shadowSkipped: Limit[];
  /** Blocks this decision placed. */
  newBlocks: { tag: string; until: number }[];
  /** True if taken by the local insurance limiter (store unreachable, fail open). */
  decidedLocally?: boolean;
  /** The cost charged to each limit when allowed (unset when no store decision was taken). */
  cost?: number;
}

/** The limits one request is decided by, and their buckets. */
export interface RatePlan {
  /** The policy the plan was made from (a reload between plan and charge changes nothing). */
  policy: Policy;
  items: LimitItem[];
  /** Shadow limits the request lacks the dimension of. */
  shadowSkipped: Limit[];
}

/** A limit needs a dimension the request did not give. */
export interface MissingDimension {
  missing: "key_id" | "client_ip" | "subject";
  limit: string;
}

/** Options of RateLimiter. */
export interface RateLimiterOptions {
  store: RateLimitStore;
  clock: Clock;
  policy: () => Policy;
  blocks: BlockBook;
  /** The fail mode of an endpoint (undefined: a request matching none). */
  failMode: (endpoint: Endpoint | undefined) => "open" | "closed";
  /** Decides when the store is unreachable and the endpoint fails open. */
  insurance: InsuranceLimiter;
}

/** Takes rate-limit decisions. Throws only if the store fails. */
export class RateLimiter {
  private readonly overrides = new OverrideCompiler();
  /** One credits limit per plan object (plans live as long as their policy or key record). */
  private readonly creditLimits = new WeakMap<CreditPlan, Limit>();

  constructor(private readonly o: RateLimiterOptions) {}

  /** Decides and charges: plan, a block known locally, else one store decision. */
  async check(input: RateInput): Promise<RateDecision | MissingDimension> {
    const plan = this.plan(input);
    if ("missing" in plan) return plan;
    const known = this.o.blocks.find(blockSubjects(input));
    return known ? this.blocked(plan, known.until) : this.charge(input, plan);
  }

  /**
   * The limits that apply and each one's bucket; a missing dimension of an
   * enforced limit is the caller's mistake, of a shadow limit a skip.
   */
  plan(input: RateInput): RatePlan | MissingDimension {
    const policy = this.o.policy();
    const items: LimitItem[] = [];
    const shadowSkipped: Limit[] = [];
    const base = limitsFor(policy, input.tier, input.endpoint);
    // Only a key or owner with overrides pays for them (memoised: see OverrideCompiler).
    const limits = input.overrides
      ? this.overrides.apply(base, input.overrides, this.o.clock.now())
      : base;
    for (const limit of limits) {
      const tag = tagFor(limit, input);
      if (typeof tag === "string") items.push({ tag, limit });
      else if (limit.mode !== "shadow") return { missing: tag.missing, limit: limit.name };
      else shadowSkipped.push(limit);
    }
    const credits = this.creditsPlan(policy, input);
    if (credits)
      items.push({ tag: subjectTag("key", input.keyId), limit: this.creditLimit(credits) });
    return { policy, items, shadowSkipped };
  }

  /**
   * The credit plan of a request: a key's own, else its tier's (the default
   * tier's when its tier left the policy, as for limits). None without a key:
   * a balance belongs to a key.
   */
  creditsPlan(policy: Policy, input: Pick<RateInput, "keyId" | "tier" | "credits">) {
    return input.keyId ? creditPlanFor(policy, input.tier, input.credits) : undefined;
  }

  /**
   * The credits item of a key (its own plan, else its tier's, in the current
   * policy), or undefined when no plan applies. For doors that name their
   * limits themselves (Envoy ShouldRateLimit).
   */
  creditsItem(key: { id: string; tier: string; credits?: CreditPlan }): LimitItem | undefined {
    const plan = creditPlanFor(this.o.policy(), key.tier, key.credits);
    return plan && { tag: subjectTag("key", key.id), limit: this.creditLimit(plan) };
  }

  /** A decision's credits state from the outcome of a credits item (see creditsItem). */
  creditsState(
    item: LimitItem,
    outcome: LimitOutcome,
    own: CreditPlan | undefined,
  ): CreditsState | undefined {
    if (item.limit.kind !== "credits") return undefined;
    return creditsOf(
      { limit: item.limit, outcome },
      item.limit.credits === own,
      this.o.clock.now(),
    );
  }

  /** The limit item standing for `plan` (one object per plan). */
  creditLimit(plan: CreditPlan): Limit {
    let l = this.creditLimits.get(plan);
    if (!l) {
      l = creditLimit(plan);
      this.creditLimits.set(plan, l);
    }
    return l;
  }

  /** One store decision over the plan's items (none needed if nothing applies). */
  async charge(
    input: RateInput,
    plan: RatePlan,
    /** When the store call must give up (caller-deadline.ts); undefined: its budget. */
    deadline?: number,
  ): Promise<RateDecision> {
    const { policy, items } = plan;
    const blockTags: string[] = [];
    if (policy.blocking) {
      if (policy.blocking.by.has("key") && input.keyId)
        blockTags.push(subjectTag("key", input.keyId));
      if (policy.blocking.by.has("ip") && input.clientIp)
        blockTags.push(subjectTag("ip", input.clientIp));
      if (policy.blocking.by.has("subject") && input.subject)
        blockTags.push(subjectTag("subject", input.subject));
    }
    if (items.length === 0 && blockTags.length === 0) {
      return {
        allowed: true,
        reason: "OK",
        limits: [],
        headers: [],
        shadowExceeded: [],
        shadowSkipped: plan.shadowSkipped,
        newBlocks: [],
      };
    }
    const cost = input.cost || input.endpoint?.cost || policy.defaults.cost;
    const { verdict: v, local } = await this.decideItems(
      { items, cost, blockTags, ...(policy.blocking && { blocking: policy.blocking }) },
      input.endpoint,
      deadline,
    );
    const result = this.toDecision(v, plan, input.credits);
    result.cost = cost;
    return local ? { ...result, decidedLocally: true } : result;
  }

  private toDecision(
    v: RateVerdict,
    plan: RatePlan,
    ownCredits: CreditPlan | undefined,
  ): RateDecision {
    const { items, shadowSkipped } = plan;
    const now = this.o.clock.now();
    const newBlocks = v.newBlocks.map((b) => ({ tag: b.tag, until: now + b.durationMs }));
    this.o.blocks.placedByLimit(newBlocks);
    if (v.status === "blocked") {
      const until = now + v.blockMs;
      if (v.blockedTag) this.o.blocks.foundInStore({ tag: v.blockedTag, until });
      return { ...this.blocked(plan, until), newBlocks };
    }
    const states = items.map((it, i) => ({
      limit: it.limit,
      outcome: v.outcomes[i] as LimitOutcome,
    }));
    const shadowExceeded = states
      .filter((s) => s.limit.mode === "shadow" && s.outcome.exceeded)
      .map((s) => s.limit);
    const c = states.findIndex((s) => s.limit.kind === "credits");
    const creditsState = c < 0 ? undefined : (states[c] as LimitState);
    const credits = creditsState && {
      credits: creditsOf(creditsState, creditsState.limit.credits === ownCredits, now),
    };
    if (v.status === "limited") {
      // Credits exhausted wins: waiting out a rate limit would not help.
      const exhausted = creditsState?.outcome.exceeded === true;
      const deciding = exhausted ? c : pickDenying(states);
      const retry = states[deciding]?.outcome.retryMs ?? -1;
      // No Retry-After for credits no refill will cover: retrying does not help.
      const retryAfterMs =
        retry >= 0 ? retry : exhausted ? undefined : states[deciding]?.outcome.resetMs;
      const until = newBlocks.length > 0 ? Math.max(...newBlocks.map((b) => b.until)) : undefined;
      return {
        allowed: false,
        reason: exhausted ? "CREDITS_EXHAUSTED" : "RATE_LIMITED",
        ...credits,
        limits: states,
        deciding,
        ...(retryAfterMs !== undefined && { retryAfterMs }),
        ...(until !== undefined && { blockedUntil: until }),
        headers: rateLimitHeaders(states, deciding, retryAfterMs ?? (exhausted ? undefined : 0)),
        shadowExceeded,
        shadowSkipped,
        newBlocks,
      };
    }
    const deciding = pickTightest(states);
    return {
      allowed: true,
      reason: "OK",
      ...credits,
      limits: states,
      ...(deciding !== undefined && { deciding }),
      headers: rateLimitHeaders(states, deciding, undefined),
      shadowExceeded,
      shadowSkipped,
      newBlocks,
    };
  }

  /**
   * One store decision, or — if the store is unreachable and the endpoint fails
   * open — the insurance limiter's. Rethrows the store failure when it fails closed.
   */
  async decideItems(
    req: RateRequest,
    endpoint: Endpoint | undefined,
    /** When the store call must give up (caller-deadline.ts); undefined: its budget. */
    deadline?: number,
  ): Promise<{ verdict: RateVerdict; local: boolean }> {
    try {
      const verdict = await beforeDeadline(this.o.store.decide(req), deadline, "ratelimit.decide");
      // Batched limits decide in memory from held units while the store is down.
      return { verdict, local: verdict.decidedLocally === true };
    } catch (err) {
      if (!isStoreUnavailable(err) || this.o.failMode(endpoint) !== "open") throw err;
      return { verdict: await this.o.insurance.decide(req), local: true };
    }
  }

  /**
   * A usage report: charges the plan's items `input.cost` (else the
   * endpoint's or the default cost) without denying, in one forced store
   * call per slot (rate-limit-store.ts forceCharge). No block is checked or
   * placed and no denial counted; no insurance limiter either: a report the
   * store cannot take fails, to be retried with its id.
   */
  async forceCharge(
    input: RateInput,
    plan: RatePlan,
    once: { id: string; ttlMs: number } | undefined,
  ): Promise<ForceChargeVerdict> {
    const cost = input.cost || input.endpoint?.cost || plan.policy.defaults.cost;
    return this.forceItems(plan.items, cost, once);
  }

  /** Charges `items` without denying (an Envoy after_response call, or a report's plan). */
  async forceItems(
    items: LimitItem[],
    cost: number,
    once: { id: string; ttlMs: number } | undefined,
  ): Promise<ForceChargeVerdict> {
    return this.o.store.forceCharge({ items, cost, ...(once && { once }) });
  }

  /** The decision for a subject blocked until `until`: nothing charged. */
  blocked(plan: RatePlan, until: number): RateDecision {
    const retryAfterMs = Math.max(0, until - this.o.clock.now());
    return {
      allowed: false,
      reason: "BLOCKED",
      limits: plan.items.map((it) => ({
        limit: it.limit,
        outcome: { exceeded: false, remaining: -1, resetMs: 0, retryMs: -1 },
      })),
      retryAfterMs,
      blockedUntil: until,
      headers: [["retry-after", String(retryAfterSeconds(retryAfterMs))]],
      shadowExceeded: [],
      shadowSkipped: plan.shadowSkipped,
      newBlocks: [],
    };
  }
}

/** A decision's credits state from its credits limit's outcome. */
function creditsOf(s: LimitState, own: boolean, now: number): CreditsState {
  const plan = s.limit.credits as CreditPlan;
  return {
    plan,
    own,
    balance: s.outcome.remaining,
    ...(plan.refill !== "none" && { nextRefillAt: refillTime(now, s.outcome.resetMs) }),
  };
}

/**
 * When a refill due in `resetMs` (the store's clock) happens, on this
 * process's clock: refills fall on whole seconds (00:00 UTC), so rounding to
 * the second drops the few ms between the two clocks and the call.
 */
export function refillTime(now: number, resetMs: number): number {
  return Math.round((now + resetMs) / 1000) * 1000;
}

/** Retry-After in whole seconds for a wait of `ms`: at least 1, rounded up. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** The subjects whose blocks refuse a request: its key, client IP and caller subject. */
export function blockSubjects(input: {
  keyId: string;
  clientIp: string;
  subject: string;
}): string[] {
  const tags: string[] = [];
  if (input.keyId) tags.push(subjectTag("key", input.keyId));
  if (input.clientIp) tags.push(subjectTag("ip", input.clientIp));
  if (input.subject) tags.push(subjectTag("subject", input.subject));
  return tags;
}

/** The denying enforce limit that frees up last (never-fitting counts as last). */
export function pickDenying(states: LimitState[]): number {
  let best = -1;
  let bestRetry = -2;
  states.forEach((s, i) => {
    if (!s.outcome.exceeded || s.limit.mode === "shadow") return;
    const r = s.outcome.retryMs < 0 ? Number.POSITIVE_INFINITY : s.outcome.retryMs;
    if (r > bestRetry) {
      best = i;
      bestRetry = r;
    }
  });
  return best;
}

/** The enforce limit with the smallest share remaining. */
export function pickTightest(states: LimitState[]): number | undefined {
  let best: number | undefined;
  let bestShare = Number.POSITIVE_INFINITY;
  states.forEach((s, i) => {
    if (s.limit.mode === "shadow" || s.outcome.remaining < 0) return;
    const share = s.limit.burst === 0 ? 0 : s.outcome.remaining / s.limit.burst;
    if (share < bestShare) {
      best = i;
      bestShare = share;
    }
  });
  return best;
}

/** The bucket of `limit` for this request, or the dimension it lacks. */
function tagFor(limit: Limit, input: RateInput): string | { missing: MissingDimension["missing"] } {
  switch (limit.by) {
    case "key":
      return input.keyId ? subjectTag("key", input.keyId) : { missing: "key_id" };
    case "owner":
      return input.owner ? subjectTag("owner", input.owner) : { missing: "key_id" };
    case "ip":
      return input.clientIp ? subjectTag("ip", input.clientIp) : { missing: "client_ip" };
    case "subject":
      return input.subject ? subjectTag("subject", input.subject) : { missing: "subject" };
    case "endpoint":
      return subjectTag("endpoint", input.endpoint?.name ?? "-");
  }
}
