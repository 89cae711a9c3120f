/**
 * TollgateService handlers: proto ⇄ domain, validation, access log and metrics.
 * The same handlers serve gRPC (grpc-js) and Connect / gRPC-Web (connect-node).
 */
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AuthorizeRequest,
  type AuthorizeResponse,
  AuthorizeResponseSchema,
  type CheckRateLimitRequest,
  type RecordEventRequest,
  type RotateKeyRequest,
  type RotateKeyResponse,
  RotateKeyResponseSchema,
  type TollgateService,
} from "../gen/tollgate/v1/tollgate_service_pb.js";
import { normalisePath } from "../policy/path-normaliser.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { newDecisionId } from "../util/ids.js";
import {
  header,
  hintsToProto,
  identityToProto,
  keyToProto,
  REASON_TO_PROTO,
  ts,
} from "./convert.js";
import { apiError } from "./errors.js";
import {
  localAuthorizeBlock,
  markBlocked,
  recordAuthorize,
  recordEvent,
  recordKeyAction,
} from "./event-handlers.js";
import { authenticateManagement } from "./management-gate.js";
import { publicDenial } from "./public-denial.js";
import { checkRateLimit, decideLimits, rateResultToProto } from "./rate-limit-handlers.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

/** Longest api_key examined; longer keys are answered MALFORMED_KEY without any lookup. */
const MAX_KEY_BYTES = 256;
const MAX_GRACE_S = 30 * 86_400;

