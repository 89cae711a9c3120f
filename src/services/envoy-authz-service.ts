/**
 * Envoy external authorization (`envoy.service.auth.v3.Authorization/Check`):
 * one decision per HTTP request — key, IP, scopes and (unless the route says
 * otherwise) rate limits. A denial is a CheckResponse with a non-OK status and
 * a `denied_response`; only infrastructure failure is an RPC error, so Envoy's
 * `failure_mode_allow` decides what an outage means. Hostile input (repeated,
 * control-character, oversized or non-UTF-8 headers) is always a denial.
 *
 * Per-route settings come from `context_extensions`: `endpoint` (policy endpoint
 * name), `scopes` (extra required scopes, space or comma separated),
 * `apply_limits` (`true` default, `false` to skip limits) and `cost`.
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
} from "../gen/envoy/config/core/v3/base_pb.js";
import type { AttributeContext_HttpRequest } from "../gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  type Authorization,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import type { AuthDecision } from "../keys/authorizer.js";
import { normalisePath } from "../policy/path-normaliser.js";
import type { RateDecision } from "../ratelimit/rate-limiter.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { newDecisionId } from "../util/ids.js";
import { localAuthorizeBlock, recordAuthorize } from "./event-handlers.js";
import { type DenialDetail, publicDenial } from "./public-denial.js";
import { decideLimits } from "./rate-limit-handlers.js";
import type { ServiceDeps } from "./service-deps.js";

const SCOPE = /^[A-Za-z0-9:._/*-]{1,128}$/;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** gRPC status codes Envoy sees in `CheckResponse.status`. */
const GRPC = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNAUTHENTICATED: 16,
};

/** Builds the ext_authz service implementation. */
export function createEnvoyAuthzService(d: ServiceDeps): ServiceImpl<typeof Authorization> {
  return {
    check: d.instrument("Check", (req: CheckRequest, ctx: HandlerContext) => check(d, req, ctx)),
  };
}

/** Request headers as name → values, from `header_map` (newer Envoys) or `headers`. */
function readHeaders(
  http: AttributeContext_HttpRequest | undefined,
): Map<string, string[]> | "invalid" {
  const out = new Map<string, string[]>();
  const add = (k: string, v: string) =>
    out.set(k.toLowerCase(), [...(out.get(k.toLowerCase()) ?? []), v]);
  if (!http) return out;
  if (http.headerMap && http.headerMap.headers.length > 0) {
    for (const h of http.headerMap.headers) {
      if (h.rawValue.length > 0) {
        try {
          add(h.key, UTF8.decode(h.rawValue));
        } catch {
          return "invalid";
        }
      } else add(h.key, h.value);
    }
  } else {
    for (const [k, v] of Object.entries(http.headers)) add(k, v);
  }
  return out;
}

