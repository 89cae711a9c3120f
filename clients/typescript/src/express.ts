/**
 * Express middleware: `app.use(tollgate.express())` protects every request;
 * `protect({ endpoint, scopes })` protects one route with its own options.
 *
 * On allow the identity is at `req.tollgate` and the decision's headers
 * (`RateLimit-Policy`, `RateLimit`) are set on the response; on deny the
 * middleware answers the decision's status with its headers (WWW-Authenticate,
 * Retry-After) and an `application/problem+json` body (RFC 9457).
 *
 * Limits are charged once per request: when `protect()` meets a request the
 * global middleware already let through, it checks the route's endpoint and
 * scopes again WITHOUT charging (Authorize without `apply_limits`). To charge a
 * route's named endpoint, protect that route only (skip it in the global
 * middleware, or mount it before `app.use`).
 *
 * Express itself is not imported: the handlers are plain Node
 * `(req, res, next)` functions, so this module adds no runtime dependency.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TollgateClient } from "./client.js";
import {
  createDecider,
  groupHeaders,
  type Rejection,
  type TollgateContext,
  type TollgateMiddlewareOptions,
  type TollgateRouteOptions,
} from "./middleware/decide.js";
import { PROBLEM_CONTENT_TYPE } from "./middleware/problem.js";

declare global {
  // Express's own way to extend its Request type (declaration merging).
  namespace Express {
    interface Request {
      /** Set by the Tollgate middleware on requests it let through; absent on skipped paths. */
      tollgate?: TollgateContext;
    }
  }
}

/** Options of the Express middleware (see {@link TollgateMiddlewareOptions}). */
export type ExpressTollgateOptions = TollgateMiddlewareOptions;

type Req = IncomingMessage & { originalUrl?: string; tollgate?: TollgateContext };
type Next = (err?: unknown) => void;

/** A Node/Express request handler. */
export type TollgateRequestHandler = (req: Req, res: ServerResponse, next: Next) => void;

/** The global middleware, carrying the per-route factory of the same configuration. */
export interface TollgateExpressMiddleware extends TollgateRequestHandler {
  /**
   * Per-route middleware: `app.post("/v1/orders", protect({ endpoint: "create-order", scopes: ["orders:write"] }), handler)`.
   * The skip list does not apply to it: a protected route is always checked.
   */
  protect(route?: TollgateRouteOptions): TollgateRequestHandler;
}

/** Builds the Express middleware for `client`; equivalent to `client.express(options)`. */
export function expressMiddleware(
  client: TollgateClient,
  options: ExpressTollgateOptions = {},
): TollgateExpressMiddleware {
  const d = createDecider(client, options);

  const run = async (req: Req, res: ServerResponse, next: Next, route?: TollgateRouteOptions) => {
    const facts = d.facts(req, req.originalUrl ?? req.url ?? "/");
    if ("kind" in facts) return send(res, facts);
    if (!route && d.skips(facts.path)) return next();
    const charge = req.tollgate?.decided !== "tollgate";
    const outcome = await d.decide(facts, route, charge);
    if (outcome.kind === "reject") return send(res, outcome);
    for (const [name, values] of groupHeaders(outcome.headers)) {
      res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
    }
    req.tollgate = outcome.context;
    if (d.reportsUsage) {
      const context = outcome.context;
      res.once("finish", () => d.afterResponse(context, req, res));
    }
    next();
  };

  const global: TollgateRequestHandler = (req, res, next) => {
    run(req, res, next).catch(next);
  };
  return Object.assign(global, {
    protect(route: TollgateRouteOptions = {}): TollgateRequestHandler {
      return (req, res, next) => {
        run(req, res, next, route).catch(next);
      };
    },
  });
}

/** Writes a rejection as problem+json with the decision's headers. */
function send(res: ServerResponse, o: Rejection): void {
  res.statusCode = o.status;
  for (const [name, values] of groupHeaders(o.headers)) {
    res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
  }
  const body = JSON.stringify(o.problem);
  res.setHeader("content-type", PROBLEM_CONTENT_TYPE);
  res.setHeader("content-length", Buffer.byteLength(body));
  res.end(body);
}
