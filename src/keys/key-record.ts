import type { CreditPlan } from "../policy/policy.js";
import type { LimitOverride } from "../ratelimit/limit-override.js";

/** Lifecycle state of a stored key. */
export type KeyState = "active" | "revoked";

/**
 * A key as stored. Times are epoch milliseconds. Holds digests of secrets,
 * never a secret.
 */
export interface KeyRecord {
  id: string;
  owner: string;
  tier: string;
  scopes: string[];
  metadata: Record<string, string>;
  status: KeyState;
  environment: string;
  createdAt: number;
  updatedAt: number;
  expiresAt?: number;
  revokedAt?: number;
  revokeReason?: string;
  ipAllow: string[];
  ipDeny: string[];
  /**
   * Digest of the current secret: HMAC-SHA256(pepper, secret) in base64url, or
   * `sha256:<hex>` for a key imported from another system and not used since
   * (see foreign-keys.ts).
   */
  digest: string;
  secretCreatedAt: number;
  /** Digest of the previous secret while a rotation's grace period runs. */
  graceDigest?: string;
  graceEndsAt?: number;
  /** For a key imported by a foreign digest: the start its secrets share (kept after it moved to HMAC). */
  foreignPrefix?: string;
  /** The key's own credit plan (wins over its tier's); its balance lives in the rate-limit store. */
  credits?: CreditPlan;
  /**
   * The key's own limit overrides (ratelimit/limit-override.ts), one per limit
   * name; expired ones are ignored and dropped at the next change. In the
   * record so they ride the key cache and its invalidation on every replica.
   */
  overrides?: LimitOverride[];
  /** Incremented on every change; used for compare-and-set. */
  version: number;
}

/**
 * Why a recognised key may not be used at `now`, or undefined if it may:
 * revoked wins over expired. Every path that accepts a key (by secret or by
 * id) asks this, so a revoked key is refused the same way everywhere.
 */
export function unusableReason(
  record: KeyRecord,
  now: number,
): "REVOKED_KEY" | "EXPIRED_KEY" | undefined {
  if (record.status === "revoked") return "REVOKED_KEY";
  if (record.expiresAt !== undefined && record.expiresAt <= now) return "EXPIRED_KEY";
  return undefined;
}

/**
 * Which secret of `record` the digest `d` is, at time `now`: the current one,
 * the previous one still in its grace period, or none (an ended grace period
 * counts as none, whatever a cache or index still says).
 */
export function matchDigest(
  record: KeyRecord,
  d: string,
  now: number,
): "current" | "grace" | "none" {
  if (record.digest === d) return "current";
  if (record.graceDigest === d && record.graceEndsAt !== undefined && now < record.graceEndsAt) {
    return "grace";
  }
  return "none";
}
