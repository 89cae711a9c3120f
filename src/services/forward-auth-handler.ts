/**
 * HTTP forward-auth for proxies that are not Envoy: nginx `auth_request`,
 * Caddy `forward_auth`, Traefik `ForwardAuth`. Each request to the endpoint is
 * turned into the CheckRequest Envoy would send for the same facts and decided
 * by the very ext_authz handler (envoy-authz-service.ts), so the decision is
 * Envoy's `Check` decision by construction; only its wire form differs:
 *
 *  - allowed: 200 with the identity headers (`x-tollgate-key-id`, …) and the
 *    rate-limit headers, for the proxy to copy upstream / to the client;
 *  - denied: the status Envoy's denied_response carries (401 / 403 / 429 /
 *    400 / 431 / 500), its headers (`www-authenticate`, `retry-after`,
 *    RateLimit…) and the same small JSON body;
 *  - a failed decision (store down, fail mode closed): 503 with a Connect
 *    error body, the analogue of Envoy's failed call.
 *
 * The original request comes from the proxy's headers: method from
 * `X-Original-Method` (nginx) or `X-Forwarded-Method` (Caddy, Traefik), URI
 * from `X-Original-URI` or `X-Forwarded-Uri`; a request carrying neither URI is
 * refused (400), never guessed. The client address is the connection's source,
 * or `X-Forwarded-For` counted back over TOLLGATE_TRUSTED_HOPS proxies, as for
 * Envoy. The key is the configured key header, as the proxy forwarded it.
 *
 * Route settings come from the auth URL's query, like Envoy's
 * `context_extensions`: `endpoint`, `scopes`, `apply_limits`, `cost`; plus
 * `compat=nginx`: nginx's `auth_request` only understands 2xx, 401 and 403, so
 * every other refusal is answered 403, with the real status in
 * `x-tollgate-status` and the JSON body in `x-tollgate-body` for the shipped
 * nginx configuration to rebuild (examples/nginx/nginx.conf).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HeaderValueSchema } from "../gen/envoy/config/core/v3/base_pb.js";
import {
  type Authorization,
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
} from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import type { CallContext, Handlers } from "./call-context.js";
import { createEnvoyAuthzService } from "./envoy-authz-service.js";
import type { ServiceDeps } from "./service-deps.js";

/** The path of the forward-auth endpoint on the HTTP port. */
export const FORWARD_AUTH_PATH = "/forward-auth";

/** Query parameters that become context_extensions (others are ignored). */
const EXTENSIONS = ["endpoint", "scopes", "apply_limits", "cost"] as const;

/** Either kind of Node HTTP request / response the HTTP port hands out. */
type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Options of createForwardAuthHandler. */
export interface ForwardAuthOptions {
  /** The ext_authz implementation deciding; default: createEnvoyAuthzService(deps). */
  authz?: Handlers<typeof Authorization>;
}

