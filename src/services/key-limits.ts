/**
 * A key's limits and where it stands against each, read-only: every limit its
 * tier gets on any endpoint (the policy's compiled table), one row per bucket,
 * with the bucket's current usage and remaining as the store has them. Nothing
 * is charged and no denial is counted (RateLimitStore.peek): looking at a key
 * never changes what it may do. One store round trip for the whole key off
 * Cluster, one per subject (key, owner, each endpoint) on Cluster.
 *
 * Limits counted per client IP or per caller-chosen subject are listed but
 * have no usage here: their buckets belong to whoever sends the request, not
 * to the key.
 *
 * The key's and its owner's runtime overrides are applied as a decision
 * applies them (ratelimit/limit-override.ts: key > owner > endpoint > tier),
 * and each row says where its numbers come from.
 */
import type { KeyRecord } from "../keys/key-record.js";
import { type Limit, limitsFor, type Policy } from "../policy/policy.js";
import { describeLimit, NO_MATCH } from "../policy/policy-table.js";
import {
  type LimitOverride,
  type LimitSource,
  overrideLimit,
  overridesByName,
} from "../ratelimit/limit-override.js";
import type { LimitItem } from "../ratelimit/rate-limit-store.js";
import { subjectTag } from "../subjects/subject-tag.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { apiError } from "./errors.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations } from "./validation.js";

/** One bucket a key's requests are counted in. */
export interface KeyLimitRow {
  /** Endpoint names (`(no match)` for requests matching none) whose requests this bucket counts. */
  endpoints: string[];
  name: string;
  kind: Limit["kind"];
  by: Limit["by"];
  mode: Limit["mode"];
  /** Rate: requests per period; quota: requests per window. */
  requests: number;
  /** Rate: the period, ms. */
  periodMs?: number;
  /** Rate: the most at once. */
  burst?: number;
  /** Quota: the UTC calendar window. */
  window?: "day" | "week" | "month";
  /** The limit in words, as check-config prints it; `exempt` when an override exempts the key. */
  text: string;
  /** Where the numbers come from: an override (the key's or its owner's), the endpoint or the tier. */
  source: LimitSource;
  /** True when an override exempts the key from the limit (then it has no usage). */
  exempt?: boolean;
  /** Whose bucket: `this key`, `owner <owner>`, `every caller of <endpoint>`, or `per client IP` / `per subject`. */
  bucket: string;
  /**
   * Where the bucket stands, when it belongs to the key, its owner or an
   * endpoint: `used` of `capacity` cost units (capacity: the burst of a rate,
   * the requests of a quota), `remaining` now, `resetMs` until it is full
   * again (rate) or the window ends (quota).
   */
  usage?: { used: number; capacity: number; remaining: number; resetMs: number; full: boolean };
}

/** A key's limits and usage at one moment. */
export interface KeyLimits {
  keyId: string;
  /** The key's tier as stored. */
  tier: string;
  /** The tier whose limits apply: the stored one, or the default if the policy no longer has it. */
  effectiveTier: string;
  /** Epoch ms of the reading (this process's clock). */
  at: number;
  limits: KeyLimitRow[];
}

/**
 * Reads a key's limits and usage. Throws INVALID_ARGUMENT for a malformed id,
 * NOT_FOUND for an unknown key, and the store's error if it is unreachable.
 */
