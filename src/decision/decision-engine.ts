/**
 * The decision engine: one answer to "who is calling, may they do this, how
 * much may they do" for every door. A door turns its message into
 * RequestFacts, calls `decide`, and maps the Decision to its wire shape; no
 * door re-implements a step. The steps, in order:
 *
 *  1. a block on the client IP refuses before any key lookup (no store call);
 *  2. the caller: a presented secret is authorized (format, digest, lookup,
 *     expiry, revocation, IP rules, scopes); a key id is looked up (revoked or
 *     expired ids refused alike); an anonymous caller has the tier it names;
 *  3. the limits that apply are planned (precompiled per tier and endpoint,
 *     with the key's and its owner's runtime overrides on top);
 *     an enforced limit lacking its dimension makes the decision incomplete;
 *  4. a block on the key or caller subject refuses (no store call);
 *  5. the limits are charged in one store decision, all or none;
 *  6. the observer counts, logs and records events for the decision.
 *
 * Fail-open behaviour lives in the steps it concerns (stale key copies in the
 * Authorizer, the insurance limiter in the RateLimiter).
 */

import type { Authorizer, AuthReason } from "../keys/authorizer.js";
import { type KeyRecord, unusableReason } from "../keys/key-record.js";
import type { Tracing } from "../observability/tracing.js";
import type { BlockBook } from "../ratelimit/block-book.js";
import type { OverrideSources } from "../ratelimit/limit-override.js";
import type { OwnerOverrides } from "../ratelimit/owner-overrides.js";
import type { LimitItem, LimitOutcome, RateVerdict } from "../ratelimit/rate-limit-store.js";
import {
  blockSubjects,
  type CreditsState,
  type LimitState,
  type MissingDimension,
  type RateDecision,
  type RateInput,
  type RateLimiter,
  retryAfterSeconds,
} from "../ratelimit/rate-limiter.js";
import { storeDeadline } from "../resilience/caller-deadline.js";
import { subjectTag } from "../subjects/subject-tag.js";
import type { Clock } from "../util/clock.js";
import { newDecisionId } from "../util/ids.js";
import {
  type Allowed,
  type Blocked,
  type Decision,
  type Denied,
  LIMIT_MESSAGES,
} from "./decision.js";
import type { DecisionObserver } from "./decision-observer.js";
import type { RequestFacts } from "./facts.js";
import { type DenialDetail, publicDenial } from "./public-denial.js";

/** Options of DecisionEngine. */
export interface DecisionEngineOptions {
  authorizer: Authorizer;
  limiter: RateLimiter;
  /** Owner limit overrides, cached (a key's own ride in its record). Undefined: none. */
  ownerOverrides?: OwnerOverrides;
  blocks: BlockBook;
  clock: Clock;
  /** What a denied caller is told about a bad key (see public-denial.ts). */
  denialDetail: DenialDetail;
  /** Metrics, access log and events of every decision. */
  observer: DecisionObserver;
  /** A span per decision (OpenTelemetry); undefined: tracing off, at no cost. */
  tracing?: Tracing;
  /**
   * The budget every store command has anyway (TOLLGATE_REDIS_COMMAND_TIMEOUT_MS),
   * ms: a caller's deadline is applied to store calls only when shorter.
   */
  storeBudgetMs: number;
}

/** A key id that names no key: a failed call (NotFound), not a decision. */
/** A usage report's `api_key` names no key (ReportUsage answers UNAUTHENTICATED). */
export class UnknownSecret extends Error {
  override name = "UnknownSecret";
}

export class KeyIdNotFound extends Error {
  override name = "KeyIdNotFound";
}

/** The request of a descriptor-based decision (Envoy ShouldRateLimit): limits already named. */
export interface DescriptorFacts {
  /** One item per matched descriptor. */
  items: LimitItem[];
  /** Default cost of an item without its own. */
  cost: number;
  /** The Envoy rate-limit domain, for the access log. */
  domain: string;
  /**
   * The domain is `charge: after_response` (Envoy's stream-done call): the
   * items are force-charged, never denied, and the call is not a decision.
   */
  afterResponse?: boolean;
  traceparent: string | undefined;
  started: bigint;
  /** How long the caller waits, ms; undefined: it did not say (see RequestFacts). */
  callerTimeoutMs: number | undefined;
  /**
   * A Tollgate key id named by a descriptor entry (`tollgate_key_id`): its
   * credits are spent in the same decision (unknown or unusable: none).
   */
  keyId?: string;
}

