/**
 * TollgateService handlers: proto ⇄ domain, validation, access log and metrics.
 * The same handlers serve gRPC (grpc-js) and Connect / gRPC-Web (connect-node).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { MALFORMED_SECRET } from "../decision/facts.js";
import { RateLimitResultSchema } from "../gen/tollgate/v1/ratelimit_pb.js";
import {
  type AuthorizeRequest,
  type AuthorizeResponse,
  type CheckRateLimitRequest,
  type RecordEventRequest,
  type RotateKeyRequest,
  type RotateKeyResponse,
  RotateKeyResponseSchema,
  type TollgateService,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import type { ReportUsageRequest } from "../gen/tollgate/v1/usage_report_pb.js";
import { INPUT_BOUNDS as B } from "../util/input-bounds.js";
import { authorizeResponse } from "./authorize-response.js";
import type { CallContext, Handlers } from "./call-context.js";
import {
  header,
  hintsToProto,
  identityToProto,
  keyToProto,
  REASON_TO_PROTO,
  ts,
} from "./convert.js";
import { creditsStateToProto } from "./credits-convert.js";
import { apiError } from "./errors.js";
import { recordEvent, recordKeyAction } from "./event-handlers.js";
import { authenticateManagement } from "./management-gate.js";
import { checkRateLimit, rateResultToProto } from "./rate-limit-handlers.js";
import { requestFieldFacts } from "./request-fields.js";
import type { ServiceDeps } from "./service-deps.js";
import { reportUsage } from "./usage-report-handler.js";
import { Violations } from "./validation.js";

/** Longest api_key examined; longer keys are answered MALFORMED_KEY without any lookup. */

/** Builds the TollgateService implementation. */
export function createTollgateService(d: ServiceDeps): Handlers<typeof TollgateService> {
  return {
    authorize: d.instrument("Authorize", (req: AuthorizeRequest, ctx: CallContext) =>
      authorize(d, req, ctx),
    ),
    checkRateLimit: d.instrument("CheckRateLimit", (req: CheckRateLimitRequest, ctx: CallContext) =>
      checkRateLimit(d, req, ctx),
    ),
    recordEvent: d.instrument("RecordEvent", (req: RecordEventRequest) => recordEvent(d, req)),
    rotateKey: d.instrument("RotateKey", (req: RotateKeyRequest, ctx: CallContext) =>
      rotateKey(d, req, ctx),
    ),
    reportUsage: d.instrument("ReportUsage", (req: ReportUsageRequest, ctx: CallContext) =>
      reportUsage(d, req, ctx),
    ),
  };
}

/** Finds the key in `api_key`, else in `headers` (name case-insensitive; two entries → ambiguous). */
function presentedKey(req: AuthorizeRequest): string | { ambiguous: true } {
  if (req.apiKey !== "") return req.apiKey;
  let found: string | undefined;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.toLowerCase() !== "x-api-key") continue;
    if (found !== undefined) return { ambiguous: true };
    found = value;
  }
  return found ?? "";
}

/** Authorize: validated request → facts → the engine's decision → AuthorizeResponse. */
async function authorize(
  d: ServiceDeps,
  req: AuthorizeRequest,
  ctx: CallContext,
): Promise<AuthorizeResponse> {
  const started = process.hrtime.bigint();
  const v = new Violations();
  v.map("headers", req.headers, B.headersMax, B.headerNameMaxBytes, B.headerValueMaxBytes);
  v.scopes("required_scopes", req.requiredScopes, B.requiredScopesMax);
  // A request without a path is decided as one for "/".
  const facts = requestFieldFacts(v, d.policy(), req, "/");
  v.throwIfAny();

  const key = presentedKey(req);
  const decision = await d.engine.decide({
    door: "Authorize",
    // An oversized or ambiguous key is malformed: answered without any lookup.
    credential: {
      kind: "secret",
      secret:
        typeof key === "string" && Buffer.byteLength(key) <= B.apiKeyMaxBytes
          ? key
          : MALFORMED_SECRET,
    },
    endpoint: facts.endpoint,
    clientIp: facts.clientIp,
    subject: "",
    cost: req.cost,
    requiredScopes: req.requiredScopes,
    applyLimits: req.applyLimits,
    traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
    started,
    callerTimeoutMs: ctx.timeoutMs(),
  });
  if (decision.kind === "incomplete") {
    Violations.fail(decision.missing, `is required by limit "${decision.limit}" of the policy`);
  }
  const res = authorizeResponse({
    allowed: decision.kind === "allowed",
    reason: REASON_TO_PROTO[decision.reason],
    httpStatus: decision.httpStatus,
    responseHeaders:
      decision.headers.length === 0 ? [] : decision.headers.map(([n, val]) => header(n, val)),
    decisionId: decision.decisionId,
    message: decision.kind === "allowed" ? "allowed" : decision.message,
    endpoint: decision.endpoint?.name ?? "",
    missingScopes: decision.kind === "denied" ? decision.missingScopes : [],
    decidedLocally: decision.decidedLocally === true,
  });
  if (decision.record) res.identity = identityToProto(decision.record);
  if (decision.hints) res.hints = hintsToProto(decision.hints);
  if (decision.limits) res.rateLimit = rateResultToProto(decision.limits);
  if (decision.limits?.credits) res.credits = creditsStateToProto(decision.limits.credits);
  else if (decision.kind === "blocked") {
    res.rateLimit = create(RateLimitResultSchema, {
      allowed: false,
      blockedUntil: ts(decision.until),
      retryAfter: durationFromMs(decision.retryAfterMs),
    });
  }
  return res;
}

async function rotateKey(
  d: ServiceDeps,
  req: RotateKeyRequest,
  ctx: CallContext,
): Promise<RotateKeyResponse> {
  const v = new Violations();
  if ((req.keyId === "") === (req.currentSecret === "")) {
    v.add("key_id", "exactly one of key_id and current_secret must be set");
  }
  v.length("key_id", req.keyId, 0, B.keyIdMaxBytes);
  v.length("current_secret", req.currentSecret, 0, B.apiKeyMaxBytes);
  let graceMs = d.defaultGraceMs;
  if (req.gracePeriod) {
    const s = Number(req.gracePeriod.seconds);
    if (s < 0 || req.gracePeriod.nanos < 0 || s > B.graceMaxS) {
      v.add("grace_period", `must be 0..${B.graceMaxS} seconds`);
    } else graceMs = s * 1000 + Math.floor(req.gracePeriod.nanos / 1e6);
  }
  v.throwIfAny();
  const actor =
    req.keyId !== "" ? await authenticateManagement(d, ctx.requestHeader, "RotateKey") : "self";
  const r =
    req.keyId !== ""
      ? await d.keys.rotateById(req.keyId, graceMs)
      : await d.keys.rotateBySecret(req.currentSecret, graceMs);
  if (r === "NOT_FOUND") throw apiError("KEY_NOT_FOUND");
  if (r === "REVOKED") throw apiError("KEY_REVOKED");
  if (r === "CONFLICT") throw apiError("CONCURRENT_UPDATE");
  if (r === "INVALID_SECRET") throw apiError("INVALID_SECRET");
  d.metrics.keyActions.inc({ action: "rotate" });
  recordKeyAction(d, "rotate", r.record.id, actor, r.record.owner);
  d.log.info(
    { audit: "rotate", keyId: r.record.id, actor, graceEndsAt: r.graceEndsAt },
    "key rotated",
  );
  return create(RotateKeyResponseSchema, {
    secret: r.secret,
    key: keyToProto(r.record, d.clock.now()),
    graceEndTime: ts(r.graceEndsAt),
  });
}