export async function readKeyLimits(d: ServiceDeps, keyId: string): Promise<KeyLimits> {
  const v = new Violations();
  v.length("key_id", keyId, 1, INPUT_BOUNDS.keyIdMaxBytes);
  if (keyId !== "" && Buffer.byteLength(keyId) <= INPUT_BOUNDS.keyIdMaxBytes)
    v.pattern("key_id", keyId, INPUT_PATTERNS.keyId, "a key id");
  v.throwIfAny();
  const key = await d.keys.get(keyId);
  if (!key) throw apiError("KEY_NOT_FOUND");
  const policy = d.policy();
  const effectiveTier = policy.tiers.has(key.tier) ? key.tier : policy.defaultTier;
  const owner = await d.overrides.store.ownerOverrides(key.owner);
  const rows = keyLimitRows(policy, key, owner, d.clock.now());

  const tied = [...rows.values()].filter((r) => r.item !== undefined);
  const outcomes = await d.rateStore.peek(tied.map((r) => r.item as LimitItem));
  tied.forEach(({ row, item }, i) => {
    const o = outcomes[i];
    if (!o || !item) return;
    const capacity = item.limit.kind === "rate" ? item.limit.burst : item.limit.requests;
    const remaining = Math.max(0, Math.min(capacity, o.remaining));
    row.usage = {
      used: capacity - remaining,
      capacity,
      remaining,
      resetMs: Math.max(0, o.resetMs),
      full: o.exceeded,
    };
  });
  return {
    keyId: key.id,
    tier: key.tier,
    effectiveTier,
    at: d.clock.now(),
    limits: [...rows.values()].map((r) => r.row),
  };
}

/**
 * One row per bucket of the key's limits on every endpoint, overrides
 * applied (`owner`: its owner's overrides), with the item to peek when the
 * bucket is the key's, its owner's or an endpoint's.
 */
export function keyLimitRows(
  policy: Policy,
  key: KeyRecord,
  owner: readonly LimitOverride[],
  now: number,
): Map<string, { row: KeyLimitRow; item?: LimitItem }> {
  const effectiveTier = policy.tiers.has(key.tier) ? key.tier : policy.defaultTier;
  const tierLimits = policy.tiers.get(effectiveTier)?.limits ?? [];
  const winners = overridesByName({ key: key.overrides, owner }, now);
  // One row per bucket: a tier limit shared by every endpoint is one bucket.
  const rows = new Map<string, { row: KeyLimitRow; item?: LimitItem }>();
  for (const e of [...policy.endpoints, undefined]) {
    const endpoint = e?.name ?? NO_MATCH;
    for (const base of limitsFor(policy, key.tier, e)) {
      const won = winners.get(base.name);
      const limit = won ? overrideLimit(base, won.override, won.by) : base;
      const source: LimitSource = won ? won.by : tierLimits.includes(base) ? "tier" : "endpoint";
      const tag = limit ? tagOf(limit, key.id, key.owner, e?.name ?? "-") : undefined;
      const shown = limit ?? base;
      const id = `${tag ?? shown.by}\u0000${shown.bucketId}${limit ? "" : "\u0000exempt"}`;
      const seen = rows.get(id);
      if (seen) {
        seen.row.endpoints.push(endpoint);
        continue;
      }
      const row: KeyLimitRow = {
        endpoints: [endpoint],
        name: shown.name,
        kind: shown.kind,
        by: shown.by,
        mode: shown.mode,
        requests: shown.requests,
        ...(shown.kind === "rate"
          ? { periodMs: shown.periodMs, burst: shown.burst }
          : { window: shown.window ?? "day" }),
        text: limit ? describeLimit(limit) : "exempt",
        source,
        ...(!limit && { exempt: true }),
        bucket: bucketName(shown, key.owner, endpoint),
      };
      rows.set(id, tag === undefined || !limit ? { row } : { row, item: { tag, limit } });
    }
  }
  return rows;
}

/** The bucket's subject tag when it is the key's (key, owner, endpoint); undefined per IP or subject. */
function tagOf(limit: Limit, keyId: string, owner: string, endpoint: string): string | undefined {
  switch (limit.by) {
    case "key":
      return subjectTag("key", keyId);
    case "owner":
      return subjectTag("owner", owner);
    case "endpoint":
      return subjectTag("endpoint", endpoint);
    default:
      return undefined;
  }
}

function bucketName(limit: Limit, owner: string, endpoint: string): string {
  switch (limit.by) {
    case "key":
      return "this key";
    case "owner":
      return `owner ${owner}`;
    case "endpoint":
      return `every caller of ${endpoint}`;
    case "ip":
      return "per client IP";
    case "subject":
      return "per subject";
  }
}
