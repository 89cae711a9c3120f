/**
 * Runtime limit overrides: a key or an owner gets other numbers for one named
 * limit of the policy (raise or lower), or is exempt from it, until an
 * optional expiry. Precedence, per limit name: key override > owner override
 * > endpoint limit > tier limit (the last two are merged by the policy's
 * compiled table, policy.ts limitsFor).
 *
 * Bucket identity: an overridden limit keeps the bucket id of the policy
 * limit it replaces, so a raise or a lower keeps the usage already counted
 * (a quota's count; a rate's GCRA debt, which is kept in ms × requests units
 * and so reads as the same number of outstanding requests whatever the new
 * requests and burst). A new period would make that debt mean another count,
 * so an override that changes a rate's period starts a fresh bucket (the id
 * the policy would give a limit with those numbers); going back to the
 * policy's period finds the old bucket again.
 *
 * Applying is memoised per (policy limits, key overrides, owner overrides)
 * object: a key or owner without overrides costs nothing, one with overrides a
 * WeakMap lookup per decision until its earliest expiry passes.
 */
import { crc32 } from "node:zlib";
import type { Limit } from "../policy/policy.js";

/** One override of one named limit. Times are epoch ms. */
export interface LimitOverride {
  /** The policy limit's name. */
  limit: string;
  /** True: not counted against the limit at all (the numbers are ignored). */
  exempt: boolean;
  /** Rate: requests per period; quota: requests per window. 0 with `exempt`. */
  requests: number;
  /** Rate only: the most at once; undefined: `requests` (the policy file's rule). */
  burst?: number;
  /** Rate only: the period; undefined: the limit's own. */
  periodMs?: number;
  /** When it stops applying; undefined: never. */
  expiresAt?: number;
  createdAt: number;
}

/** Where a limit's numbers come from, as `tollgate keys get` shows it. */
export type LimitSource = "key override" | "owner override" | "endpoint" | "tier";

/** A limit after overrides; `source` is set only when an override made it. */
export interface OverriddenLimit extends Limit {
  overriddenBy?: "key override" | "owner override";
}

/** The overrides in force for one decision. */
export interface OverrideSources {
  /** The key's own (KeyRecord.overrides); undefined or empty: none. */
  key?: readonly LimitOverride[] | undefined;
  /** The key's owner's (OwnerOverrides); undefined or empty: none. */
  owner?: readonly LimitOverride[] | undefined;
}

/** True if the override applies at `now` (not expired). */
export function isActive(o: LimitOverride, now: number): boolean {
  return o.expiresAt === undefined || o.expiresAt > now;
}

/** The overrides of `list` that apply at `now`; the same array when none expired. */
export function activeOverrides(
  list: readonly LimitOverride[],
  now: number,
): readonly LimitOverride[] {
  return list.every((o) => isActive(o, now)) ? list : list.filter((o) => isActive(o, now));
}

/** `limit` with the override's numbers, or undefined when the override exempts from it. */
export function overrideLimit(
  limit: Limit,
  o: LimitOverride,
  by: "key override" | "owner override",
): OverriddenLimit | undefined {
  if (o.exempt) return undefined;
  if (limit.kind === "quota") {
    return { ...limit, requests: o.requests, burst: o.requests, overriddenBy: by };
  }
  const periodMs = o.periodMs ?? limit.periodMs;
  const burst = o.burst ?? o.requests;
  const bucketId =
    periodMs === limit.periodMs ? limit.bucketId : bucketIdOf(limit, o.requests, periodMs, burst);
  return { ...limit, requests: o.requests, periodMs, burst, bucketId, overriddenBy: by };
}

/** The bucket id policy.ts gives a rate limit with these numbers (same fingerprint). */
function bucketIdOf(limit: Limit, requests: number, periodMs: number, burst: number): string {
  const fingerprint = JSON.stringify([limit.kind, requests, periodMs, burst, limit.by]);
  return `${limit.name}.${crc32(fingerprint).toString(36)}`;
}

/**
 * The limits of a decision after overrides, in the policy's order (an exempt
 * limit is left out). Pure; see OverrideCompiler for the memoised form.
 */
export function applyOverrides(
  limits: readonly Limit[],
  sources: OverrideSources,
  now: number,
): readonly OverriddenLimit[] {
  const byName = overridesByName(sources, now);
  if (byName.size === 0) return limits;
  const out: OverriddenLimit[] = [];
  let changed = false;
  for (const l of limits) {
    const o = byName.get(l.name);
    if (!o) {
      out.push(l);
      continue;
    }
    changed = true;
    const next = overrideLimit(l, o.override, o.by);
    if (next) out.push(next);
  }
  // None of these limits is overridden: the policy's own list (and its identity).
  return changed ? out : limits;
}

/** Each limit name's winning override at `now`: the key's, else the owner's. */
export function overridesByName(
  sources: OverrideSources,
  now: number,
): Map<string, { override: LimitOverride; by: "key override" | "owner override" }> {
  const byName = new Map<
    string,
    { override: LimitOverride; by: "key override" | "owner override" }
  >();
  for (const o of sources.owner ?? [])
    if (isActive(o, now)) byName.set(o.limit, { override: o, by: "owner override" });
  for (const o of sources.key ?? [])
    if (isActive(o, now)) byName.set(o.limit, { override: o, by: "key override" });
  return byName;
}

/** The earliest expiry among the overrides (Infinity: none expires). */
function earliestExpiry(sources: OverrideSources, now: number): number {
  let t = Number.POSITIVE_INFINITY;
  for (const o of [...(sources.key ?? []), ...(sources.owner ?? [])])
    if (o.expiresAt !== undefined && o.expiresAt > now) t = Math.min(t, o.expiresAt);
  return t;
}

const NONE: readonly LimitOverride[] = Object.freeze([]);

/**
 * applyOverrides, memoised on the identity of the three inputs (the policy's
 * precompiled limit list, the key's override list from its cached record, the
 * owner's from OwnerOverrides' cache): the same objects until a change, a
 * reload or a cache refresh, so a warm decision does one WeakMap lookup per
 * level. An entry is recomputed once its earliest expiry passes.
 */
export class OverrideCompiler {
  private readonly memo = new WeakMap<
    readonly Limit[],
    WeakMap<
      readonly LimitOverride[],
      WeakMap<readonly LimitOverride[], { limits: readonly Limit[]; until: number }>
    >
  >();

  /** The limits of a decision after overrides (`limits` itself when there are none). */
  apply(limits: readonly Limit[], sources: OverrideSources, now: number): readonly Limit[] {
    const key = sources.key?.length ? sources.key : NONE;
    const owner = sources.owner?.length ? sources.owner : NONE;
    if (key === NONE && owner === NONE) return limits;
    let byKey = this.memo.get(limits);
    if (!byKey) {
      byKey = new WeakMap();
      this.memo.set(limits, byKey);
    }
    let byOwner = byKey.get(key);
    if (!byOwner) {
      byOwner = new WeakMap();
      byKey.set(key, byOwner);
    }
    const hit = byOwner.get(owner);
    if (hit && now < hit.until) return hit.limits;
    const entry = {
      limits: applyOverrides(limits, { key, owner }, now),
      until: earliestExpiry({ key, owner }, now),
    };
    byOwner.set(owner, entry);
    return entry.limits;
  }
}
