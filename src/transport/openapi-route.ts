/**
 * GET /openapi.yaml on the HTTP port: the OpenAPI 3.1 description of the
 * Connect JSON API (docs/openapi.yaml, generated from proto/ by
 * scripts/generate-openapi.mjs). Read once, at first request; 404 when the
 * installation lacks the file.
 */
import { readFileSync } from "node:fs";
import type { HttpHandler } from "./http-routes.js";

/** Where the document is served. */
export const OPENAPI_PATH = "/openapi.yaml";

/** Options of createOpenApiHandler. */
export interface OpenApiHandlerOptions {
  /** The document's file. Default: docs/openapi.yaml of the package (beside dist/). */
  file?: string | URL;
}

/** Builds the handler serving the document (GET and HEAD; other methods 405). */
export function createOpenApiHandler(o: OpenApiHandlerOptions = {}): HttpHandler {
  const file = o.file ?? new URL("../../docs/openapi.yaml", import.meta.url);
  let body: Buffer | undefined | null;
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "application/json" });
      res.end(JSON.stringify({ code: "unimplemented", message: "use GET" }));
      return;
    }
    if (body === undefined) {
      try {
        body = readFileSync(file);
      } catch {
        body = null;
      }
    }
    if (body === null) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "not_found", message: "no OpenAPI document installed" }));
      return;
    }
    res.writeHead(200, { "content-type": "application/yaml", "content-length": body.length });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
}
