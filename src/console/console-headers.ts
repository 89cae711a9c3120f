/**
 * The console's response headers and its same-origin rule. The page loads
 * only its own files (no inline script or style, nothing from another
 * origin), cannot be framed, and every /console/api/ call from another site's
 * page is refused before it does anything.
 */
import type { IncomingHttpHeaders } from "node:http";

/** The Content-Security-Policy of every console response. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers every console response carries. */
export function consoleHeaders(contentType: string, cache: boolean): Record<string, string> {
  return {
    "content-type": contentType,
    "content-security-policy": CONSOLE_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": cache ? "private, max-age=300" : "no-store",
  };
}

/**
 * True when a request comes from the console's own origin, or from no page at
 * all (curl). A browser marks a cross-site request with `Sec-Fetch-Site`, and
 * with an `Origin` whose host differs from the `Host` it addressed.
 */
export function sameOrigin(h: IncomingHttpHeaders): boolean {
  const site = h["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = h.origin;
  if (origin === undefined) return true;
  const host = h.host ?? h[":authority"];
  try {
    return typeof host === "string" && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
