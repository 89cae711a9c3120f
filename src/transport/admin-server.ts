import cluster from "node:cluster";
import { createServer, type Server } from "node:http";
import { listen } from "./servers.js";

/** Options of the admin server. */
export interface AdminServerOptions {
  addr: string;
  /** What /metrics serves (a process's registry, or a cluster primary's aggregate). */
  registry: { metrics(): Promise<string>; contentType: string };
  /** Live: the process is not wedged. */
  live: () => boolean;
  /** Ready: the process can answer decisions (false while starting or draining). */
  ready: () => boolean;
  /** Lines added to the /readyz body (e.g. "store: emptied …"); readiness itself is `ready`. */
  readyNotes?: () => string[];
}

/**
 * Bounds of the admin port, its own so that it keeps answering probes and
 * scrapes whatever happens on the RPC ports (whose connection cap leaves
 * descriptors for these): a few connections, short timeouts.
 */
export const ADMIN_BOUNDS = {
  /** Open connections; more are closed on arrival. */
  maxConnections: 64,
  /** A request head must be complete within, ms. */
  headersTimeoutMs: 5_000,
  /** A whole request must be complete within, ms. */
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after, ms. */
  keepAliveTimeoutMs: 5_000,
} as const;

/**
 * Set by a `serve --workers N` primary in its workers' environment: the admin
 * port it holds (serving every worker's metrics summed, and readiness).
 */
export const PRIMARY_ADMIN_PORT_ENV = "TOLLGATE_PRIMARY_ADMIN_PORT";

/**
 * The admin port: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz`
 * (readiness). In a worker of `serve --workers N` nothing listens: the
 * primary holds the port, and the server returned is never bound.
 */
export async function startAdminServer(
  o: AdminServerOptions,
): Promise<{ port: number; server: Server }> {
  const options = {
    headersTimeout: ADMIN_BOUNDS.headersTimeoutMs,
    requestTimeout: ADMIN_BOUNDS.requestTimeoutMs,
    keepAliveTimeout: ADMIN_BOUNDS.keepAliveTimeoutMs,
    connectionsCheckingInterval: 1_000,
  };
  const server = createServer(options, (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/metrics") {
      o.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": o.registry.contentType }).end(text),
        () => res.writeHead(500).end("metrics unavailable\n"),
      );
      return;
    }
    if (path === "/healthz" || path === "/readyz") {
      const ok = path === "/healthz" ? o.live() : o.ready();
      const notes = path === "/readyz" ? (o.readyNotes?.() ?? []) : [];
      res
        .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
        .end(`${[ok ? "ok" : "not ready", ...notes].join("\n")}\n`);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  server.maxConnections = ADMIN_BOUNDS.maxConnections;
  const primaryPort = cluster.isWorker ? process.env[PRIMARY_ADMIN_PORT_ENV] : undefined;
  if (primaryPort !== undefined) return { port: Number(primaryPort), server };
  const port = await listen(server, o.addr);
  return { port, server };
}