/** Builds the TollgateService implementation. */
export function createTollgateService(d: ServiceDeps): ServiceImpl<typeof TollgateService> {
  return {
    authorize: d.instrument("Authorize", (req: AuthorizeRequest, ctx: HandlerContext) =>
      authorize(d, req, ctx),
    ),
    checkRateLimit: d.instrument(
      "CheckRateLimit",
      (req: CheckRateLimitRequest, ctx: HandlerContext) => checkRateLimit(d, req, ctx),
    ),
    recordEvent: d.instrument("RecordEvent", (req: RecordEventRequest) => recordEvent(d, req)),
    rotateKey: d.instrument("RotateKey", (req: RotateKeyRequest, ctx: HandlerContext) =>
      rotateKey(d, req, ctx),
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

async function authorize(
  d: ServiceDeps,
  req: AuthorizeRequest,
  ctx: HandlerContext,
): Promise<AuthorizeResponse> {
  const started = process.hrtime.bigint();
  const v = new Violations();
  v.map("headers", req.headers, 64, 256, 8192);
  v.length("method", req.method, 0, 16);
  if (req.method !== "")
    v.pattern("method", req.method, /^[A-Za-z]{1,16}$/, "an HTTP method token");
  v.length("path", req.path, 0, 2048);
  v.length("client_ip", req.clientIp, 0, 64);
  if (req.clientIp !== "" && !normaliseIp(req.clientIp))
    v.add("client_ip", "must be an IPv4 or IPv6 address");
  v.scopes("required_scopes", req.requiredScopes, 32);
  v.length("endpoint", req.endpoint, 0, 128);
  if (req.endpoint !== "" && !d.policy().endpoints.some((e) => e.name === req.endpoint)) {
    v.add("endpoint", "must name an endpoint of the policy");
  }
  if (req.cost > 1_000_000) v.add("cost", "must be 0..1000000");
  let path = "/";
  if (req.path !== "") {
    const n = normalisePath(req.path);
    if (n.ok) path = n.path;
    else v.add("path", n.error);
  }
  v.throwIfAny();

  const key = presentedKey(req);
  // An oversized or ambiguous key is malformed: answered without any lookup.
  const secret =
    typeof key === "string" && Buffer.byteLength(key) <= MAX_KEY_BYTES ? key : "\u0000";
  // A blocked client IP is refused from the local block cache, without a key lookup.
  const ipBlock = localAuthorizeBlock(d, req.clientIp, undefined);
  const decision = await d.authorizer.authorize({
    secret: ipBlock ? "\u0000" : secret,
    method: req.method,
    normalisedPath: path,
    endpointName: req.endpoint,
    clientIp: req.clientIp,
    requiredScopes: req.requiredScopes,
  });
  const decisionId = newDecisionId(d.clock.now());
  const res = create(AuthorizeResponseSchema, {
    allowed: decision.allowed,
    reason: REASON_TO_PROTO[decision.reason],
    httpStatus: decision.httpStatus,
    decisionId,
    message: publicDenial(d.denialDetail, decision.reason, decision.message).message,
    endpoint: decision.endpoint?.name ?? "",
    missingScopes: decision.missingScopes,
  });
  if (decision.record) res.identity = identityToProto(decision.record);
  if (decision.hints) res.hints = hintsToProto(decision.hints);
  if (decision.decidedLocally) res.decidedLocally = true;
  let reasonName: string = decision.reason;
  const block =
    ipBlock ?? (decision.allowed ? localAuthorizeBlock(d, "", decision.record?.id) : undefined);
  if (block) {
    markBlocked(d, res, block.until);
    reasonName = "BLOCKED";
  }
  if (!block && decision.allowed && req.applyLimits && decision.record) {
    const r = await decideLimits(
      d,
      {
        tier: decision.record.tier,
        keyId: decision.record.id,
        owner: decision.record.owner,
        clientIp: req.clientIp,
        subject: "",
        endpoint: decision.endpoint,
        cost: req.cost,
      },
      "Authorize",
    );
    res.rateLimit = rateResultToProto(r);
    if (r.decidedLocally) res.decidedLocally = true;
    res.responseHeaders.push(...r.headers.map(([n, val]) => header(n, val)));
    if (!r.allowed) {
      res.allowed = false;
      res.reason = REASON_TO_PROTO[r.reason];
      res.httpStatus = 429;
      reasonName = r.reason;
      res.message =
        r.reason === "BLOCKED" ? "too many violations: temporarily blocked" : "rate limit exceeded";
    }
  }
  if (decision.httpStatus === 401 && !block) {
    const error = decision.reason === "MISSING_KEY" ? "" : `, error="invalid_key"`;
    res.responseHeaders.push(header("www-authenticate", `ApiKey realm="tollgate"${error}`));
  }
  recordAuthorize(d, "Authorize", req.clientIp, decision, res, reasonName, secret);
  const tier = decision.record?.tier ?? "none";
  if (res.decidedLocally)
    d.metrics.localDecisions.inc({ rpc: "Authorize", decision: res.allowed ? "allow" : "deny" });
  d.metrics.countDecision({
    rpc: "Authorize",
    decision: res.allowed ? "allow" : "deny",
    reason: reasonName,
    tier: d.policy().tiers.has(tier) ? tier : "other",
  });
  if (d.accessLog) {
    d.log.info(
      {
        access: "Authorize",
        decisionId,
        keyId: decision.record?.id,
        reason: reasonName,
        allowed: res.allowed,
        endpoint: decision.endpoint?.name,
        clientIp: req.clientIp || undefined,
        latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
        traceparent: ctx.requestHeader.get("traceparent") ?? undefined,
      },
      "decision",
    );
  }
  return res;
}

async function rotateKey(
  d: ServiceDeps,
  req: RotateKeyRequest,
  ctx: HandlerContext,
): Promise<RotateKeyResponse> {
  const v = new Violations();
  if ((req.keyId === "") === (req.currentSecret === "")) {
    v.add("key_id", "exactly one of key_id and current_secret must be set");
  }
  v.length("key_id", req.keyId, 0, 64);
  v.length("current_secret", req.currentSecret, 0, MAX_KEY_BYTES);
  let graceMs = d.defaultGraceMs;
  if (req.gracePeriod) {
    const s = Number(req.gracePeriod.seconds);
    if (s < 0 || req.gracePeriod.nanos < 0 || s > MAX_GRACE_S) {
      v.add("grace_period", `must be 0..${MAX_GRACE_S} seconds`);
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
    key: keyToProto(r.record),
    graceEndTime: ts(r.graceEndsAt),
  });
}
