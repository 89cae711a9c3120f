/**
 * CORS for browser callers of the Connect and gRPC-Web protocols. Off unless
 * origins are configured; then only those origins get CORS headers, and
 * preflights are answered here without reaching a handler.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { cors } from "@connectrpc/connect";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Wraps a request handler with CORS for `origins` (exact scheme://host[:port] matches). */
export function withCors(
  origins: readonly string[],
  next: (req: Req, res: Res) => void,
): (req: Req, res: Res) => void {
  if (origins.length === 0) return next;
  const allowed = new Set(origins);
  const allowMethods = cors.allowedMethods.join(", ");
  const allowHeaders = [...cors.allowedHeaders, "authorization", "x-api-key", "traceparent"].join(
    ", ",
  );
  const exposeHeaders = [
    ...cors.exposedHeaders,
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
  ].join(", ");
  return (req, res) => {
    const origin = req.headers.origin;
    if (typeof origin === "string" && allowed.has(origin)) {
      res.setHeader("access-control-allow-origin", origin);
      res.setHeader("vary", "Origin");
      res.setHeader("access-control-expose-headers", exposeHeaders);
      if (req.method === "OPTIONS") {
        res.setHeader("access-control-allow-methods", allowMethods);
        res.setHeader("access-control-allow-headers", allowHeaders);
        res.setHeader("access-control-max-age", "7200");
        res.statusCode = 204;
        res.end();
        return;
      }
    } else if (req.method === "OPTIONS" && origin !== undefined) {
      res.statusCode = 403;
      res.end();
      return;
    }
    next(req, res);
  };
}