async function check(
  d: ServiceDeps,
  req: CheckRequest,
  ctx: HandlerContext,
): Promise<CheckResponse> {
  const started = process.hrtime.bigint();
  const decisionId = newDecisionId(d.clock.now());
  const http = req.attributes?.request?.http;
  const headers = readHeaders(http);
  const ext = req.attributes?.contextExtensions ?? {};
  const finish = (res: CheckResponse, reason: string, keyId?: string, tier?: string) => {
    d.metrics.countDecision({
      rpc: "Check",
      decision: res.status?.code === GRPC.OK ? "allow" : "deny",
      reason,
      tier: tier && d.policy().tiers.has(tier) ? tier : tier ? "other" : "none",
    });
    if (d.accessLog) {
      d.log.info(
        {
          access: "Check",
          decisionId,
          keyId,
          reason,
          allowed: res.status?.code === GRPC.OK,
          latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
          traceparent:
            headerOne(headers, "traceparent") ?? ctx.requestHeader.get("traceparent") ?? undefined,
        },
        "decision",
      );
    }
    return res;
  };

  if (headers === "invalid")
    return finish(
      denied(
        GRPC.INVALID_ARGUMENT,
        400,
        "invalid_header",
        "a request header is not valid UTF-8",
        decisionId,
      ),
      "INVALID_HEADER",
    );
  let count = 0;
  let bytes = 0;
  for (const [k, vs] of headers) {
    count += vs.length;
    for (const v of vs) bytes += k.length + v.length;
  }
  if (count > d.envoy.maxHeaders || bytes > d.envoy.maxHeaderBytes) {
    return finish(
      denied(
        GRPC.INVALID_ARGUMENT,
        431,
        "headers_too_large",
        "request headers are too large",
        decisionId,
      ),
      "HEADERS_TOO_LARGE",
    );
  }

  // The key: exactly one header value, taken as is. Envoy joins repeated
  // headers with ",", which (like whitespace or control characters) can never
  // be part of a well-formed key, so such requests are MALFORMED_KEY.
  const keyValues = headers.get(d.envoy.keyHeader) ?? [];
  const secret =
    keyValues.length === 0
      ? ""
      : keyValues.length === 1 && (keyValues[0] as string).length <= 256
        ? (keyValues[0] as string)
        : "\u0000";

  const normalised = normalisePath(http?.path || "/");
  if (!normalised.ok)
    return finish(
      denied(
        GRPC.INVALID_ARGUMENT,
        400,
        "invalid_path",
        "the request path is not valid",
        decisionId,
      ),
      "INVALID_PATH",
    );
  // One endpoint per request, by the rule Authorize follows: the route's
  // explicit `endpoint`, else the one matched from method + normalised path —
  // used alike for scopes, cost and limits. A route naming an endpoint the
  // policy lacks is a configuration mistake: denied (a call error could let
  // failure_mode_allow pass it), never silently matched another way.
  const endpointName = ext.endpoint ?? "";
  if (endpointName !== "" && !d.policy().endpoints.some((e) => e.name === endpointName)) {
    d.log.warn(
      { access: "Check", decisionId, endpoint: endpointName.slice(0, 128) },
      "context_extensions.endpoint names no endpoint of the policy: request denied",
    );
    return finish(
      denied(
        GRPC.INVALID_ARGUMENT,
        500,
        "unknown_endpoint",
        "the route names an endpoint the policy does not define",
        decisionId,
      ),
      "UNKNOWN_ENDPOINT",
    );
  }
  const extraScopes = (ext.scopes ?? "")
    .split(/[\s,]+/)
    .filter((s) => SCOPE.test(s))
    .slice(0, 32);
  const clientIp = clientAddress(d, req, headers);

  // Blocked subjects (limits or detection rules) are refused from this
  // replica's block cache, with no store call: first the client IP, then the key.
  const blockedRes = (until: number) => {
    const retryMs = Math.max(0, until - d.clock.now());
    const retry: [string, string][] = [
      ["retry-after", String(Math.max(1, Math.ceil(retryMs / 1000)))],
    ];
    return denied(
      GRPC.RESOURCE_EXHAUSTED,
      429,
      "blocked",
      "too many violations: temporarily blocked",
      decisionId,
      retry,
    );
  };
  const ipBlock = localAuthorizeBlock(d, clientIp, undefined);
  const decision = await d.authorizer.authorize({
    secret: ipBlock ? "\u0000" : secret,
    method: http?.method ?? "",
    normalisedPath: normalised.path,
    endpointName,
    clientIp,
    requiredScopes: extraScopes,
  });
  const effective = decision.endpoint;
  const block =
    ipBlock ?? (decision.allowed ? localAuthorizeBlock(d, "", decision.record?.id) : undefined);
  if (block) {
    recordAuthorize(
      d,
      "Check",
      clientIp,
      decision,
      { allowed: false, decisionId },
      "BLOCKED",
      secret,
    );
    return finish(blockedRes(block.until), "BLOCKED", decision.record?.id, decision.record?.tier);
  }
  if (!decision.allowed || !decision.record) {
    recordAuthorize(
      d,
      "Check",
      clientIp,
      decision,
      { allowed: false, decisionId },
      decision.reason,
      secret,
    );
    return finish(
      authDenied(decision, decisionId, d.denialDetail),
      decision.reason,
      decision.record?.id,
      decision.record?.tier,
    );
  }

  let limits: RateDecision | undefined;
  if (ext.apply_limits !== "false") {
    const cost = Number(ext.cost ?? 0);
    try {
      limits = await decideLimits(
        d,
        {
          tier: decision.record.tier,
          keyId: decision.record.id,
          owner: decision.record.owner,
          clientIp,
          subject: "",
          endpoint: effective,
          cost: Number.isInteger(cost) && cost > 0 && cost <= 1_000_000 ? cost : 0,
        },
        "Check",
      );
    } catch (err) {
      // A limit needing something this request lacks (e.g. no client address)
      // must deny: as a call error, failure_mode_allow could let it through.
      if (err instanceof ConnectError && err.code === Code.InvalidArgument) {
        const res = denied(
          GRPC.INVALID_ARGUMENT,
          400,
          "bad_request",
          "the request lacks what a rate limit needs",
          decisionId,
        );
        return finish(res, "INVALID_REQUEST", decision.record.id, decision.record.tier);
      }
      throw err;
    }
    if (!limits.allowed) {
      const message =
        limits.reason === "BLOCKED"
          ? "too many violations: temporarily blocked"
          : "rate limit exceeded";
      const res = denied(
        GRPC.RESOURCE_EXHAUSTED,
        429,
        limits.reason.toLowerCase(),
        message,
        decisionId,
        limits.headers,
      );
      return finish(res, limits.reason, decision.record.id, decision.record.tier);
    }
  }
  const r = decision.record;
  const identity: Record<string, string> = {
    "key-id": r.id,
    owner: r.owner,
    tier: r.tier,
    scopes: r.scopes.join(" "),
    environment: r.environment,
  };
  const metadata: JsonObject = {
    key_id: r.id,
    tier: r.tier,
    owner: r.owner,
    decision_id: decisionId,
  };
  if (effective) metadata.endpoint = effective.name;
  const res = create(CheckResponseSchema, {
    status: create(StatusSchema, { code: GRPC.OK }),
    httpResponse: {
      case: "okResponse",
      value: {
        headers: d.envoy.identityHeaders.map((h) =>
          option(`x-tollgate-${h}`, identity[h] ?? "", true),
        ),
        headersToRemove: headersToRemove(d, headers),
        responseHeadersToAdd: (limits?.headers ?? []).map(([k, v]) => option(k, v, true)),
      },
    },
    dynamicMetadata: metadata,
  });
  recordAuthorize(d, "Check", clientIp, decision, { allowed: true, decisionId }, "OK", secret);
  return finish(res, "OK", r.id, r.tier);
}

