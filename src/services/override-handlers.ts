/**
 * SetLimitOverride, DeleteLimitOverride and ListLimitOverrides: runtime limit
 * overrides of a key (kept in its record, so they ride the key cache and its
 * invalidation) or of an owner (kept in the OverrideStore, cached by
 * OwnerOverrides and invalidated over the bus). Behind the management token
 * like every KeyService RPC (key-service.ts guards them); changes are audited.
 */
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type DeleteLimitOverrideRequest,
  type DeleteLimitOverrideResponse,
  DeleteLimitOverrideResponseSchema,
  EffectiveLimitSchema,
  type LimitOverride as LimitOverrideProto,
  type ListLimitOverridesRequest,
  type ListLimitOverridesResponse,
  ListLimitOverridesResponseSchema,
  type ScopedLimitOverride,
  type SetLimitOverrideRequest,
  type SetLimitOverrideResponse,
  SetLimitOverrideResponseSchema,
} from "../gen/tollgate/v1/override_pb.js";
import type { Limit, Policy } from "../policy/policy.js";
import { MAX_BURST_TIMES_PERIOD_MS, MAX_QUOTA } from "../policy/policy-schema.js";
import { isActive, type LimitOverride } from "../ratelimit/limit-override.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { apiError } from "./errors.js";
import { keyLimitRows } from "./key-limits.js";
import { audit, unwrap } from "./key-service.js";
import { overrideFromProto, scopedToProto } from "./override-convert.js";
import type { ServiceDeps } from "./service-deps.js";
import { Violations, validNames } from "./validation.js";

const B = INPUT_BOUNDS;
const MAX_RATE_REQUESTS = B.overrideRateRequestsMax;
const MAX_BURST = B.overrideBurstMax;
const MAX_PERIOD_MS = B.overridePeriodMaxS * 1000;
const LIST_MAX = B.listOverridesPageMax;

type Target = { keyId: string } | { owner: string };

/** SetLimitOverride: validates, stores, invalidates on every replica, audits. */
export async function setLimitOverride(
  d: ServiceDeps,
  req: SetLimitOverrideRequest,
  actor: string,
): Promise<SetLimitOverrideResponse> {
  const v = new Violations();
  const target = validTarget(v, req.target);
  const now = d.clock.now();
  const m = req.limitOverride;
  if (!m) v.add("limit_override", "is required");
  else validOverride(v, d.policy(), m, now);
  v.throwIfAny();
  const stored: LimitOverride = {
    ...overrideFromProto(m as LimitOverrideProto, now),
    createdAt: now,
  };
  if (target && "keyId" in target) {
    unwrap(
      await d.keys.changeOverrides(target.keyId, (cur) => [
        ...cur.filter((c) => c.limit !== stored.limit && isActive(c, now)),
        stored,
      ]),
    );
    await d.overrides.store.markKey(target.keyId, true);
    audit(d, "update", target.keyId, actor, { override: `set ${stored.limit}` });
  } else if (target) {
    await d.overrides.store.setOwnerOverride(target.owner, stored);
    await dropExpiredOwner(d, target.owner, now);
    await d.overrides.ownerChanged(target.owner);
    auditOwner(d, target.owner, actor, `set ${stored.limit}`);
  }
  return create(SetLimitOverrideResponseSchema, {
    limitOverride: scopedToProto(target as Target, stored),
  });
}

/** DeleteLimitOverride: removes one override (deleted: false if there was none). */
export async function deleteLimitOverride(
  d: ServiceDeps,
  req: DeleteLimitOverrideRequest,
  actor: string,
): Promise<DeleteLimitOverrideResponse> {
  const v = new Violations();
  const target = validTarget(v, req.target);
  v.length("limit", req.limit, 1, B.limitNameMaxBytes);
  v.throwIfAny();
  const now = d.clock.now();
  let deleted = false;
  if (target && "keyId" in target) {
    const r = await d.keys.get(target.keyId);
    if (!r) throw apiError("KEY_NOT_FOUND");
    if (r.overrides?.some((o) => o.limit === req.limit)) {
      const next = unwrap(
        await d.keys.changeOverrides(target.keyId, (cur) =>
          cur.filter((c) => c.limit !== req.limit && isActive(c, now)),
        ),
      );
      deleted = true;
      await d.overrides.store.markKey(target.keyId, (next.overrides?.length ?? 0) > 0);
      audit(d, "update", target.keyId, actor, { override: `delete ${req.limit}` });
    }
  } else if (target) {
    deleted = (await d.overrides.store.removeOwnerOverrides(target.owner, [req.limit])) > 0;
    if (deleted) {
      await d.overrides.ownerChanged(target.owner);
      auditOwner(d, target.owner, actor, `delete ${req.limit}`);
    }
  }
  return create(DeleteLimitOverrideResponseSchema, { deleted });
}

