/**
 * The framework-neutral middleware step shared by Express and Fastify: from an
 * incoming request to an {@link Outcome} (let it through with an identity, or
 * answer it with a status, headers and a problem+json body). The adapters only
 * read the request and write the outcome the framework's way.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { TollgateClient } from "../client.js";
import { isUnreachable } from "../errors.js";
import { Reason } from "../gen/tollgate/v1/common_pb.js";
import type { Identity } from "../gen/tollgate/v1/key_pb.js";
import type { AuthorizeResponse, KeyHints } from "../gen/tollgate/v1/tollgate_service_pb.js";
import type { ReportUsageResponse } from "../gen/tollgate/v1/usage_report_pb.js";
import { compileTrust, isIpAddress, type TrustProxy } from "./client-ip.js";
import { type Problem, problem } from "./problem.js";
import { compileSkip } from "./skip-list.js";

/** Where the middleware reports what the application's operator must see. Never given a key or token. */
export type TollgateLog = (
  level: "warn" | "error",
  message: string,
  fields: Record<string, unknown>,
) => void;

/** Options shared by the Express middleware and the Fastify plugin; set once per app. */
export interface TollgateMiddlewareOptions {
  /** Request header carrying the API key. Default `x-api-key`. */
  apiKeyHeader?: string;
  /** Proxies trusted to set `X-Forwarded-For` (see {@link TrustProxy}). Default: none, the socket peer is the client. */
  trustProxy?: TrustProxy;
  /** Paths that bypass Tollgate: exact (`/healthz`) or prefixes ending in `*` (`/public/*`). Default: none. */
  skip?: readonly string[];
  /**
   * When Tollgate cannot be reached (UNAVAILABLE, deadline exceeded, breaker
   * open): `"closed"` (default) answers 503 problem+json; `"open"` lets the
   * request through with `identity: null` and `decided: "fail-open"`.
   */
  failMode?: "closed" | "open";
  /** Policy endpoint name for every request (route options override). Default: matched by method and path. */
  endpoint?: string;
  /** Scopes every request needs, besides the endpoint's (route scopes are added). Default: none. */
  scopes?: readonly string[];
  /**
   * Charge the endpoint's rate limits in the same decision (`apply_limits`).
   * Default true. With false only the key, IP and scopes are checked, and the
   * client's allow-cache (if enabled) may answer.
   */
  applyLimits?: boolean;
  /** Where warnings and errors go. Default: one JSON line on stderr. */
  log?: TollgateLog;
  /**
   * The cost a response turned out to have (tokens of an LLM answer, rows of
   * an export), read once the response is finished: a positive number is
   * reported to Tollgate (ReportUsage, idempotent by the decision id) and
   * charged to the request's limits without undoing the response; the next
   * decision sees the debt. Called only for requests Tollgate allowed (not on
   * fail-open, not on skipped paths); 0, undefined or a throw reports nothing.
   * A failed report is logged, never thrown. Default: none.
   */
  usageAfterResponse?: (req: IncomingMessage, res: ServerResponse) => number | undefined;
}

/** Per-route options: Express `protect(…)`, Fastify route `config.tollgate`. */
export interface TollgateRouteOptions {
  /** Policy endpoint name for this route, instead of matching by method and path. */
  endpoint?: string;
  /** Scopes this route needs, besides the endpoint's and the middleware's. */
  scopes?: readonly string[];
}

/** What the handler gets: Express `req.tollgate`, Fastify `request.tollgate`. */
export interface TollgateContext {
  /**
   * Who is calling (key id, owner, tier, scopes, metadata, environment); null
   * when Tollgate was unreachable and the fail mode is "open".
   */
  identity: Identity | null;
  /** `"tollgate"`: Tollgate allowed the request; `"fail-open"`: it could not be asked and the fail mode let the request through. */
  decided: "tollgate" | "fail-open";
  /** Tollgate's decision id ("" on fail-open). */
  decisionId: string;
  /** The policy endpoint that matched ("" if none or on fail-open). */
  endpoint: string;
  /** Key lifecycle hints (expires soon, in grace period, rotation due). */
  hints: KeyHints | undefined;
  /** True if the server itself decided locally because its store was unreachable. */
  decidedLocally: boolean;
  /** The full Authorize response (null on fail-open). */
  decision: AuthorizeResponse | null;
  /**
   * Reports a cost known only now (e.g. LLM tokens) against this request's
   * key, endpoint and client IP: charged to their limits without denying
   * (ReportUsage). Each call is one report with its own idempotency id
   * (`<decision id>.<n>`), retried safely by the client. Resolves to null on
   * fail-open (there is no identity to charge); rejects like any client call.
   */
  reportUsage(cost: number): Promise<ReportUsageResponse | null>;
}