/** Tollgate's identity namespace: the application trusts these headers as set by Tollgate. */
const IDENTITY_PREFIX = "x-tollgate-";

/**
 * Request headers Envoy must strip before the application sees the request:
 * the key header (if configured), and every `x-tollgate-*` header the client
 * sent that Tollgate does not overwrite — else a client could pass, say,
 * `x-tollgate-environment: spoofed` to an application trusting the namespace.
 */
function headersToRemove(d: ServiceDeps, headers: Map<string, string[]>): string[] {
  const set = new Set(d.envoy.identityHeaders.map((h) => `${IDENTITY_PREFIX}${h}`));
  const out = d.envoy.removeKeyHeader ? [d.envoy.keyHeader] : [];
  for (const name of headers.keys()) {
    if (name.startsWith(IDENTITY_PREFIX) && !set.has(name)) out.push(name);
  }
  return out;
}

function headerOne(h: Map<string, string[]> | "invalid", name: string): string | undefined {
  return h === "invalid" ? undefined : h.get(name)?.[0];
}

/** The client IP: the connection's source, or X-Forwarded-For counted back over trusted hops. */
function clientAddress(d: ServiceDeps, req: CheckRequest, headers: Map<string, string[]>): string {
  const sa = req.attributes?.source?.address?.address;
  const source = sa?.case === "socketAddress" ? sa.value.address : "";
  if (d.envoy.trustedHops === 0) return normaliseIp(source)?.address ?? "";
  const xff = (headers.get("x-forwarded-for") ?? [])
    .join(",")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  // With n trusted proxies, the client is the n-th address from the right.
  const candidate = xff[xff.length - d.envoy.trustedHops];
  return normaliseIp(candidate ?? source)?.address ?? normaliseIp(source)?.address ?? "";
}

function option(key: string, value: string, overwrite: boolean): HeaderValueOption {
  return create(HeaderValueOptionSchema, {
    header: { key, value },
    appendAction: overwrite
      ? HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
      : HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD,
  });
}

function authDenied(
  decision: AuthDecision,
  decisionId: string,
  detail: DenialDetail,
): CheckResponse {
  // The body reaches the end user: bad-key reasons read alike unless detailed.
  const shown = publicDenial(detail, decision.reason, decision.message);
  if (decision.httpStatus === 403) {
    return denied(GRPC.PERMISSION_DENIED, 403, shown.error, shown.message, decisionId);
  }
  const challenge: [string, string][] = [
    [
      "www-authenticate",
      decision.reason === "MISSING_KEY"
        ? 'ApiKey realm="tollgate"'
        : 'ApiKey realm="tollgate", error="invalid_key"',
    ],
  ];
  return denied(GRPC.UNAUTHENTICATED, 401, shown.error, shown.message, decisionId, challenge);
}

/** A denial: non-OK status, the HTTP status Envoy sends, headers and a small JSON body (never a secret). */
function denied(
  grpcCode: number,
  httpStatus: number,
  error: string,
  message: string,
  decisionId: string,
  headers: [string, string][] = [],
): CheckResponse {
  return create(CheckResponseSchema, {
    status: create(StatusSchema, { code: grpcCode, message }),
    httpResponse: {
      case: "deniedResponse",
      value: {
        status: { code: httpStatus },
        headers: [["content-type", "application/json"] as [string, string], ...headers].map(
          ([k, v]) => option(k, v, true),
        ),
        body: JSON.stringify({ error, message, decision_id: decisionId }),
      },
    },
  });
}
