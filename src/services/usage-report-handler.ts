/**
 * ReportUsage: a cost known only after the response, charged to the limits a
 * CheckRateLimit with the same facts would charge, without denying and at
 * most once per report id (see DecisionEngine.report). By `key_id` (or for a
 * subject or tier alone) the management token is required: a report can put
 * any key or subject in debt, which a CheckRateLimit (denied, charging
 * nothing, when the cost does not fit) cannot. By `api_key`, the reported
 * request's own secret, it is not: whoever holds a key may put that key, and
 * only it, in debt (what an application's middleware does after the response).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { KeyIdNotFound, UnknownSecret } from "../decision/decision-engine.js";
import {
  type ReportUsageRequest,
  type ReportUsageResponse,
  ReportUsageResponseSchema,
} from "../gen/tollgate/v1/usage_report_pb.js";
import { INPUT_BOUNDS as B, INPUT_PATTERNS } from "../util/input-bounds.js";
import type { CallContext } from "./call-context.js";
import { apiError } from "./errors.js";
import { authenticateManagement } from "./management-gate.js";
import { limitToProto } from "./rate-limit-handlers.js";
import { checkSubjectFields, requestFieldFacts } from "./request-fields.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

/** How long a report id is remembered, ms (docs/security-bounds.md). */
export const REPORT_ID_RETENTION_MS = B.reportIdRetentionS * 1000;

/** ReportUsage: validated request → the engine's forced charge → ReportUsageResponse. */
export async function reportUsage(
  d: ServiceDeps,
  req: ReportUsageRequest,
  ctx: CallContext,
): Promise<ReportUsageResponse> {
  const v = new Violations();
  if (req.id === "") v.add("id", "is required (the report's idempotency key)");
  else v.pattern("id", req.id, INPUT_PATTERNS.reportId, "1..128 of [A-Za-z0-9._:-]");
  v.length("api_key", req.apiKey, 0, B.apiKeyMaxBytes);
  if (req.apiKey !== "" && req.keyId !== "")
    v.add("api_key", "give either api_key (the reported request's key) or key_id, not both");
  const policy = d.policy();
  checkSubjectFields(v, policy, req);
  // The cost is required here (0 is no report), so it is judged apart.
  if (req.cost < 1 || req.cost > B.maxCost) v.add("cost", `must be 1..${B.maxCost}`);
  const { clientIp, endpoint } = requestFieldFacts(v, policy, { ...req, cost: 0 }, undefined);
  v.throwIfAny();
  // The reported request's own key authenticates a report on that key alone.
  if (req.apiKey === "") await authenticateManagement(d, ctx.requestHeader, "ReportUsage");

  let r: Awaited<ReturnType<typeof d.engine.report>>;
  try {
    r = await d.engine.report({
      credential:
        req.apiKey !== ""
          ? { kind: "secret", secret: req.apiKey }
          : req.keyId !== ""
            ? { kind: "key-id", keyId: req.keyId }
            : { kind: "anonymous", tier: req.tier || policy.defaultTier },
      endpoint,
      clientIp,
      subject: req.subject,
      cost: req.cost,
      once: { id: req.id, ttlMs: REPORT_ID_RETENTION_MS },
      callerTimeoutMs: ctx.timeoutMs(),
    });
  } catch (err) {
    if (err instanceof KeyIdNotFound) throw apiError("KEY_NOT_FOUND");
    if (err instanceof UnknownSecret) throw apiError("INVALID_SECRET");
    throw err;
  }
  if ("missing" in r) Violations.fail(r.missing, `is required by limit "${r.limit}" of the policy`);
  // When a request of cost 1 fits again: the latest of the enforced limits.
  const retryMs = Math.max(
    0,
    ...r.limits.filter((s) => s.limit.mode !== "shadow").map((s) => s.outcome.retryMs),
  );
  d.log.debug(
    { reportId: req.id, keyId: req.keyId || undefined, cost: req.cost, duplicate: r.duplicate },
    "usage reported",
  );
  return create(ReportUsageResponseSchema, {
    duplicate: r.duplicate,
    limits: r.limits.map(limitToProto),
    retryAfter: durationFromMs(retryMs),
  });
}
