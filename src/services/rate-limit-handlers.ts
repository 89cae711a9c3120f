/**
 * CheckRateLimit, and the limits half of Authorize(apply_limits): proto ⇄
 * domain for rate-limit decisions, shadow reporting, block announcements.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import {
  LimitBy,
  LimitKind,
  type LimitStatus,
  LimitStatusSchema,
  type RateLimitResult,
  RateLimitResultSchema,
} from "../gen/tollgate/v1/ratelimit_pb.js";
import {
  type CheckRateLimitRequest,
  type CheckRateLimitResponse,
  CheckRateLimitResponseSchema,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import { type KeyRecord, unusableReason } from "../keys/key-record.js";
import { normalisePath } from "../policy/path-normaliser.js";
import { type Endpoint, matchEndpoint } from "../policy/policy.js";
import type { LimitState, RateDecision, RateInput } from "../ratelimit/rate-limiter.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { newDecisionId } from "../util/ids.js";
import { header, REASON_TO_PROTO, ts } from "./convert.js";
import { apiError } from "./errors.js";
import { recordAuthorize, recordLimitDenial } from "./event-handlers.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations, validNames } from "./validation.js";

const BY: Record<string, LimitBy> = {
  key: LimitBy.KEY,
  owner: LimitBy.OWNER,
  ip: LimitBy.IP,
  endpoint: LimitBy.ENDPOINT,
  subject: LimitBy.SUBJECT,
};
const KEY_ID = /^key_[0-9A-Za-z]{16}$/;

/** Runs a rate-limit decision, reporting shadow denials and announcing new blocks. */
export async function decideLimits(
  d: ServiceDeps,
  input: RateInput,
  rpc: string,
): Promise<RateDecision> {
  const r = await d.limiter.check(input);
  if ("missing" in r) Violations.fail(r.missing, `is required by limit "${r.limit}" of the policy`);
  for (const l of r.shadowSkipped) {
    d.metrics.shadowSkipped.inc({ rule: l.name });
    d.log.debug(
      { shadow: l.name, rpc, by: l.by, keyId: input.keyId || undefined },
      "shadow limit skipped: the request lacks its dimension",
    );
  }
  for (const l of r.shadowExceeded) {
    d.metrics.shadowDenials.inc({ rule: l.name });
    d.log.info(
      { shadow: l.name, rpc, keyId: input.keyId || undefined },
      "shadow limit would have denied",
    );
  }
  if (r.newBlocks.length > 0) {
    for (const b of r.newBlocks) {
      d.metrics.blocksPlaced.inc({
        by: { k: "key", i: "ip", s: "subject" }[b.tag[0] as "k"] ?? "other",
      });
      d.log.warn(
        { block: b.tag.slice(0, 2), keyId: input.keyId || undefined, until: b.until },
        "subject blocked",
      );
    }
    d.announce({ digests: [], blocks: r.newBlocks });
  }
  if (!r.allowed) {
    const limit = r.deciding === undefined ? undefined : r.limits[r.deciding]?.limit.name;
    recordLimitDenial(
      d,
      rpc,
      r.reason === "BLOCKED" ? "BLOCKED" : "RATE_LIMITED",
      {
        keyId: input.keyId,
        clientIp: input.clientIp,
        subject: input.subject,
        endpoint: input.endpoint?.name ?? "",
      },
      limit ? { limit } : {},
    );
  }
  return r;
}

/** The proto form of a decision's limits. */
export function rateResultToProto(r: RateDecision): RateLimitResult {
  const limits = r.limits.map(limitToProto);
  return create(RateLimitResultSchema, {
    allowed: r.allowed,
    limits,
    deciding: r.deciding === undefined ? undefined : limits[r.deciding],
    retryAfter:
      r.retryAfterMs === undefined || r.allowed ? undefined : durationFromMs(r.retryAfterMs),
    blockedUntil: ts(r.blockedUntil),
  });
}

function limitToProto(s: LimitState): LimitStatus {
  return create(LimitStatusSchema, {
    name: s.limit.name,
    by: BY[s.limit.by] ?? LimitBy.UNSPECIFIED,
    kind: s.limit.kind === "rate" ? LimitKind.RATE : LimitKind.QUOTA,
    limit: BigInt(s.limit.burst),
    remaining: BigInt(Math.max(0, s.outcome.remaining)),
    reset: durationFromMs(Math.max(0, s.outcome.resetMs)),
    window: durationFromMs(s.limit.periodMs),
    shadow: s.limit.mode === "shadow",
    exceeded: s.outcome.exceeded,
  });
}

/** Resolves the endpoint of a request by name or by method + normalised path. */
export function resolveEndpoint(
  d: ServiceDeps,
  v: Violations,
  name: string,
  method: string,
  path: string,
): Endpoint | undefined {
  const policy = d.policy();
  if (name !== "") {
    const e = policy.endpoints.find((x) => x.name === name);
    if (!e)
      v.add(
        "endpoint",
        `must name an endpoint of the policy: ${validNames(policy.endpoints.map((x) => x.name))}`,
      );
    return e;
  }
  if (path === "") return undefined;
  const n = normalisePath(path);
  if (!n.ok) {
    v.add("path", n.error);
    return undefined;
  }
  return matchEndpoint(policy, method, n.path);
}

