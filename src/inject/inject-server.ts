/**
 * The injector's HTTPS server: the Kubernetes API server POSTs AdmissionReviews
 * to `/inject/namespace` or `/inject/pod` (also accepted: `/inject?scope=…`,
 * and its escaped form `/inject%3Fscope=…`, which is what an API server sends
 * when a `?` is written into a webhook's `clientConfig.service.path`: the
 * path is sent as a path); the kubelet probes `/healthz` and `/readyz`.
 * The certificate is re-read when its files change (cert-manager renews it in
 * place), so a renewal needs no restart.
 */
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { createServer, type Server } from "node:https";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { listen } from "../transport/servers.js";
import { reviewAdmission } from "./admission-review.js";
import type { InjectScope } from "./pod-patch.js";
import type { SidecarTemplate } from "./sidecar-template.js";

/** Options of {@link startInjectServer}. */
export interface InjectServerOptions {
  /** host:port to listen on. In a cluster the chart binds 0.0.0.0:8443. */
  addr: string;
  /** PEM certificate (chain) the API server verifies against the webhook's caBundle. */
  certFile: string;
  /** PEM private key of certFile. */
  keyFile: string;
  /** The sidecar to inject. */
  template: SidecarTemplate;
  log: Logger;
  /** Largest request body accepted, bytes. Default 4 MiB (a Pod is at most ~1.5 MiB in etcd, twice in an UPDATE review). */
  maxBodyBytes?: number;
}

/** A running injector. */
export interface InjectServer {
  port: number;
  server: Server;
  /** Stops accepting, closes idle connections and the certificate watch. */
  close(): Promise<void>;
}

const SCOPES = new Set<string>(["namespace", "pod"]);

/**
 * The scope a request path names: a scope, null for an `/inject` path without
 * a valid one (400), undefined for any other path (404).
 */
export function scopeOf(url: URL): InjectScope | null | undefined {
  let path = url.pathname;
  let query = url.searchParams;
  const escaped = /^\/inject%3F(.*)$/i.exec(path);
  if (escaped) {
    path = "/inject";
    query = new URLSearchParams(decodeURIComponent(escaped[1] ?? ""));
  }
  const m = /^\/inject(?:\/([a-z]+))?\/?$/.exec(path);
  if (!m) return undefined;
  const scope = m[1] ?? query.get("scope") ?? "";
  return SCOPES.has(scope) ? (scope as InjectScope) : null;
}

/** Starts the webhook server; resolves once it listens. */
export async function startInjectServer(o: InjectServerOptions): Promise<InjectServer> {
  const maxBody = o.maxBodyBytes ?? 4 * 1024 * 1024;
  const readPair = () => ({ cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) });
  const server = createServer({ ...readPair(), minVersion: "TLSv1.3" }, (req, res) => {
    const url = new URL(req.url ?? "/", "https://injector");
    if (url.pathname === "/healthz" || url.pathname === "/readyz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    const scope = scopeOf(url);
    if (scope === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST", "content-type": "text/plain" }).end("use POST\n");
      return;
    }
    if (scope === null) {
      res
        .writeHead(400, { "content-type": "text/plain" })
        .end("the scope must be namespace or pod: /inject/namespace or /inject/pod\n");
      return;
    }
    if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
      res
        .writeHead(415, { "content-type": "text/plain" })
        .end("content-type must be application/json\n");
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBody) {
        res
          .writeHead(413, { "content-type": "text/plain", connection: "close" })
          .end(`body larger than ${maxBody} bytes\n`);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (res.headersSent) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        o.log.warn({ scope }, "injector: rejected a body that is not JSON");
        res
          .writeHead(400, { "content-type": "text/plain" })
          .end("malformed AdmissionReview: not JSON\n");
        return;
      }
      const r = reviewAdmission(parsed, { template: o.template, scope });
      const meta = readMeta(parsed);
      const line = { scope, outcome: r.outcome, detail: r.detail, ...meta };
      if (r.outcome === "denied" || r.outcome === "malformed") o.log.warn(line, "injector");
      else o.log.info(line, "injector");
      const text = typeof r.body === "string" ? r.body : JSON.stringify(r.body);
      res
        .writeHead(r.status, {
          "content-type": typeof r.body === "string" ? "text/plain" : "application/json",
        })
        .end(text);
    });
  });
  // API servers keep connections open between reviews; idle ones are closed.
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;

  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // Secret volumes swap a `..data` symlink on update: watch the directory.
    watcher = watch(dirname(o.certFile), () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          server.setSecureContext({ ...readPair(), minVersion: "TLSv1.3" });
          o.log.info("injector: certificate reloaded");
        } catch (err) {
          o.log.error(
            { err: { message: (err as Error).message } },
            "injector: certificate reload failed; keeping the old one",
          );
        }
      }, 500);
    });
    watcher.on("error", () => watcher?.close());
  } catch {
    o.log.warn("injector: cannot watch the certificate directory; renewals need a restart");
  }

  const port = await listen(server, o.addr);
  return {
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(timer);
        watcher?.close();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Namespace and name of the reviewed object, for the log (never the object itself). */
function readMeta(body: unknown): { namespace?: string; name?: string } {
  const req = (
    body as {
      request?: {
        namespace?: unknown;
        name?: unknown;
        object?: { metadata?: { generateName?: unknown } };
      };
    }
  )?.request;
  const s = (v: unknown) => (typeof v === "string" ? v.slice(0, 253) : undefined);
  const namespace = s(req?.namespace);
  const name = s(req?.name) || s(req?.object?.metadata?.generateName);
  return { ...(namespace && { namespace }), ...(name && { name }) };
}
