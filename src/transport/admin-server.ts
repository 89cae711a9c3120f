import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import { listen } from "./servers.js";

/** Options of the admin server. */
export interface AdminServerOptions {
  addr: string;
  registry: Registry;
  /** Live: the process is not wedged. */
  live: () => boolean;
  /** Ready: the process can answer decisions (false while starting or draining). */
  ready: () => boolean;
  /** Lines added to the /readyz body (e.g. "store: emptied …"); readiness itself is `ready`. */
  readyNotes?: () => string[];
}

/** The admin port: `/metrics` (Prometheus), `/healthz` (liveness), `/readyz` (readiness). */
export async function startAdminServer(
  o: AdminServerOptions,
): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
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
  server.keepAliveTimeout = 5_000;
  const port = await listen(server, o.addr);
  return { port, server };
}
