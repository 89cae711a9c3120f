/**
 * The CheckRateLimit decision: which limits apply (tier defaults, endpoint
 * overrides), which subject each bucket belongs to, then one store call that
 * charges all or none. Blocks known locally are answered without the store.
 */
import { type Endpoint, effectiveLimits, type Limit, type Policy } from "../policy/policy.js";
import type { InsuranceLimiter } from "../resilience/insurance-limiter.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import { normaliseIp } from "../subjects/ip-address.js";
import type { Clock } from "../util/clock.js";
import type { BlockCache } from "./block-cache.js";
import type {
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
  clientIp: string;
  subject: string;
  endpoint: Endpoint | undefined;
  /** Request cost; 0 means the endpoint's (or the policy default) cost. */
  cost: number;
}

/** One limit's state in a decision. */
export interface LimitState {
  limit: Limit;
  outcome: LimitOutcome;
}

/** A decision. */
export interface RateDecision {
  allowed: boolean;
  reason: "OK" | "RATE_LIMITED" | "BLOCKED";
  limits: LimitState[];
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
  blocks: BlockCache;
  /** The fail mode of an endpoint (undefined: a request matching none). */
  failMode: (endpoint: Endpoint | undefined) => "open" | "closed";
  /** Decides when the store is unreachable and the endpoint fails open. */
  insurance: InsuranceLimiter;
}

/** Tag of a subject: one bucket namespace (and Cluster slot) per subject. */
export function subjectTag(
  kind: "key" | "owner" | "ip" | "endpoint" | "subject",
  value: string,
): string {
  return `${kind[0]}:${value}`;
}

/** Takes rate-limit decisions. Throws only if the store fails. */
export class RateLimiter {
  constructor(private readonly o: RateLimiterOptions) {}

  /** Decides and charges. */
  async check(input: RateInput): Promise<RateDecision | MissingDimension> {
    const policy = this.o.policy();
    const limits = effectiveLimits(policy, input.tier, input.endpoint);
    const ip = input.clientIp ? (normaliseIp(input.clientIp)?.address ?? "") : "";
    const items: LimitItem[] = [];
    const shadowSkipped: Limit[] = [];
    for (const limit of limits) {
      const tag = this.tagFor(limit, input, ip);
      if (typeof tag === "string") items.push({ tag, limit });
      // An enforced limit cannot be decided without its dimension: the caller's mistake.
      else if (limit.mode !== "shadow") return { missing: tag.missing, limit: limit.name };
      else shadowSkipped.push(limit);
    }
    const decision = await this.decide(input, policy, items, ip);
    return shadowSkipped.length > 0 ? { ...decision, shadowSkipped } : decision;
  }

  /** Blocks, then one store decision over `items` (`ip`: the normalised client IP or ""). */
  private async decide(
    input: RateInput,
    policy: Policy,
    items: LimitItem[],
    ip: string,
  ): Promise<RateDecision> {
    const blockTags: string[] = [];
    if (policy.blocking) {
      if (policy.blocking.by.has("key") && input.keyId)
        blockTags.push(subjectTag("key", input.keyId));
      if (policy.blocking.by.has("ip") && ip) blockTags.push(subjectTag("ip", ip));
      if (policy.blocking.by.has("subject") && input.subject)
        blockTags.push(subjectTag("subject", input.subject));
    }
    // Any block this replica knows of — from limits or from detection rules,
    // whatever the policy's blocking.by — refuses without a store call.
    const subjects = [
      ...(input.keyId ? [subjectTag("key", input.keyId)] : []),
      ...(ip ? [subjectTag("ip", ip)] : []),
      ...(input.subject ? [subjectTag("subject", input.subject)] : []),
    ];
    const known = this.o.blocks.find(subjects);
    if (known) return this.blocked(items, known.until);
    if (items.length === 0 && blockTags.length === 0) {
      return {
        allowed: true,
        reason: "OK",
        limits: [],
        headers: [],
        shadowExceeded: [],
        shadowSkipped: [],
        newBlocks: [],
      };
    }
    const cost = input.cost || input.endpoint?.cost || policy.defaults.cost;
    const { verdict: v, local } = await this.decideItems(
      { items, cost, blockTags, ...(policy.blocking && { blocking: policy.blocking }) },
      input.endpoint,
    );
    const result = this.toDecision(v, items);
    return local ? { ...result, decidedLocally: true } : result;
  }