/** The CheckRateLimit RPC. */
export async function checkRateLimit(
  d: ServiceDeps,
  req: CheckRateLimitRequest,
  ctx: HandlerContext,
): Promise<CheckRateLimitResponse> {
  const started = process.hrtime.bigint();
  const v = new Violations();
  v.length("key_id", req.keyId, 0, 64);
  if (req.keyId !== "" && Buffer.byteLength(req.keyId) <= 64)
    v.pattern("key_id", req.keyId, KEY_ID, "a key id");
  v.length("subject", req.subject, 0, 256);
  v.length("client_ip", req.clientIp, 0, 64);
  if (req.clientIp !== "" && !normaliseIp(req.clientIp))
    v.add("client_ip", "must be an IPv4 or IPv6 address");
  v.length("endpoint", req.endpoint, 0, 128);
  v.length("method", req.method, 0, 16);
  if (req.method !== "")
    v.pattern("method", req.method, /^[A-Za-z]{1,16}$/, "an HTTP method token");
  v.length("path", req.path, 0, 2048);
  v.length("tier", req.tier, 0, 64);
  const policy = d.policy();
  if (req.tier !== "" && !policy.tiers.has(req.tier))
    v.add("tier", `must be a tier of the policy: ${validNames(policy.tiers.keys())}`);
  if (req.cost > 1_000_000) v.add("cost", "must be 0..1000000");
  const endpoint = v.ok ? resolveEndpoint(d, v, req.endpoint, req.method, req.path) : undefined;
  v.throwIfAny();

  let tier = req.tier || policy.defaultTier;
  let owner = "";
  if (req.keyId !== "") {
    let rec: KeyRecord | null | undefined;
    try {
      rec = await d.lookup.findById(req.keyId);
    } catch (err) {
      if (!isStoreUnavailable(err) || d.failMode(endpoint) !== "open") throw err;
      // Fail open needs the key's tier: only a recently seen key can be decided locally.
      rec = d.lookup.findByIdStale(req.keyId, d.staleKeyMaxMs);
      if (!rec) throw err;
    }
    if (!rec) throw apiError("KEY_NOT_FOUND");
    // A revoked or expired key is refused as Authorize refuses it: 401, nothing charged.
    const unusable = unusableReason(rec, d.clock.now());
    if (unusable) return refuseKey(d, req, ctx, rec, endpoint, unusable, started);
    tier = rec.tier;
    owner = rec.owner;
  }
  const r = await decideLimits(
    d,
    {
      tier,
      keyId: req.keyId,
      owner,
      clientIp: req.clientIp,
      subject: req.subject,
      endpoint,
      cost: req.cost,
    },
    "CheckRateLimit",
  );
  const decisionId = newDecisionId(d.clock.now());
  if (r.decidedLocally)
    d.metrics.localDecisions.inc({ rpc: "CheckRateLimit", decision: r.allowed ? "allow" : "deny" });
  d.metrics.countDecision({
    rpc: "CheckRateLimit",
    decision: r.allowed ? "allow" : "deny",
    reason: r.reason,
    tier: policy.tiers.has(tier) ? tier : "other",
  });
  if (d.accessLog) {
    d.log.info(
      {
        access: "CheckRateLimit",
        decisionId,
        keyId: req.keyId || undefined,
        reason: r.reason,
        allowed: r.allowed,
        endpoint: endpoint?.name,
        limit: r.deciding === undefined ? undefined : r.limits[r.deciding]?.limit.name,
        latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
        traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
      },
      "decision",
    );
  }
  return create(CheckRateLimitResponseSchema, {
    allowed: r.allowed,
    reason: REASON_TO_PROTO[r.reason],
    result: rateResultToProto(r),
    responseHeaders: r.headers.map(([n, val]) => header(n, val)),
    decisionId,
    httpStatus: r.allowed ? 200 : 429,
    decidedLocally: r.decidedLocally === true,
  });
}

const KEY_REFUSALS = {
  REVOKED_KEY: "the API key has been revoked",
  EXPIRED_KEY: "the API key has expired",
} as const;

/**
 * CheckRateLimit for the id of a revoked or expired key: denied with the key's
 * reason and 401, no limit charged, counted and logged like any decision, and
 * recorded as an `auth_failure` event (a dead key still in use is a signal).
 */
function refuseKey(
  d: ServiceDeps,
  req: CheckRateLimitRequest,
  ctx: HandlerContext,
  rec: KeyRecord,
  endpoint: Endpoint | undefined,
  reason: keyof typeof KEY_REFUSALS,
  started: bigint,
): CheckRateLimitResponse {
  const decisionId = newDecisionId(d.clock.now());
  recordAuthorize(
    d,
    "CheckRateLimit",
    req.clientIp,
    {
      allowed: false,
      reason,
      httpStatus: 401,
      record: rec,
      missingScopes: [],
      message: KEY_REFUSALS[reason],
      ...(endpoint && { endpoint }),
    },
    { allowed: false, decisionId },
    reason,
    "",
  );
  d.metrics.countDecision({
    rpc: "CheckRateLimit",
    decision: "deny",
    reason,
    tier: d.policy().tiers.has(rec.tier) ? rec.tier : "other",
  });
  if (d.accessLog) {
    d.log.info(
      {
        access: "CheckRateLimit",
        decisionId,
        keyId: rec.id,
        reason,
        allowed: false,
        endpoint: endpoint?.name,
        latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
        traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
      },
      "decision",
    );
  }
  return create(CheckRateLimitResponseSchema, {
    allowed: false,
    reason: REASON_TO_PROTO[reason],
    result: create(RateLimitResultSchema, { allowed: false }),
    responseHeaders: [header("www-authenticate", 'ApiKey realm="tollgate", error="invalid_key"')],
    decisionId,
    httpStatus: 401,
  });
}