/** The outcome of a descriptor-based decision. */
export interface DescriptorDecision {
  decisionId: string;
  /** The store's verdict over the items, in their order (undefined: no item). */
  verdict: RateVerdict | undefined;
  /** True if an enforced item is over its limit (or the key's credits are exhausted). */
  over: boolean;
  decidedLocally: boolean;
  /** The key's credits after the decision, when `keyId` named a key with a plan. */
  credits?: {
    state: CreditsState;
    /** Its outcome (the verdict's last), for headers. */
    limit: LimitState;
  };
}

/** A usage report (ReportUsage): the facts of a CheckRateLimit, a cost and an id. */
export interface ReportFacts {
  /** The key whose limits are charged (its tier and owner), else the tier's. */
  credential:
    | { kind: "key-id"; keyId: string }
    | { kind: "secret"; secret: string }
    | { kind: "anonymous"; tier: string };
  endpoint: RequestFacts["endpoint"];
  clientIp: RequestFacts["clientIp"];
  subject: string;
  /** The cost to charge, ≥ 1. */
  cost: number;
  /** Idempotency: the report's id and how long it is remembered, ms. */
  once: { id: string; ttlMs: number };
  callerTimeoutMs: number | undefined;
}

/** What a usage report charged. */
export interface UsageReport {
  /** True if the id was charged before: nothing was charged now. */
  duplicate: boolean;
  /** Every limit charged, in plan order, after the charge. */
  limits: LimitState[];
}

const KEY_MESSAGES: Record<"UNKNOWN_KEY" | "EXPIRED_KEY" | "REVOKED_KEY", string> = {
  UNKNOWN_KEY: "the API key is not valid",
  EXPIRED_KEY: "the API key has expired",
  REVOKED_KEY: "the API key has been revoked",
};

/**
 * An allowed answer, built as one object literal: the hot path. (Spreading
 * the caller's partial decision into it showed as `take` self time in the
 * profile of Envoy Check at 16 streams.)
 */
function allowed(
  decisionId: string,
  endpoint: Allowed["endpoint"],
  record: KeyRecord | undefined,
  hints: Allowed["hints"],
  decidedLocally: boolean,
  limits: RateDecision | undefined,
): Allowed {
  return {
    kind: "allowed",
    reason: "OK",
    httpStatus: 200,
    decisionId,
    endpoint,
    record,
    hints,
    limits,
    headers: limits?.headers ?? [],
    decidedLocally,
  };
}

/** Takes decisions. Throws only when the store fails (fail closed) or for KeyIdNotFound. */
export class DecisionEngine {
  constructor(private readonly o: DecisionEngineOptions) {}

  /** Decides one request, counted, logged and recorded. */
  async decide(facts: RequestFacts): Promise<Decision> {
    const tracing = this.o.tracing;
    if (!tracing) {
      const decision = await this.take(facts);
      this.o.observer.decided(facts, decision);
      return decision;
    }
    return tracing.decision(facts.door, facts.traceparent, async (span) => {
      const decision = await this.take(facts);
      this.o.observer.decided(facts, decision);
      span.setAttributes(spanAttributes(decision));
      return decision;
    });
  }

  /**
   * Charges the items of an Envoy ShouldRateLimit request in one store
   * decision (all or none; fail mode: the policy default, as no endpoint
   * applies to an Envoy domain), counted and logged.
   */
  async decideDescriptors(facts: DescriptorFacts): Promise<DescriptorDecision> {
    const tracing = this.o.tracing;
    if (!tracing) return this.takeDescriptors(facts);
    return tracing.decision("ShouldRateLimit", facts.traceparent, async (span) => {
      const d = await this.takeDescriptors(facts);
      span.setAttributes({
        "tollgate.decision_id": d.decisionId,
        "tollgate.allowed": !d.over,
        "tollgate.reason": d.over ? "OVER_LIMIT" : "OK",
        "tollgate.domain": facts.domain,
      });
      return d;
    });
  }