/** Builds the forward-auth request handler (any method, any query). */
export function createForwardAuthHandler(
  d: ServiceDeps,
  o: ForwardAuthOptions = {},
): (req: Req, res: Res) => Promise<void> {
  const authz = o.authz ?? createEnvoyAuthzService(d);
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://forward-auth");
    const nginx = url.searchParams.get("compat") === "nginx";
    const one = (name: string) => {
      const v = req.headers[name];
      return typeof v === "string" ? v : undefined;
    };
    const uri = one("x-original-uri") ?? one("x-forwarded-uri");
    if (uri === undefined) {
      return send(res, nginx, 400, [["content-type", "application/json"]], {
        error: "bad_request",
        message: "the proxy sent no X-Original-URI or X-Forwarded-Uri header",
      });
    }
    const method = (one("x-original-method") ?? one("x-forwarded-method") ?? "GET").toUpperCase();
    const checkReq = toCheckRequest(req, method, uri, url);
    let out: CheckResponse;
    try {
      // The implementation returns a full message; the handler type only promises an init.
      out = (await authz.check(checkReq, callContext(req))) as CheckResponse;
    } catch (err) {
      const ce = ConnectError.from(err);
      const status = ce.code === Code.InvalidArgument ? 400 : 503;
      return send(res, nginx, status, [["content-type", "application/json"]], {
        code: Code[ce.code]?.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()),
        message: ce.rawMessage,
      });
    }
    const http = out.httpResponse;
    if (http.case === "okResponse") {
      const headers: [string, string][] = [
        ...http.value.headers.map((h) => [h.header?.key ?? "", h.header?.value ?? ""]),
        ...http.value.responseHeadersToAdd.map((h) => [h.header?.key ?? "", h.header?.value ?? ""]),
      ].filter(([k]) => k !== "") as [string, string][];
      res.writeHead(200, Object.fromEntries(headers));
      res.end();
      return;
    }
    const denied = http.case === "deniedResponse" ? http.value : undefined;
    const status = denied?.status?.code || 403;
    const headers = (denied?.headers ?? [])
      .map((h) => [h.header?.key ?? "", h.header?.value ?? ""] as [string, string])
      .filter(([k]) => k !== "");
    send(res, nginx, status, headers, denied?.body ?? "");
  };
}

/** The CheckRequest Envoy would send for this original request. */
function toCheckRequest(req: Req, method: string, uri: string, url: URL): CheckRequest {
  const headers = [];
  // Every value apart, as Envoy's header_map has them, so a repeated key
  // header is seen as repeated (and refused), not joined.
  const distinct: Record<string, string[] | undefined> =
    "headersDistinct" in req && req.headersDistinct
      ? req.headersDistinct
      : Object.fromEntries(
          Object.entries(req.headers).map(([k, v]) => [k, v === undefined ? [] : [v].flat()]),
        );
  for (const [key, values] of Object.entries(distinct)) {
    if (key.startsWith(":")) continue;
    for (const value of values ?? []) headers.push(create(HeaderValueSchema, { key, value }));
  }
  const contextExtensions: Record<string, string> = {};
  for (const k of EXTENSIONS) {
    const v = url.searchParams.get(k);
    if (v !== null) contextExtensions[k] = v;
  }
  return create(CheckRequestSchema, {
    attributes: {
      source: {
        address: {
          address: {
            case: "socketAddress",
            value: { address: req.socket?.remoteAddress ?? "" },
          },
        },
      },
      request: {
        http: {
          method,
          path: uri,
          host: req.headers.host ?? "",
          headerMap: { headers },
        },
      },
      contextExtensions,
    },
  });
}

/** A signal that never aborts: the proxy's subrequest is not cancelled mid-decision. */
const NEVER_ABORTED = new AbortController().signal;

/** The call context of the check: the original request's traceparent, no deadline. */
function callContext(req: Req): CallContext {
  const tp = req.headers.traceparent;
  return {
    requestHeader: {
      get: (name) => (name === "traceparent" && typeof tp === "string" ? tp : null),
    },
    signal: NEVER_ABORTED,
    timeoutMs: () => undefined,
  };
}

/**
 * Writes a refusal. In nginx mode a status other than 401 / 403 becomes 403;
 * the real status and the body travel in headers (`x-tollgate-status`,
 * `x-tollgate-body`), since nginx discards an auth subrequest's body.
 */
function send(
  res: Res,
  nginx: boolean,
  status: number,
  headers: [string, string][],
  body: string | Record<string, unknown>,
): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const out: Record<string, string> = Object.fromEntries(headers);
  let code = status;
  if (nginx) {
    out["x-tollgate-status"] = String(status);
    // The body is Tollgate's own small ASCII JSON (never client input), safe in a header.
    out["x-tollgate-body"] = text.replace(/[^\x20-\x7e]/g, "?");
    if (status !== 401 && status !== 403) code = 403;
  }
  res.writeHead(code, out);
  res.end(text);
}