/** What to do with a request. */
export type Outcome =
  | { kind: "allow"; context: TollgateContext; headers: Array<[string, string]> }
  | Rejection;

/** An answer the middleware sends instead of calling the handler. */
export interface Rejection {
  kind: "reject";
  status: number;
  headers: Array<[string, string]>;
  problem: Problem;
}

/** The parts of a request a decision needs. */
export interface RequestFacts {
  apiKey: string;
  method: string;
  /** The path without the query. */
  path: string;
  clientIp: string;
}

/** Fields of Authorize derived from the HTTP request itself: an INVALID_ARGUMENT naming only these is the caller's fault (400). */
const REQUEST_FIELDS = new Set(["path", "method", "client_ip"]);
const WARN_EVERY_MS = 10_000;

/** A compiled middleware configuration. */
export interface Decider {
  /** True if the path bypasses Tollgate. */
  skips(path: string): boolean;
  /** Reads the key, method, path and client IP; a forwarded address that is not an IP is a 400. */
  facts(req: IncomingMessage, url: string): RequestFacts | Rejection;
  /** Asks Tollgate. `charge: false` re-checks without charging limits (a request already decided by a global middleware). */
  decide(
    facts: RequestFacts,
    route: TollgateRouteOptions | undefined,
    charge?: boolean,
  ): Promise<Outcome>;
  /**
   * Once the response is finished: reports `usageAfterResponse`'s cost for an
   * allowed request (never throws; a failure is logged).
   */
  afterResponse(context: TollgateContext, req: IncomingMessage, res: ServerResponse): void;
  /** True when `usageAfterResponse` is set (adapters hook the response's end only then). */
  reportsUsage: boolean;
  /** The log in use. */
  log: TollgateLog;
}

/** The default log: one JSON line on stderr. */
export const stderrLog: TollgateLog = (level, message, fields) => {
  process.stderr.write(`${JSON.stringify({ level, msg: message, ...fields })}\n`);
};

