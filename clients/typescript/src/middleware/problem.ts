/**
 * RFC 9457 problem details for the middleware's answers. A 429 uses the IETF
 * rate-limit problem type; every other status uses `about:blank` with the
 * status's standard reason phrase as title.
 */
import { STATUS_CODES } from "node:http";

/** The IETF problem type for a refused quota or rate (draft-ietf-httpapi-ratelimit-headers). */
export const QUOTA_EXCEEDED_TYPE = "https://iana.org/assignments/http-problem-types#quota-exceeded";

/** The media type of every error body the middleware sends. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** The body of an error answer. */
export interface Problem {
  /** A URI naming the problem type. */
  type: string;
  /** A short summary of the type. */
  title: string;
  /** The HTTP status. */
  status: number;
  /** What happened, safe to show (Tollgate's `message`; never a secret). */
  detail: string;
  /** Tollgate's decision id ("" when no decision was taken). */
  decision_id: string;
  /** Tollgate's reason without the `REASON_` prefix (e.g. `RATE_LIMITED`), or the middleware's own (`UNAVAILABLE`, `BAD_REQUEST`, `INTERNAL`). */
  reason: string;
}

/** Builds a problem for `status`. */
export function problem(status: number, detail: string, reason: string, decisionId = ""): Problem {
  if (status === 429) {
    return {
      type: QUOTA_EXCEEDED_TYPE,
      title: "Quota exceeded",
      status,
      detail,
      decision_id: decisionId,
      reason,
    };
  }
  return {
    type: "about:blank",
    title: STATUS_CODES[status] ?? "Error",
    status,
    detail,
    decision_id: decisionId,
    reason,
  };
}
