/** Conversions between domain records and protobuf messages. */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Header } from "../gen/tollgate/v1/common_pb.js";
import { HeaderSchema, Reason } from "../gen/tollgate/v1/common_pb.js";
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
import { isActive } from "../ratelimit/limit-override.js";
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
    limitOverrides: (r.overrides ?? [])
      .filter((o) => now === undefined || isActive(o, now))
      .map(overrideToProto),
  });
}

/** The caller identity of a recognised key. */
export function identityToProto(r: KeyRecord): Identity {
  return create(IdentitySchema, {
    keyId: r.id,
    owner: r.owner,
    tier: r.tier,
    scopes: r.scopes,
    metadata: r.metadata,
    environment: r.environment,
  });
}

/** Lifecycle hints. */
export function hintsToProto(h: KeyHintsData): KeyHints {
  return create(KeyHintsSchema, {
    expiresSoon: h.expiresSoon,
    expireTime: ts(h.expiresAt),
    inGracePeriod: h.inGracePeriod,
    graceEndTime: ts(h.graceEndsAt),
    rotationDue: h.rotationDue,
  });
}

/** Domain reason → proto enum. */
export const REASON_TO_PROTO: Record<AuthReason | "RATE_LIMITED" | "BLOCKED", Reason> = {
  OK: Reason.OK,
  MISSING_KEY: Reason.MISSING_KEY,
  MALFORMED_KEY: Reason.MALFORMED_KEY,
  UNKNOWN_KEY: Reason.UNKNOWN_KEY,
  EXPIRED_KEY: Reason.EXPIRED_KEY,
  REVOKED_KEY: Reason.REVOKED_KEY,
  IP_DENIED: Reason.IP_DENIED,
  INSUFFICIENT_SCOPE: Reason.INSUFFICIENT_SCOPE,
  RATE_LIMITED: Reason.RATE_LIMITED,
  BLOCKED: Reason.BLOCKED,
};

/** A response header. */
export function header(name: string, value: string): Header {
  return create(HeaderSchema, { name, value });
}