/** Compiles the options once; every request then only runs {@link Decider.decide}. */
export function createDecider(client: TollgateClient, o: TollgateMiddlewareOptions = {}): Decider {
  if (o.failMode !== undefined && o.failMode !== "closed" && o.failMode !== "open") {
    throw new TypeError(`tollgate: failMode must be "closed" or "open", got ${String(o.failMode)}`);
  }
  const failOpen = o.failMode === "open";
  const header = (o.apiKeyHeader ?? "x-api-key").toLowerCase();
  const ipOf = compileTrust(o.trustProxy);
  const skips = compileSkip(o.skip);
  const log = o.log ?? stderrLog;
  const applyLimits = o.applyLimits ?? true;
  let lastWarn = Number.NEGATIVE_INFINITY;

  const unreachable = (err: ConnectError): Outcome => {
    const now = performance.now();
    // An outage would otherwise log once per request.
    if (now - lastWarn >= WARN_EVERY_MS) {
      lastWarn = now;
      log("warn", "tollgate unreachable", {
        code: Code[err.code],
        error: err.rawMessage,
        failMode: failOpen ? "open" : "closed",
      });
    }
    if (failOpen) {
      return {
        kind: "allow",
        headers: [],
        context: {
          identity: null,
          decided: "fail-open",
          decisionId: "",
          endpoint: "",
          hints: undefined,
          decidedLocally: false,
          decision: null,
          reportUsage: async () => null,
        },
      };
    }
    return reject(503, "the authorization service is unavailable", "UNAVAILABLE");
  };

  return {
    log,
    skips,
    reportsUsage: o.usageAfterResponse !== undefined,
    facts(req, url) {
      const raw = req.headers[header];
      const apiKey = typeof raw === "string" ? raw : Array.isArray(raw) ? raw.join(", ") : "";
      const q = url.indexOf("?");
      const path = q >= 0 ? url.slice(0, q) : url;
      const clientIp = ipOf(req);
      if (clientIp !== "" && !isIpAddress(clientIp)) {
        return reject(400, "the forwarded client address is not an IP address", "BAD_REQUEST");
      }
      return { apiKey, method: req.method ?? "GET", path, clientIp };
    },
    async decide(f, route, charge = true) {
      const scopes = [...(o.scopes ?? []), ...(route?.scopes ?? [])];
      let res: AuthorizeResponse;
      try {
        res = await client.authorize({
          apiKey: f.apiKey,
          method: f.method,
          path: f.path,
          clientIp: f.clientIp,
          requiredScopes: scopes,
          endpoint: route?.endpoint ?? o.endpoint ?? "",
          applyLimits: applyLimits && charge,
        });
      } catch (e) {
        const err = ConnectError.from(e);
        if (isUnreachable(err)) return unreachable(err);
        if (err.code === Code.InvalidArgument) {
          const fields = violatedFields(err.rawMessage);
          if (fields.length > 0 && fields.every((f) => REQUEST_FIELDS.has(f))) {
            return reject(400, err.rawMessage, "BAD_REQUEST");
          }
          log(
            "error",
            "tollgate refused the middleware's Authorize request as invalid: check the route's endpoint and scopes",
            {
              fields,
              error: err.rawMessage,
            },
          );
        } else {
          log("error", "tollgate Authorize failed", {
            code: Code[err.code],
            error: err.rawMessage,
          });
        }
        return reject(500, "the request could not be authorized", "INTERNAL");
      }
      const headers = res.responseHeaders.map((h): [string, string] => [h.name, h.value]);
      if (!res.allowed) {
        const status = res.httpStatus || 403;
        return {
          kind: "reject",
          status,
          headers,
          problem: problem(
            status,
            res.message,
            Reason[res.reason] ?? "UNSPECIFIED",
            res.decisionId,
          ),
        };
      }
      return {
        kind: "allow",
        headers,
        context: {
          identity: res.identity ?? null,
          decided: "tollgate",
          decisionId: res.decisionId,
          endpoint: res.endpoint,
          hints: res.hints,
          decidedLocally: res.decidedLocally,
          decision: res,
          reportUsage: reporter(client, res, f),
        },
      };
    },
    afterResponse(context, req, res) {
      const usage = o.usageAfterResponse;
      if (!usage || context.decided !== "tollgate") return;
      let cost: number | undefined;
      try {
        cost = usage(req, res);
      } catch (e) {
        log("warn", "tollgate usageAfterResponse threw; nothing reported", { error: String(e) });
        return;
      }
      if (cost === undefined || !(cost > 0)) return;
      context.reportUsage(Math.ceil(cost)).catch((e: unknown) => {
        const err = ConnectError.from(e);
        log("warn", "tollgate ReportUsage failed", {
          code: Code[err.code],
          error: err.rawMessage,
          decisionId: context.decisionId,
        });
      });
    },
  };
}

/** The `reportUsage` of an allowed decision: its key, endpoint (or method and path) and client IP. */
function reporter(
  client: TollgateClient,
  res: AuthorizeResponse,
  f: RequestFacts,
): TollgateContext["reportUsage"] {
  let n = 0;
  return (cost) => {
    n += 1;
    return client.reportUsage({
      id: `${res.decisionId}.${n}`,
      keyId: res.identity?.keyId ?? "",
      clientIp: f.clientIp,
      ...(res.endpoint !== "" ? { endpoint: res.endpoint } : { method: f.method, path: f.path }),
      cost,
    });
  };
}

function reject(status: number, detail: string, reason: string): Rejection {
  return { kind: "reject", status, headers: [], problem: problem(status, detail, reason) };
}

/**
 * The field names of an INVALID_ARGUMENT from Tollgate, whose message reads
 * `invalid request: <field>: <description>; <field>: <description>`.
 */
export function violatedFields(message: string): string[] {
  const body = message.replace(/^invalid request:\s*/, "");
  const fields = new Set<string>();
  for (const part of body.split("; ")) {
    const m = /^([a-z_][a-z0-9_.[\]]*):/.exec(part);
    if (m?.[1]) fields.add(m[1]);
  }
  return [...fields];
}

/** Groups headers by name, for frameworks that set a repeated header as an array. */
export function groupHeaders(headers: Array<[string, string]>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [name, value] of headers) {
    const list = m.get(name);
    if (list) list.push(value);
    else m.set(name, [value]);
  }
  return m;
}
