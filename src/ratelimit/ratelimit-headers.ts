/**
 * Response headers of draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy`
 * lists the enforced limits as `"name";q=<quota>;w=<window s>`, `RateLimit`
 * gives the deciding limit's `"name";r=<remaining>;t=<seconds to reset>`, and
 * `Retry-After` (seconds) accompanies a denial.
 *
 * A key's credit balance is a quota policy named `credits`: `q` the most it
 * refills to, `w` the refill period (none without refill), and always an
 * entry of `RateLimit` (`r` the balance, `t` seconds to the next refill), so a
 * client sees its balance whichever limit decided.
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
        .map((l) =>
          l.limit.kind === "credits" && l.limit.periodMs === 0
            ? `"${l.limit.name}";q=${l.limit.burst}`
            : `"${l.limit.name}";q=${l.limit.burst};w=${Math.ceil(l.limit.periodMs / 1000)}`,
        )
        .join(", "),
    ]);
  }
  const d = deciding === undefined ? undefined : limits[deciding];
  const credits = limits.find((l) => l.limit.kind === "credits" && l.outcome.remaining >= 0);
  const items = [d, credits === d ? undefined : credits].flatMap((l) =>
    l ? [`"${l.limit.name}";r=${Math.max(0, l.outcome.remaining)}${resetOf(l)}`] : [],
  );
  if (items.length > 0) out.push(["ratelimit", items.join(", ")]);
  if (retryAfterMs !== undefined)
    out.push(["retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000)))]);
  return out;
}

/** `;t=<seconds>` of one RateLimit item; none for credits that never refill. */
function resetOf(l: { limit: Limit; outcome: LimitOutcome }): string {
  if (l.limit.kind === "credits" && l.limit.periodMs === 0) return "";
  return `;t=${Math.ceil(l.outcome.resetMs / 1000)}`;
}
