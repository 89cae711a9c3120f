/**
 * Retries: exponential backoff with full jitter, only on UNAVAILABLE, only for
 * calls that are safe to repeat, never beyond the call's deadline.
 */
import { Code, type ConnectError } from "@connectrpc/connect";

/** Retry settings. */
export interface RetryOptions {
  /** Retries after the first attempt. Default 2; 0 disables retries. */
  maxRetries?: number;
  /** Base of the exponential backoff, in ms. Default 25. */
  baseDelayMs?: number;
  /** Cap of one backoff delay, in ms. Default 250. */
  maxDelayMs?: number;
}

/** The resolved retry settings. */
export type RetryPolicy = Required<RetryOptions>;

/** Applies the defaults. */
export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  return {
    maxRetries: Math.max(0, Math.floor(o.maxRetries ?? 2)),
    baseDelayMs: Math.max(0, o.baseDelayMs ?? 25),
    maxDelayMs: Math.max(0, o.maxDelayMs ?? 250),
  };
}

/**
 * The delay before retry number `retry` (0 for the first retry): a uniformly
 * random value in [0, min(maxDelayMs, baseDelayMs · 2^retry)) ("full jitter").
 */
export function backoffDelayMs(p: RetryPolicy, retry: number, random = Math.random): number {
  return random() * Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** retry);
}

/** Only UNAVAILABLE is retried: a deadline already spent, or any answer of the server, is not. */
export function isRetryable(err: ConnectError): boolean {
  return err.code === Code.Unavailable;
}

/**
 * Which RPCs may be repeated after an UNAVAILABLE. CheckRateLimit and
 * Authorize with `apply_limits` charge limits and carry no idempotency key;
 * CreateKey, RotateKey, UpdateKey and DeleteBlock change state in a way a
 * repeat could double. RecordEvent is idempotent by event id and RevokeKey by
 * nature; ReportUsage is idempotent by its `id`; ImportKeys without `overwrite` is idempotent (a record already
 * written reads "unchanged" the second time; a dry run writes nothing either
 * way), while with `overwrite` a repeat could replace a change made in
 * between, so it is not retried; the rest only read (ExportKeys included).
 * The streams (TailDecisions, FollowEvents) are never retried: a new stream
 * would repeat or miss lines, so the caller decides.
 */
export const RETRY_SAFE = {
  authorize: (req: { applyLimits?: boolean }) => req.applyLimits !== true,
  checkRateLimit: () => false,
  recordEvent: () => true,
  rotateKey: () => false,
  reportUsage: () => true,
  createKey: () => false,
  getKey: () => true,
  listKeys: () => true,
  updateKey: () => false,
  revokeKey: () => true,
  listBlocks: () => true,
  deleteBlock: () => false,
  listEvents: () => true,
  listAlerts: () => true,
  getUsage: () => true,
  exportKeys: () => true,
  importKeys: (req: { overwrite?: boolean }) => req.overwrite !== true,
  setLimitOverride: () => false,
  deleteLimitOverride: () => false,
  listLimitOverrides: () => true,
  tailDecisions: () => false,
  followEvents: () => false,
} as const;
