/**
 * CheckRateLimit: proto ⇄ the decision engine for rate-limit decisions, and
 * the proto form of limit results (shared with Authorize(apply_limits)).
 */
import { create } from "@bufbuild/protobuf";
import type { Decision } from "../decision/decision.js";
import { KeyIdNotFound } from "../decision/decision-engine.js";
import {
  LimitBy,
  LimitKind,
  type LimitStatus,
  type RateLimitResult,
  RateLimitResultSchema,
} from "../gen/tollgate/v1/ratelimit_pb.js";
import type {
  CheckRateLimitRequest,
  CheckRateLimitResponse,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import type { LimitState, RateDecision } from "../ratelimit/rate-limiter.js";
import type { CallContext } from "./call-context.js";
import { header, REASON_TO_PROTO, ts } from "./convert.js";
import { creditsStateToProto } from "./credits-convert.js";
import { apiError } from "./errors.js";
import {
  checkRateLimitResponse,
  durationMs,
  limitStatus,
  rateLimitResult,
} from "./message-literals.js";
import { checkSubjectFields, requestFieldFacts } from "./request-fields.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

const BY: Record<string, LimitBy> = {
  key: LimitBy.KEY,
  owner: LimitBy.OWNER,
  ip: LimitBy.IP,
  endpoint: LimitBy.ENDPOINT,
  subject: LimitBy.SUBJECT,
};

/**
 * The proto form of a decision's limits. The credit balance is not a limit
 * there (it has its own field, `credits`): when it decided, `deciding` is unset.
 */
export function rateResultToProto(r: RateDecision): RateLimitResult {
  const limits = r.limits.map((s) => (s.limit.kind === "credits" ? undefined : limitToProto(s)));
  return rateLimitResult({
    allowed: r.allowed,
    limits: limits.filter((l) => l !== undefined),
    deciding: r.deciding === undefined ? undefined : limits[r.deciding],
    retryAfter: r.retryAfterMs === undefined || r.allowed ? undefined : durationMs(r.retryAfterMs),
    blockedUntil: ts(r.blockedUntil),
  });
}

/** The proto form of one limit's state (shared with ReportUsage). */
export function limitToProto(s: LimitState): LimitStatus {
  return limitStatus({
    name: s.limit.name,
    by: BY[s.limit.by] ?? LimitBy.UNSPECIFIED,
    kind: s.limit.kind === "rate" ? LimitKind.RATE : LimitKind.QUOTA,
    limit: BigInt(s.limit.burst),
    remaining: BigInt(Math.max(0, s.outcome.remaining)),
    reset: durationMs(Math.max(0, s.outcome.resetMs)),
    window: durationMs(s.limit.periodMs),
    shadow: s.limit.mode === "shadow",
    exceeded: s.outcome.exceeded,
  });
}

/** CheckRateLimit: validated request → facts → the engine's decision → CheckRateLimitResponse. */
export async function checkRateLimit(
  d: ServiceDeps,
  req: CheckRateLimitRequest,
  ctx: CallContext,
): Promise<CheckRateLimitResponse> {
  const started = process.hrtime.bigint();
  const v = new Violations();
  const policy = d.policy();
  checkSubjectFields(v, policy, req);
  const { clientIp, endpoint } = requestFieldFacts(v, policy, req, undefined);
  v.throwIfAny();

  let decision: Decision;
  try {
    decision = await d.engine.decide({
      door: "CheckRateLimit",
      credential:
        req.keyId !== ""
          ? { kind: "key-id", keyId: req.keyId }
          : { kind: "anonymous", tier: req.tier || policy.defaultTier },
      endpoint,
      clientIp,
      subject: req.subject,
      cost: req.cost,
      requiredScopes: [],
      applyLimits: true,
      traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
      started,
      callerTimeoutMs: ctx.timeoutMs(),
    });
  } catch (err) {
    if (err instanceof KeyIdNotFound) throw apiError("KEY_NOT_FOUND");
    throw err;
  }
  if (decision.kind === "incomplete") {
    Violations.fail(decision.missing, `is required by limit "${decision.limit}" of the policy`);
  }
  return checkRateLimitResponse({
    allowed: decision.kind === "allowed",
    reason: REASON_TO_PROTO[decision.reason],
    result: decision.limits ? rateResultToProto(decision.limits) : noResult(),
    responseHeaders: decision.headers.map(([n, val]) => header(n, val)),
    decisionId: decision.decisionId,
    httpStatus: decision.httpStatus,
    decidedLocally: decision.decidedLocally,
    credits: decision.limits?.credits && creditsStateToProto(decision.limits.credits),
  });
}

/** The result of a decision that charged nothing (a blocked or unusable key). */
function noResult(): RateLimitResult {
  return create(RateLimitResultSchema, { allowed: false });
}