/**
 * ListLimitOverrides: a key's (with its effective limits) or an owner's, or
 * every key's and owner's up to `page_size`. Expired overrides are left out
 * and removed from the store.
 */
export async function listLimitOverrides(
  d: ServiceDeps,
  req: ListLimitOverridesRequest,
): Promise<ListLimitOverridesResponse> {
  const v = new Violations();
  const target = req.target.case === undefined ? undefined : validTarget(v, req.target);
  if (req.pageSize > LIST_MAX) v.add("page_size", `must be 0..${LIST_MAX}`);
  v.throwIfAny();
  const now = d.clock.now();
  if (target && "keyId" in target) {
    const r = await d.keys.get(target.keyId);
    if (!r) throw apiError("KEY_NOT_FOUND");
    const own = (r.overrides ?? []).filter((o) => isActive(o, now));
    if (own.length !== (r.overrides?.length ?? 0)) await dropExpiredKey(d, r.id, now);
    const owner = await activeOwner(d, r.owner, now);
    const rows = keyLimitRows(d.policy(), { ...r, overrides: own }, owner, now);
    return create(ListLimitOverridesResponseSchema, {
      limitOverrides: [
        ...own.map((o) => scopedToProto({ keyId: r.id }, o)),
        ...owner.map((o) => scopedToProto({ owner: r.owner }, o)),
      ],
      effectiveLimits: [...rows.values()].map(({ row }) =>
        create(EffectiveLimitSchema, {
          name: row.name,
          source: row.source,
          text: row.text,
          endpoints: row.endpoints,
        }),
      ),
    });
  }
  if (target) {
    const owner = await activeOwner(d, target.owner, now);
    return create(ListLimitOverridesResponseSchema, {
      limitOverrides: owner.map((o) => scopedToProto(target, o)),
    });
  }
  const max = req.pageSize || B.listOverridesPageDefault;
  const out: ScopedLimitOverride[] = [];
  for (const owner of await d.overrides.store.owners(max + 1)) {
    for (const o of await activeOwner(d, owner, now)) out.push(scopedToProto({ owner }, o));
    if (out.length > max) break;
  }
  if (out.length <= max) {
    for (const id of await d.overrides.store.keys(max + 1)) {
      const r = await d.keys.get(id);
      for (const o of r?.overrides ?? [])
        if (isActive(o, now)) out.push(scopedToProto({ keyId: id }, o));
      if (out.length > max) break;
    }
  }
  return create(ListLimitOverridesResponseSchema, {
    limitOverrides: out.slice(0, max),
    truncated: out.length > max,
  });
}

/** The oneof target, validated; undefined (and a violation) when missing or malformed. */
function validTarget(
  v: Violations,
  t: SetLimitOverrideRequest["target"] | ListLimitOverridesRequest["target"],
): Target | undefined {
  if (t.case === "keyId") {
    v.length("key_id", t.value, 1, B.keyIdMaxBytes);
    if (t.value !== "" && Buffer.byteLength(t.value) <= B.keyIdMaxBytes)
      v.pattern("key_id", t.value, INPUT_PATTERNS.keyId, "a key id (key_ + 16 base62)");
    return { keyId: t.value };
  }
  if (t.case === "owner") {
    v.length("owner", t.value, 1, B.ownerMaxBytes);
    return { owner: t.value };
  }
  v.add("target", "must be key_id or owner");
  return undefined;
}

