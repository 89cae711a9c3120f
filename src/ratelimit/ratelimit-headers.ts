/**
 * Response headers of draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy`
 * lists the enforced limits as `"name";q=<quota>;w=<window s>`, `RateLimit`
 * gives the deciding limit's `"name";r=<remaining>;t=<seconds to reset>`, and
 * `Retry-After` (seconds) accompanies a denial.
 */
import type { Limit } from "../policy/policy.js";
import type { LimitOutcome } from "./rate-limit-store.js";

/** Builds the headers; `deciding` indexes `limits`. */
export function rateLimitHeaders(
  limits: readonly { limit: Limit; outcome: LimitOutcome }[],
  deciding: number | undefined,
  retryAfterMs: number | undefined,
): [string, string][] {
  const out: [string, string][] = [];
  const enforced = limits.filter((l) => l.limit.mode === "enforce" && l.outcome.remaining >= 0);
  if (enforced.length > 0) {
    out.push([
      "ratelimit-policy",
      enforced
        .map((l) => `"${l.limit.name}";q=${l.limit.burst};w=${Math.ceil(l.limit.periodMs / 1000)}`)
        .join(", "),
    ]);
  }
  const d = deciding === undefined ? undefined : limits[deciding];
  if (d) {
    out.push([
      "ratelimit",
      `"${d.limit.name}";r=${Math.max(0, d.outcome.remaining)};t=${Math.ceil(d.outcome.resetMs / 1000)}`,
    ]);
  }
  if (retryAfterMs !== undefined)
    out.push(["retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000)))]);
  return out;
}