  /**
   * Charges a usage report to the limits a decision with the same facts would
   * charge (plan of rate-limiter.ts), without denying: no block refuses it,
   * none is placed, no decision is counted. A key id that names no key throws
   * KeyIdNotFound; a revoked or expired key is charged all the same (the
   * request it reports was served). An enforced limit lacking its dimension
   * makes the report incomplete, as it would a decision.
   */
  async report(f: ReportFacts): Promise<UsageReport | MissingDimension> {
    const deadline = storeDeadline(f.callerTimeoutMs, this.o.storeBudgetMs);
    let record: KeyRecord | undefined;
    const c = f.credential;
    if (c.kind === "key-id") {
      const found = await this.o.authorizer.findById(c.keyId, f.endpoint, deadline);
      if (!found.record) throw new KeyIdNotFound(c.keyId);
      record = found.record;
    } else if (c.kind === "secret") {
      record = await this.o.authorizer.recordForSecret(c.secret, f.endpoint, deadline);
      if (!record) throw new UnknownSecret();
    }
    const input: RateInput = {
      tier: record?.tier ?? (c.kind === "anonymous" ? c.tier : ""),
      keyId: record?.id ?? "",
      owner: record?.owner ?? "",
      clientIp: f.clientIp?.address ?? "",
      subject: f.subject,
      endpoint: f.endpoint,
      cost: f.cost,
      ...(record?.credits && { credits: record.credits }),
    };
    const plan = this.o.limiter.plan(input);
    if ("missing" in plan) return plan;
    const v = await this.o.limiter.forceCharge(input, plan, f.once);
    const limits = plan.items.map((it, i) => ({
      limit: it.limit,
      outcome: v.outcomes[i] as LimitOutcome,
    }));
    // A charge crosses thresholds as a decision's does (a duplicate charged nothing).
    if (!v.duplicate) {
      this.o.observer.usageReported(input, {
        allowed: true,
        reason: "OK",
        limits,
        headers: [],
        shadowExceeded: [],
        shadowSkipped: plan.shadowSkipped,
        newBlocks: [],
        cost: f.cost,
      });
    }
    return { duplicate: v.duplicate, limits };
  }

  private async takeDescriptors(facts: DescriptorFacts): Promise<DescriptorDecision> {
    const decisionId = newDecisionId(this.o.clock.now());
    const deadline = storeDeadline(facts.callerTimeoutMs, this.o.storeBudgetMs);
    // The named key's credits ride along as the last item: one decision, all or none.
    let key: KeyRecord | undefined;
    let credits: LimitItem | undefined;
    if (facts.keyId) {
      const found = await this.o.authorizer.findById(facts.keyId, undefined, deadline);
      if (found.record && !unusableReason(found.record, this.o.clock.now())) {
        key = found.record;
        credits = this.o.limiter.creditsItem(key);
      }
    }
    const items = credits ? [...facts.items, credits] : facts.items;
    if (facts.afterResponse) {
      // Usage after the response: charged past the limits if need be, so the
      // next request-time call is denied until the debt drains. Not counted or
      // logged as a decision (the RPC metrics count the call). A named key's
      // credits are charged too (the last item), into debt if need be.
      const v =
        items.length === 0
          ? undefined
          : await this.o.limiter.forceItems(items, facts.cost, undefined);
      const verdict = v && {
        status: "ok" as const,
        outcomes: v.outcomes,
        blockMs: 0,
        newBlocks: [],
      };
      if (v) this.o.observer.descriptorsReported(facts, v.outcomes);
      return { decisionId, verdict, over: false, decidedLocally: false };
    }
    const decided =
      items.length === 0
        ? undefined
        : await this.o.limiter.decideItems(
            { items, cost: facts.cost, blockTags: [] },
            undefined,
            deadline,
          );
    const verdict = decided?.verdict;
    const over = items.some(
      (it, i) => it.limit.mode !== "shadow" && verdict?.outcomes[i]?.exceeded === true,
    );
    const outcome = credits && verdict?.outcomes[items.length - 1];
    const state = credits && outcome && this.o.limiter.creditsState(credits, outcome, key?.credits);
    const out = {
      decisionId,
      verdict,
      over,
      decidedLocally: decided?.local === true,
      ...(credits &&
        outcome &&
        state && { credits: { state, limit: { limit: credits.limit, outcome } } }),
    };
    this.o.observer.decidedDescriptors(facts, out);
    return out;
  }

