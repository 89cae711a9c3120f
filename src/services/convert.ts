/** Conversions between domain records and protobuf messages. */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Header } from "../gen/tollgate/v1/common_pb.js";
import { Reason } from "../gen/tollgate/v1/common_pb.js";
import {
  type CreditPlan as CreditPlanProto,
  CreditPlanSchema,
  CreditRefill,
  CreditRefillMode,
  CreditsStateSchema,
} from "../gen/tollgate/v1/credits_pb.js";
import {
  type Identity,
  IdentitySchema,
  type Key,
  KeySchema,
  KeyStatus,
} from "../gen/tollgate/v1/key_pb.js";
import { type KeyHints, KeyHintsSchema } from "../gen/tollgate/v1/tollgate_service_pb.js";
import type { AuthReason, KeyHintsData } from "../keys/authorizer.js";
import type { KeyRecord } from "../keys/key-record.js";
import type { CreditPlan } from "../policy/policy.js";
import { isActive } from "../ratelimit/limit-override.js";
import { headerMessage } from "./message-literals.js";
import { overrideToProto } from "./override-convert.js";

/** Epoch ms → Timestamp, or undefined. */
export function ts(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : timestampFromMs(ms);
}

/**
 * A stored record as the management API shows it (no digests). `now` leaves
 * out limit overrides expired by then; undefined shows every stored one (export).
 */
export function keyToProto(r: KeyRecord, now?: number): Key {
  return create(KeySchema, {
    id: r.id,
    owner: r.owner,
    tier: r.tier,
    scopes: r.scopes,
    metadata: r.metadata,
    status: r.status === "revoked" ? KeyStatus.REVOKED : KeyStatus.ACTIVE,
    environment: r.environment,
    createTime: ts(r.createdAt),
    updateTime: ts(r.updatedAt),
    expireTime: ts(r.expiresAt),
    revokeTime: ts(r.revokedAt),
    revokedReason: r.status === "revoked" ? (r.revokeReason ?? "") : "",
    ipAllow: r.ipAllow,
    ipDeny: r.ipDeny,
    secretCreateTime: ts(r.secretCreatedAt),
    graceEndTime: ts(r.graceEndsAt),
    version: BigInt(r.version),
    // The key's own plan only: its balance is the rate-limit store's (GetKey reads it).
    ...(r.credits && {
      credits: create(CreditsStateSchema, { plan: creditPlanToProto(r.credits), ownPlan: true }),
    }),
    limitOverrides: (r.overrides ?? [])
      .filter((o) => now === undefined || isActive(o, now))
      .map(overrideToProto),
  });
}

/** A plan in its proto form. */
export function creditPlanToProto(p: CreditPlan): CreditPlanProto {
  return create(CreditPlanSchema, {
    amount: BigInt(p.amount),
    refill: REFILL_TO[p.refill],
    refillDay: p.refill === "monthly" ? p.refillDay : 0,
    mode: p.mode === "add" ? CreditRefillMode.ADD : CreditRefillMode.REPLACE,
    cap: p.mode === "add" ? BigInt(p.cap) : 0n,
  });
}

const REFILL_TO = {
  none: CreditRefill.NONE,
  daily: CreditRefill.DAILY,
  monthly: CreditRefill.MONTHLY,
} as const;

/**
 * One Identity per key record: a cached key answers every Authorize with the
 * same record object, so its identity is built (and, frozen, encoded by the
 * hot encoder) once per record rather than per request. Records are never
 * changed in place (an update caches a new one), and the memo lives only as
 * long as its record.
 */
const identities = new WeakMap<KeyRecord, Identity>();

/** The caller identity of a recognised key: frozen, memoised per record (do not modify it). */
export function identityToProto(r: KeyRecord): Identity {
  let id = identities.get(r);
  if (id === undefined) {
    id = create(IdentitySchema, {
      keyId: r.id,
      owner: r.owner,
      tier: r.tier,
      scopes: Object.freeze([...r.scopes]) as string[],
      metadata: Object.freeze({ ...r.metadata }) as Record<string, string>,
      environment: r.environment,
    });
    Object.freeze(id);
    identities.set(r, id);
  }
  return id;
}

/**
 * The hints of most keys (no expiry, not in a grace period, no rotation due):
 * one frozen message instead of a create per decision.
 */
const NO_HINTS: KeyHints = Object.freeze(create(KeyHintsSchema)) as KeyHints;

/** Lifecycle hints. */
export function hintsToProto(h: KeyHintsData): KeyHints {
  if (
    !h.expiresSoon &&
    !h.inGracePeriod &&
    !h.rotationDue &&
    h.expiresAt === undefined &&
    h.graceEndsAt === undefined
  )
    return NO_HINTS;
  return create(KeyHintsSchema, {
    expiresSoon: h.expiresSoon,
    expireTime: ts(h.expiresAt),
    inGracePeriod: h.inGracePeriod,
    graceEndTime: ts(h.graceEndsAt),
    rotationDue: h.rotationDue,
  });
}

/** Domain reason → proto enum. */
export const REASON_TO_PROTO: Record<
  AuthReason | "RATE_LIMITED" | "CREDITS_EXHAUSTED" | "BLOCKED",
  Reason
> = {
  OK: Reason.OK,
  MISSING_KEY: Reason.MISSING_KEY,
  MALFORMED_KEY: Reason.MALFORMED_KEY,
  UNKNOWN_KEY: Reason.UNKNOWN_KEY,
  EXPIRED_KEY: Reason.EXPIRED_KEY,
  REVOKED_KEY: Reason.REVOKED_KEY,
  IP_DENIED: Reason.IP_DENIED,
  INSUFFICIENT_SCOPE: Reason.INSUFFICIENT_SCOPE,
  RATE_LIMITED: Reason.RATE_LIMITED,
  CREDITS_EXHAUSTED: Reason.CREDITS_EXHAUSTED,
  BLOCKED: Reason.BLOCKED,
};

/** A response header. */
export function header(name: string, value: string): Header {
  return headerMessage(name, value);
}
