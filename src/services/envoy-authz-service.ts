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
import type { JsonObject } from "@bufbuild/protobuf";
import type { Allowed } from "../decision/decision.js";
import { resolveEndpoint } from "../decision/endpoint-rule.js";
import { type ClientIp, MALFORMED_SECRET } from "../decision/facts.js";
import {
  type HeaderValueOption,
  HeaderValueOption_HeaderAppendAction,
  HeaderValueOptionSchema,
  HeaderValueSchema,
} from "../gen/envoy/config/core/v3/base_pb.js";
import type { AttributeContext_HttpRequest } from "../gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  type Authorization,
  type CheckRequest,
  type CheckResponse,
  CheckResponseSchema,
  DeniedHttpResponseSchema,
  OkHttpResponseSchema,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import { HttpStatusSchema } from "../gen/envoy/type/v3/http_status_pb.js";
import { type Status, StatusSchema } from "../gen/google/rpc/status_pb.js";
import { normalisePath } from "../policy/path-normaliser.js";
import { normaliseIp } from "../subjects/ip-address.js";
import { newDecisionId } from "../util/ids.js";
import { INPUT_BOUNDS as B, INPUT_PATTERNS } from "../util/input-bounds.js";
import type { CallContext, Handlers } from "./call-context.js";
import { messageBuilder } from "./message-literals.js";
import type { ServiceDeps } from "./service-deps.js";

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
export function createEnvoyAuthzService(d: ServiceDeps): Handlers<typeof Authorization> {
  return {
    check: d.instrument("Check", (req: CheckRequest, ctx: CallContext) => check(d, req, ctx)),
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

/** Check: Envoy's CheckRequest → facts → the engine's decision → CheckResponse. */
async function check(d: ServiceDeps, req: CheckRequest, ctx: CallContext): Promise<CheckResponse> {
  const started = process.hrtime.bigint();
  const http = req.attributes?.request?.http;
  const headers = readHeaders(http);
  const ext = req.attributes?.contextExtensions ?? {};
  const traceparent =
    headerOne(headers, "traceparent") ?? ctx.requestHeader.get("traceparent") ?? undefined;
  // A refusal of the request itself, before (or instead of) a decision: counted and logged.
  const refuse = (
    httpStatus: number,
    reason: string,
    error: string,
    message: string,
    who: { keyId?: string; tier?: string } = {},
  ): CheckResponse => {
    const decisionId = newDecisionId(d.clock.now());
    d.observer.refused("Check", reason, { decisionId, started, traceparent, ...who });
    return denied(GRPC.INVALID_ARGUMENT, httpStatus, error, message, decisionId);
  };

  if (headers === "invalid")
    return refuse(400, "INVALID_HEADER", "invalid_header", "a request header is not valid UTF-8");
  let count = 0;
  let bytes = 0;
  for (const [k, vs] of headers) {
    count += vs.length;
    for (const v of vs) bytes += k.length + v.length;
  }
  if (count > d.envoy.maxHeaders || bytes > d.envoy.maxHeaderBytes) {
    return refuse(431, "HEADERS_TOO_LARGE", "headers_too_large", "request headers are too large");
  }

  // The key: exactly one header value, taken as is. Envoy joins repeated
  // headers with ",", which (like whitespace or control characters) can never
  // be part of a well-formed key, so such requests are MALFORMED_KEY.
  const keyValues = headers.get(d.envoy.keyHeader) ?? [];
  const secret =
    keyValues.length === 0
      ? ""
      : keyValues.length === 1 && (keyValues[0] as string).length <= B.apiKeyMaxBytes
        ? (keyValues[0] as string)
        : MALFORMED_SECRET;

  const normalised = normalisePath(http?.path || "/");
  if (!normalised.ok)
    return refuse(400, "INVALID_PATH", "invalid_path", "the request path is not valid");
  // One endpoint per request, by the rule Authorize follows (the route's
  // explicit `endpoint`, else matched). A route naming an endpoint the policy
  // lacks is a configuration mistake: denied (a call error could let
  // failure_mode_allow pass it), never silently matched another way.
  const resolved = resolveEndpoint(
    d.policy(),
    ext.endpoint ?? "",
    http?.method ?? "",
    normalised.path,
  );
  if ("unknown" in resolved) {
    d.log.warn(
      { access: "Check", endpoint: resolved.unknown.slice(0, B.endpointMaxBytes) },
      "context_extensions.endpoint names no endpoint of the policy: request denied",
    );
    return refuse(
      500,
      "UNKNOWN_ENDPOINT",
      "unknown_endpoint",
      "the route names an endpoint the policy does not define",
    );
  }
  const extraScopes = (ext.scopes ?? "")
    .split(/[\s,]+/)
    .filter((s) => INPUT_PATTERNS.scope.test(s))
    .slice(0, B.requiredScopesMax);
  const cost = Number(ext.cost ?? 0);
  const decision = await d.engine.decide({
    door: "Check",
    credential: { kind: "secret", secret },
    endpoint: resolved.endpoint,
    clientIp: clientAddress(d, req, headers),
    subject: "",
    cost: Number.isInteger(cost) && cost > 0 && cost <= B.maxCost ? cost : 0,
    requiredScopes: extraScopes,
    applyLimits: ext.apply_limits !== "false",
    traceparent,
    started,
    callerTimeoutMs: ctx.timeoutMs(),
  });
  switch (decision.kind) {
    case "incomplete":
      // A limit needing something this request lacks (e.g. no client address)
      // must deny: as a call error, failure_mode_allow could let it through.
      return refuse(
        400,
        "INVALID_REQUEST",
        "bad_request",
        "the request lacks what a rate limit needs",
        decision.record ? { keyId: decision.record.id, tier: decision.record.tier } : {},
      );
    case "blocked":
    case "denied":
      return denied(
        GRPC_OF_STATUS[decision.httpStatus],
        decision.httpStatus,
        decision.error,
        decision.message,
        decision.decisionId,
        decision.headers,
      );
    case "allowed":
      return allowedResponse(d, decision, headers);
  }
}

/** gRPC status codes Envoy sees for each HTTP status of a denial. */
const GRPC_OF_STATUS = {
  401: GRPC.UNAUTHENTICATED,
  // 402 (credits exhausted): the balance, a resource, is used up.
  402: GRPC.RESOURCE_EXHAUSTED,
  403: GRPC.PERMISSION_DENIED,
  429: GRPC.RESOURCE_EXHAUSTED,
} as const;

/** An OK CheckResponse: identity headers upstream, limit headers downstream, metadata. */
function allowedResponse(
  d: ServiceDeps,
  decision: Allowed,
  headers: Map<string, string[]>,
): CheckResponse {
  const r = decision.record;
  const identity: Record<string, string> = r
    ? {
        "key-id": r.id,
        owner: r.owner,
        tier: r.tier,
        scopes: r.scopes.join(" "),
        environment: r.environment,
      }
    : {};
  const metadata: JsonObject = {
    key_id: r?.id ?? "",
    tier: r?.tier ?? "",
    owner: r?.owner ?? "",
    decision_id: decision.decisionId,
  };
  if (decision.endpoint) metadata.endpoint = decision.endpoint.name;
  return checkResponse({
    status: OK_STATUS,
    httpResponse: {
      case: "okResponse",
      value: okHttpResponse({
        headers: d.envoy.identityHeaders.map((h) =>
          option(`x-tollgate-${h}`, identity[h] ?? "", true),
        ),
        headersToRemove: headersToRemove(d, headers),
        responseHeadersToAdd: decision.headers.map(([k, v]) => option(k, v, true)),
      }),
    },
    dynamicMetadata: metadata,
  });
}

// Builders of the answer's messages (message-literals.ts: create's result
// without its descriptor walk, which was most of an allowed Check's
// protobuf-es cost in the profile).
const checkResponse = messageBuilder(CheckResponseSchema);
const okHttpResponse = messageBuilder(OkHttpResponseSchema);
const deniedHttpResponse = messageBuilder(DeniedHttpResponseSchema);
const headerValueOption = messageBuilder(HeaderValueOptionSchema);
const headerValue = messageBuilder(HeaderValueSchema);
const status = messageBuilder(StatusSchema);
const httpStatus = messageBuilder(HttpStatusSchema);
/** Every allowed answer's status (frozen: shared). */
const OK_STATUS = Object.freeze(status({ code: GRPC.OK })) as Status;

/** Tollgate's identity namespace: the application trusts these headers as set by Tollgate. */
const IDENTITY_PREFIX = "x-tollgate-";

/** The identity headers Tollgate sets, per Envoy settings: built once, not per Check. */
const OVERWRITTEN = new WeakMap<ServiceDeps["envoy"], ReadonlySet<string>>();

/**
 * Request headers Envoy must strip before the application sees the request:
 * the key header (if configured), and every `x-tollgate-*` header the client
 * sent that Tollgate does not overwrite — else a client could pass, say,
 * `x-tollgate-environment: spoofed` to an application trusting the namespace.
 */
function headersToRemove(d: ServiceDeps, headers: Map<string, string[]>): string[] {
  let set = OVERWRITTEN.get(d.envoy);
  if (!set) {
    set = new Set(d.envoy.identityHeaders.map((h) => `${IDENTITY_PREFIX}${h}`));
    OVERWRITTEN.set(d.envoy, set);
  }
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
function clientAddress(
  d: ServiceDeps,
  req: CheckRequest,
  headers: Map<string, string[]>,
): ClientIp | undefined {
  const sa = req.attributes?.source?.address?.address;
  const source = sa?.case === "socketAddress" ? sa.value.address : "";
  if (d.envoy.trustedHops === 0) return normaliseIp(source);
  const xff = (headers.get("x-forwarded-for") ?? [])
    .join(",")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  // With n trusted proxies, the client is the n-th address from the right.
  const candidate = xff[xff.length - d.envoy.trustedHops];
  return normaliseIp(candidate ?? source) ?? normaliseIp(source);
}

function option(key: string, value: string, overwrite: boolean): HeaderValueOption {
  return headerValueOption({
    header: headerValue({ key, value }),
    appendAction: overwrite
      ? HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
      : HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD,
  });
}

/** A denial: non-OK status, the HTTP status Envoy sends, headers and a small JSON body (never a secret). */
function denied(
  grpcCode: number,
  httpStatusCode: number,
  error: string,
  message: string,
  decisionId: string,
  headers: [string, string][] = [],
): CheckResponse {
  return checkResponse({
    status: status({ code: grpcCode, message }),
    httpResponse: {
      case: "deniedResponse",
      value: deniedHttpResponse({
        status: httpStatus({ code: httpStatusCode }),
        headers: [["content-type", "application/json"] as [string, string], ...headers].map(
          ([k, v]) => option(k, v, true),
        ),
        body: JSON.stringify({ error, message, decision_id: decisionId }),
      }),
    },
  });
}
