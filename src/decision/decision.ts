/**
 * The outcome of one decision, the same for every door: allowed (with the
 * identity, hints and limit results), denied (with a reason and the HTTP
 * status the application or proxy answers), blocked (a subject refused for a
 * while), or incomplete (an enforced limit needs a fact the request lacks —
 * the caller's mistake, which each door reports its own way). Headers are the
 * response headers the client is to see (RateLimit…, Retry-After,
 * WWW-Authenticate). A denial is data, never an exception.
 */
import type { AuthReason, KeyHintsData } from "../keys/authorizer.js";
import type { KeyRecord } from "../keys/key-record.js";
import type { Endpoint } from "../policy/policy.js";
import type { MissingDimension, RateDecision } from "../ratelimit/rate-limiter.js";

interface DecisionBase {
  /** Unique id of this decision (logs, events, the caller's response). */
  decisionId: string;
  endpoint: Endpoint | undefined;
  /** The key, when recognised (also on most denials). */
  record?: KeyRecord;
  /**
   * The id of a revoked or expired key a secret was presented for: for the
   * access log and the live feed only (the caller is not told the key was
   * real, see public-denial.ts; events keep their subject).
   */
  unusableKeyId?: string;
  hints?: KeyHintsData;
  /** The limits' results, when limits were applied. */
  limits?: RateDecision;
  /** Response headers for the client. */
  headers: [string, string][];
  /** True if any part was decided without the store (unreachable, the endpoint fails open). */
  decidedLocally: boolean;
}

/** The request may proceed. */
export interface Allowed extends DecisionBase {
  kind: "allowed";
  reason: "OK";
  httpStatus: 200;
}

/** The request is refused for its key, scopes, address or a limit. */
export interface Denied extends DecisionBase {
  kind: "denied";
  reason: Exclude<AuthReason, "OK"> | "RATE_LIMITED" | "CREDITS_EXHAUSTED";
  /** 402 Payment Required for CREDITS_EXHAUSTED (see decision-engine.ts). */
  httpStatus: 401 | 402 | 403 | 429;
  /** The caller-facing error code and message (never a secret; see public-denial.ts). */
  error: string;
  message: string;
  /** Scopes the key lacks (INSUFFICIENT_SCOPE). */
  missingScopes: string[];
}

/** A subject of the request (client IP, key or caller subject) is blocked. */
export interface Blocked extends DecisionBase {
  kind: "blocked";
  reason: "BLOCKED";
  httpStatus: 429;
  error: "blocked";
  message: string;
  /** End of the block, epoch ms. */
  until: number;
  retryAfterMs: number;
}

/** An enforced limit needs a dimension the request did not give. */
export interface Incomplete extends DecisionBase {
  kind: "incomplete";
  missing: MissingDimension["missing"];
  /** The limit needing it. */
  limit: string;
}

/** One decision. */
export type Decision = Allowed | Denied | Blocked | Incomplete;

/** Messages of denials that are not about the key. */
export const LIMIT_MESSAGES = {
  RATE_LIMITED: "rate limit exceeded",
  CREDITS_EXHAUSTED: "the key's credits are exhausted",
  BLOCKED: "too many violations: temporarily blocked",
} as const;