  private async take(f: RequestFacts): Promise<Decision> {
    const decisionId = newDecisionId(this.o.clock.now());
    const base = { decisionId, endpoint: f.endpoint, headers: [], decidedLocally: false };
    const deadline = storeDeadline(f.callerTimeoutMs, this.o.storeBudgetMs);
    const ip = f.clientIp?.address ?? "";
    // 1. A blocked client IP is refused from this replica's block cache, before any lookup.
    if (ip) {
      const b = this.o.blocks.find([subjectTag("ip", ip)]);
      if (b) return this.blocked(base, b.until, undefined);
    }

    // 2. The caller.
    let record: KeyRecord | undefined;
    let tier: string;
    let local = false;
    let hints: Allowed["hints"];
    const c = f.credential;
    if (c.kind === "secret") {
      const a = await this.o.authorizer.authorize({
        secret: c.secret,
        endpoint: f.endpoint,
        clientIp: f.clientIp,
        requiredScopes: f.requiredScopes,
        deadline,
      });
      local = a.decidedLocally === true;
      if (!a.allowed || !a.record) {
        const reason = a.reason === "OK" ? "UNKNOWN_KEY" : a.reason;
        return this.denied(
          {
            ...base,
            decidedLocally: local,
            ...(a.record && { record: a.record }),
            ...(a.unusableKeyId && { unusableKeyId: a.unusableKeyId }),
          },
          reason,
          a.httpStatus === 403 ? 403 : 401,
          a.message,
          a.missingScopes,
          a.hints,
        );
      }
      record = a.record;
      hints = a.hints;
      tier = record.tier;
    } else if (c.kind === "key-id") {
      const found = await this.o.authorizer.findById(c.keyId, f.endpoint, deadline);
      if (!found.record) throw new KeyIdNotFound(c.keyId);
      local = found.local;
      // A revoked or expired key is refused as Authorize refuses it: 401, nothing charged.
      const unusable = unusableReason(found.record, this.o.clock.now());
      if (unusable) {
        return this.denied(
          { ...base, decidedLocally: local, record: found.record },
          unusable,
          401,
          KEY_MESSAGES[unusable],
          [],
          undefined,
        );
      }
      record = found.record;
      tier = record.tier;
    } else {
      tier = c.tier;
    }
    // The caller's part of every answer but an allowed one: built only for those.
    const who = () => ({
      ...base,
      decidedLocally: local,
      ...(record && { record }),
      ...(hints && { hints }),
    });

    if (!f.applyLimits) {
      // No limits apply (step 3 has nothing to plan); a blocked key or caller
      // subject still refuses (step 4; the IP was checked in step 1).
      const known = this.o.blocks.find(
        blockSubjects({ keyId: record?.id ?? "", clientIp: "", subject: f.subject }),
      );
      if (known) return this.blocked(who(), known.until, undefined);
      return allowed(decisionId, f.endpoint, record, hints, local, undefined);
    }

    // 3. The limits that apply, overrides included (no store call on a warm owner cache).
    let overrides: OverrideSources | undefined;
    if (record) {
      const cache = this.o.ownerOverrides;
      const owner =
        cache && (cache.cached(record.owner) ?? (await cache.get(record.owner, deadline)));
      if (record.overrides?.length || owner?.length) overrides = { key: record.overrides, owner };
    }
    const input: RateInput = {
      tier,
      keyId: record?.id ?? "",
      owner: record?.owner ?? "",
      clientIp: ip,
      subject: f.subject,
      endpoint: f.endpoint,
      cost: f.cost,
      ...(overrides && { overrides }),
      ...(record?.credits && { credits: record.credits }),
    };
    const plan = this.o.limiter.plan(input);
    if ("missing" in plan)
      return { ...who(), kind: "incomplete", missing: plan.missing, limit: plan.limit };

    // 4. A blocked key or caller subject (the IP was checked in step 1).
    const known = this.o.blocks.find(blockSubjects({ ...input, clientIp: "" }));
    if (known) return this.blocked(who(), known.until, this.o.limiter.blocked(plan, known.until));

    // 5. One store decision over every limit.
    const r = await this.o.limiter.charge(input, plan, deadline);
    this.o.observer.limitsCharged(f, input, r);
    if (r.allowed)
      return allowed(decisionId, f.endpoint, record, hints, local || r.decidedLocally === true, r);
    const charged = {
      ...who(),
      limits: r,
      decidedLocally: local || r.decidedLocally === true,
    };
    if (r.reason === "BLOCKED")
      return this.blocked(charged, r.blockedUntil ?? this.o.clock.now(), r);
    if (r.reason === "CREDITS_EXHAUSTED") {
      // 402, not 429: a 429 says "wait and retry", and for an empty balance
      // waiting helps only until the next refill (Retry-After says when, if
      // one will cover the cost); otherwise the caller must buy or be given
      // credits. Clients that back off on 429 would retry in vain.
      return {
        ...charged,
        kind: "denied",
        reason: "CREDITS_EXHAUSTED",
        httpStatus: 402,
        error: "credits_exhausted",
        message: LIMIT_MESSAGES.CREDITS_EXHAUSTED,
        missingScopes: [],
        headers: r.headers,
      };
    }
    return {
      ...charged,
      kind: "denied",
      reason: "RATE_LIMITED",
      httpStatus: 429,
      error: "rate_limited",
      message: LIMIT_MESSAGES.RATE_LIMITED,
      missingScopes: [],
      headers: r.headers,
    };
  }

