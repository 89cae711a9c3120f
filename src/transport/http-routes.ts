/**
 * Plain-HTTP routes on the HTTP port beside connect-node: forward-auth for
 * nginx / Caddy / Traefik and the OpenAPI document. startRpcServers calls
 * `routes(next, track)` once and serves what it returns on the HTTP port
 * (HTTP/1.1 and h2c); a request for another path goes to `next` (connect-node).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A Node request handler of either HTTP version. */
export type HttpHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/** In-flight accounting of the RPC servers, so shutdown drains these requests too. */
export interface InflightTracker {
  start(): void;
  end(): void;
}

/** Wraps the HTTP port's connect-node handler. */
export type HttpRoutes = (next: HttpHandler, track: InflightTracker) => HttpHandler;

/** Options of createHttpRoutes. */
export interface HttpRoutesOptions {
  /** Path → handler, matched exactly on the path (the query is the handler's). */
  routes: Record<
    string,
    (req: Parameters<HttpHandler>[0], res: Parameters<HttpHandler>[1]) => Promise<void> | void
  >;
  /** Called when a route handler throws (the client gets a 500). Default: nothing. */
  onError?: (err: unknown) => void;
}

/** Builds the HttpRoutes serving `routes` ahead of connect-node. */
export function createHttpRoutes(o: HttpRoutesOptions): HttpRoutes {
  const table = new Map(Object.entries(o.routes));
  return (next, track) => (req, res) => {
    const raw = req.url ?? "/";
    const q = raw.indexOf("?");
    const route = table.get(q < 0 ? raw : raw.slice(0, q));
    if (!route) return next(req, res);
    track.start();
    res.once("close", () => track.end());
    // The request body (if any) is not used; read it so keep-alive works.
    req.resume();
    Promise.resolve()
      .then(() => route(req, res))
      .catch((err) => {
        o.onError?.(err);
        if (!res.headersSent) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ code: "internal", message: "internal error" }));
        } else res.end();
      });
  };
}