  private toDecision(v: RateVerdict, items: LimitItem[]): RateDecision {
    const now = this.o.clock.now();
    const newBlocks = v.newBlocks.map((b) => ({ tag: b.tag, until: now + b.durationMs }));
    for (const b of newBlocks) this.o.blocks.add(b.tag, b.until);
    if (v.status === "blocked") {
      const until = now + v.blockMs;
      if (v.blockedTag) this.o.blocks.add(v.blockedTag, until);
      return this.blocked(items, until);
    }
    const states = items.map((it, i) => ({
      limit: it.limit,
      outcome: v.outcomes[i] as LimitOutcome,
    }));
    const shadowExceeded = states
      .filter((s) => s.limit.mode === "shadow" && s.outcome.exceeded)
      .map((s) => s.limit);
    if (v.status === "limited") {
      const deciding = pickDenying(states);
      const retry = states[deciding]?.outcome.retryMs ?? -1;
      const retryAfterMs = retry >= 0 ? retry : states[deciding]?.outcome.resetMs;
      const until = newBlocks.length > 0 ? Math.max(...newBlocks.map((b) => b.until)) : undefined;
      return {
        allowed: false,
        reason: "RATE_LIMITED",
        limits: states,
        deciding,
        ...(retryAfterMs !== undefined && { retryAfterMs }),
        ...(until !== undefined && { blockedUntil: until }),
        headers: rateLimitHeaders(states, deciding, retryAfterMs ?? 0),
        shadowExceeded,
        shadowSkipped: [],
        newBlocks,
      };
    }
    const deciding = pickTightest(states);
    return {
      allowed: true,
      reason: "OK",
      limits: states,
      ...(deciding !== undefined && { deciding }),
      headers: rateLimitHeaders(states, deciding, undefined),
      shadowExceeded,
      shadowSkipped: [],
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
  ): Promise<{ verdict: RateVerdict; local: boolean }> {
    try {
      return { verdict: await this.o.store.decide(req), local: false };
    } catch (err) {
      if (!isStoreUnavailable(err) || this.o.failMode(endpoint) !== "open") throw err;
      return { verdict: await this.o.insurance.decide(req), local: true };
    }
  }

  /** Lifts a block locally (the caller also lifts it in the store and announces it). */
  forgetBlock(tag: string): void {
    this.o.blocks.remove(tag);
  }

  private blocked(items: LimitItem[], until: number): RateDecision {
    const retryAfterMs = Math.max(0, until - this.o.clock.now());
    return {
      allowed: false,
      reason: "BLOCKED",
      limits: items.map((it) => ({
        limit: it.limit,
        outcome: { exceeded: false, remaining: -1, resetMs: 0, retryMs: -1 },
      })),
      retryAfterMs,
      blockedUntil: until,
      headers: [["retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000)))]],
      shadowExceeded: [],
      shadowSkipped: [],
      newBlocks: [],
    };
  }

  private tagFor(
    limit: Limit,
    input: RateInput,
    ip: string,
  ): string | { missing: MissingDimension["missing"] } {
    switch (limit.by) {
      case "key":
        return input.keyId ? subjectTag("key", input.keyId) : { missing: "key_id" };
      case "owner":
        return input.owner ? subjectTag("owner", input.owner) : { missing: "key_id" };
      case "ip":
        return ip ? subjectTag("ip", ip) : { missing: "client_ip" };
      case "subject":
        return input.subject ? subjectTag("subject", input.subject) : { missing: "subject" };
      case "endpoint":
        return subjectTag("endpoint", input.endpoint?.name ?? "-");
    }
  }
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