  private blocked(
    base: Omit<
      Blocked,
      "kind" | "reason" | "httpStatus" | "error" | "message" | "until" | "retryAfterMs"
    >,
    until: number,
    limits: RateDecision | undefined,
  ): Blocked {
    const retryAfterMs = Math.max(0, until - this.o.clock.now());
    return {
      ...base,
      ...(limits && { limits }),
      kind: "blocked",
      reason: "BLOCKED",
      httpStatus: 429,
      error: "blocked",
      message: LIMIT_MESSAGES.BLOCKED,
      until,
      retryAfterMs,
      headers: [["retry-after", String(retryAfterSeconds(retryAfterMs))]],
    };
  }

  private denied(
    base: Omit<Denied, "kind" | "reason" | "httpStatus" | "error" | "message" | "missingScopes">,
    reason: Exclude<AuthReason, "OK">,
    httpStatus: 401 | 403,
    message: string,
    missingScopes: string[],
    hints: Denied["hints"],
  ): Denied {
    // The caller sees one wording for every bad key unless detailed (public-denial.ts).
    const shown = publicDenial(this.o.denialDetail, reason, message);
    const headers: [string, string][] =
      httpStatus === 401
        ? [
            [
              "www-authenticate",
              reason === "MISSING_KEY"
                ? 'ApiKey realm="tollgate"'
                : 'ApiKey realm="tollgate", error="invalid_key"',
            ],
          ]
        : [];
    return {
      ...base,
      ...(hints && { hints }),
      kind: "denied",
      reason,
      httpStatus,
      error: shown.error,
      message: shown.message,
      missingScopes,
      headers,
    };
  }
}

/** A decision's span attributes: its outcome, never a secret. */
function spanAttributes(d: Decision): Record<string, string | number | boolean> {
  const a: Record<string, string | number | boolean> = {
    "tollgate.decision_id": d.decisionId,
    "tollgate.allowed": d.kind === "allowed",
    "tollgate.reason": d.kind === "incomplete" ? "INCOMPLETE" : d.reason,
    "tollgate.decided_locally": d.decidedLocally,
  };
  if (d.kind !== "incomplete") a["http.response.status_code"] = d.httpStatus;
  if (d.endpoint) a["tollgate.endpoint"] = d.endpoint.name;
  if (d.record) {
    a["tollgate.key_id"] = d.record.id;
    a["tollgate.tier"] = d.record.tier;
  }
  const deciding = d.limits?.deciding;
  const limit = deciding === undefined ? undefined : d.limits?.limits[deciding]?.limit.name;
  if (limit) a["tollgate.limit"] = limit;
  return a;
}
