/** Conversions between limit overrides and their protobuf messages. */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type LimitOverride as LimitOverrideProto,
  LimitOverrideSchema,
  type ScopedLimitOverride,
  ScopedLimitOverrideSchema,
} from "../gen/tollgate/v1/override_pb.js";
import type { LimitOverride } from "../ratelimit/limit-override.js";

const ts = (ms: number | undefined) => (ms === undefined ? undefined : timestampFromMs(ms));

/** An override as the management API shows it. */
export function overrideToProto(o: LimitOverride): LimitOverrideProto {
  return create(LimitOverrideSchema, {
    limit: o.limit,
    exempt: o.exempt,
    requests: BigInt(o.requests),
    burst: BigInt(o.burst ?? 0),
    ...(o.periodMs !== undefined && { period: durationFromMs(o.periodMs) }),
    expireTime: ts(o.expiresAt),
    createTime: ts(o.createdAt),
  });
}

/** An override with its target. */
export function scopedToProto(
  target: { keyId: string } | { owner: string },
  o: LimitOverride,
): ScopedLimitOverride {
  return create(ScopedLimitOverrideSchema, {
    target:
      "keyId" in target
        ? { case: "keyId", value: target.keyId }
        : { case: "owner", value: target.owner },
    limitOverride: overrideToProto(o),
  });
}

/**
 * A message already validated (override-handlers.ts) as a stored override;
 * also reads the overrides of an exported key back (ImportKeys), where a
 * malformed number is dropped rather than trusted.
 */
export function overrideFromProto(m: LimitOverrideProto, createdAt: number): LimitOverride {
  const n = (v: bigint) => (v > BigInt(Number.MAX_SAFE_INTEGER) ? 0 : Number(v));
  return {
    limit: m.limit,
    exempt: m.exempt,
    requests: m.exempt ? 0 : n(m.requests),
    ...(!m.exempt && m.burst > 0n && { burst: n(m.burst) }),
    ...(!m.exempt && m.period && { periodMs: durationMs(m.period) }),
    ...(m.expireTime && { expiresAt: timestampMs(m.expireTime) }),
    createdAt: m.createTime ? timestampMs(m.createTime) : createdAt,
  };
}