/** Checks an override against the policy's limits of its name and the policy file's bounds. */
function validOverride(v: Violations, policy: Policy, m: LimitOverrideProto, now: number): void {
  const f = "limit_override";
  v.length(`${f}.limit`, m.limit, 1, B.limitNameMaxBytes);
  const named = limitsNamed(policy).get(m.limit);
  if (!named && m.limit !== "") {
    v.add(`${f}.limit`, `must be a limit of the policy: ${validNames(limitsNamed(policy).keys())}`);
  }
  if (m.expireTime) {
    const ms = timestampMs(m.expireTime);
    if (!Number.isFinite(ms) || ms <= now) v.add(`${f}.expire_time`, "must be in the future");
    else if (ms > Date.UTC(B.maxYear, 0))
      v.add(`${f}.expire_time`, `must be before year ${B.maxYear}`);
  }
  if (m.exempt) {
    if (m.requests !== 0n || m.burst !== 0n || m.period)
      v.add(`${f}.exempt`, "must not be set with requests, burst or period");
    return;
  }
  if (m.requests === 0n) v.add(`${f}.requests`, "must be at least 1 (or set exempt)");
  if (!named) return;
  const rates = named.filter((l) => l.kind === "rate");
  const isRate = rates.length > 0;
  const max = isRate ? MAX_RATE_REQUESTS : MAX_QUOTA;
  if (m.requests > BigInt(max)) v.add(`${f}.requests`, `must be at most ${max}`);
  if (!isRate && (m.burst !== 0n || m.period)) {
    v.add(
      m.burst !== 0n ? `${f}.burst` : `${f}.period`,
      "only a rate limit has one (this is a quota)",
    );
    return;
  }
  if (m.burst > BigInt(MAX_BURST)) v.add(`${f}.burst`, `must be at most ${MAX_BURST}`);
  let periodMs: number | undefined;
  if (m.period) {
    periodMs = durationMs(m.period);
    if (!Number.isInteger(periodMs) || periodMs < 1 || periodMs > MAX_PERIOD_MS)
      v.add(`${f}.period`, "must be a whole number of ms, 1 ms to 366 days");
  }
  if (!v.ok) return;
  const burst = Number(m.burst === 0n ? m.requests : m.burst);
  for (const l of rates) {
    const p = periodMs ?? l.periodMs;
    if (burst * p > MAX_BURST_TIMES_PERIOD_MS) {
      v.add(
        `${f}.${m.burst === 0n ? "requests" : "burst"}`,
        `burst × period is ${burst} × ${p} ms, above 2^53: too large to count exactly`,
      );
      return;
    }
  }
}

const NAMED = new WeakMap<Policy, Map<string, Limit[]>>();

/** Every limit of the policy (tiers' and endpoints'), by name; memoised per policy. */
export function limitsNamed(policy: Policy): Map<string, Limit[]> {
  let m = NAMED.get(policy);
  if (m) return m;
  m = new Map();
  const add = (l: Limit) => m?.set(l.name, [...(m.get(l.name) ?? []), l]);
  for (const t of policy.tiers.values()) for (const l of t.limits) add(l);
  for (const e of policy.endpoints) for (const { limit } of e.limits) add(limit);
  NAMED.set(policy, m);
  return m;
}

/** An owner's active overrides, the expired ones removed from the store. */
async function activeOwner(d: ServiceDeps, owner: string, now: number): Promise<LimitOverride[]> {
  const all = await d.overrides.store.ownerOverrides(owner);
  const expired = all.filter((o) => !isActive(o, now)).map((o) => o.limit);
  if (expired.length > 0) {
    await d.overrides.store.removeOwnerOverrides(owner, expired);
    await d.overrides.ownerChanged(owner);
  }
  return all.filter((o) => isActive(o, now));
}

async function dropExpiredOwner(d: ServiceDeps, owner: string, now: number): Promise<void> {
  const expired = (await d.overrides.store.ownerOverrides(owner))
    .filter((o) => !isActive(o, now))
    .map((o) => o.limit);
  if (expired.length > 0) await d.overrides.store.removeOwnerOverrides(owner, expired);
}

async function dropExpiredKey(d: ServiceDeps, keyId: string, now: number): Promise<void> {
  const r = await d.keys.changeOverrides(keyId, (cur) => cur.filter((c) => isActive(c, now)));
  if (typeof r !== "string") await d.overrides.store.markKey(keyId, (r.overrides?.length ?? 0) > 0);
}

function auditOwner(d: ServiceDeps, owner: string, actor: string, change: string): void {
  d.metrics.keyActions.inc({ action: "override" });
  d.log.info({ audit: "override", owner, actor, override: change }, "owner limit override changed");
}
