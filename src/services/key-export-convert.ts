/**
 * KeyExport ⇄ stored records: what ExportKeys writes and ImportKeys reads
 * (format version 1). Import validation names fields by their path within
 * the record (`key.owner`, `foreign_digest.value`) and never echoes a value.
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  DigestAlgorithm,
  DigestEncoding,
  type ForeignDigest,
  ForeignDigestSchema,
  type KeyExport,
  KeyExportSchema,
} from "../gen/tollgate/v1/key_export_pb.js";
import { KeyStatus } from "../gen/tollgate/v1/key_pb.js";
import {
  foreignDigestHex,
  foreignPrefixProblem,
  isForeignDigest,
  normaliseForeignDigest,
} from "../keys/foreign-keys.js";
import type { ImportItem } from "../keys/key-import.js";
import type { KeyRecord } from "../keys/key-record.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import { keyToProto } from "./convert.js";
import { creditPlanFromProto } from "./credits-convert.js";
import { overrideFromProto } from "./override-convert.js";
import { Violations } from "./validation.js";

/** The record format version this server writes and reads. */
export const EXPORT_FORMAT_VERSION = 1;

const B = INPUT_BOUNDS;
const ID = INPUT_PATTERNS.keyId;
/** An unpadded base64url HMAC-SHA256 digest. */
const HMAC_DIGEST = new RegExp(`^[A-Za-z0-9_-]{${B.hmacDigestChars}}$`);
const ENVIRONMENT = INPUT_PATTERNS.environment;
const LATEST_MS = Date.UTC(B.maxYear, 0);

/** A stored record as a KeyExport (digests, never a secret). */
export function exportRecord(r: KeyRecord): KeyExport {
  const foreign = isForeignDigest(r.digest);
  const graceForeign = isForeignDigest(r.graceDigest);
  return create(KeyExportSchema, {
    formatVersion: EXPORT_FORMAT_VERSION,
    key: keyToProto(r),
    secretDigest: foreign ? "" : r.digest,
    graceSecretDigest: r.graceDigest !== undefined && !graceForeign ? r.graceDigest : "",
    ...(foreign && { foreignDigest: hexDigest(r.digest) }),
    ...(graceForeign && { graceForeignDigest: hexDigest(r.graceDigest as string) }),
    foreignPrefix: r.foreignPrefix ?? "",
  });
}

function hexDigest(stored: string): ForeignDigest {
  return create(ForeignDigestSchema, {
    algorithm: DigestAlgorithm.SHA256,
    encoding: DigestEncoding.HEX,
    value: foreignDigestHex(stored),
  });
}

/** What an import record is checked against. */
export interface ImportContext {
  now: number;
  defaultTier: string;
  tierExists: (tier: string) => boolean;
  defaultEnvironment: string;
  /** The id of a foreign record imported without one. */
  foreignKeyId: (foreignDigest: string) => string;
}

/** A record checked and converted, or its problems. */
export type ConvertedImport =
  | { item: ImportItem }
  | { id: string; violations: readonly { field: string; description: string }[] };

/** True if a record carries Tollgate (pepper-made) digests. */
export function hasPepperDigests(m: KeyExport): boolean {
  return m.secretDigest !== "" || m.graceSecretDigest !== "";
}

/** Checks one import record and converts it to a stored record with its defaults. */
export function importRecord(m: KeyExport, c: ImportContext): ConvertedImport {
  const v = new Violations();
  if (m.formatVersion > EXPORT_FORMAT_VERSION) {
    v.add("format_version", `must be ${EXPORT_FORMAT_VERSION} (the version this server reads)`);
  }
  const current = secretDigest(v, m.secretDigest, m.foreignDigest, "");
  const grace = secretDigest(v, m.graceSecretDigest, m.graceForeignDigest, "grace_", true);
  const foreign = isForeignDigest(current) || isForeignDigest(grace);
  if (foreign && m.foreignPrefix === "") {
    v.add("foreign_prefix", "is required with a foreign digest");
  } else if (m.foreignPrefix !== "") {
    const problem = foreignPrefixProblem(m.foreignPrefix);
    if (problem) v.add("foreign_prefix", problem);
  }
  const k = m.key;
  if (!k) {
    v.add("key", "is required");
    return { id: "", violations: v.all };
  }
  let id = k.id;
  if (id === "") {
    if (current !== undefined && isForeignDigest(current)) id = c.foreignKeyId(current);
    else if (current !== undefined) {
      v.add("key.id", "is required unless the current secret has a foreign digest");
    }
  } else {
    v.length("key.id", id, 1, B.keyIdMaxBytes);
    if (Buffer.byteLength(id) <= B.keyIdMaxBytes)
      v.pattern("key.id", id, ID, "a key id (key_ + 16 base62)");
  }
  v.length("key.owner", k.owner, 1, B.ownerMaxBytes);
  const tier = k.tier || c.defaultTier;
  if (k.tier !== "") {
    v.length("key.tier", k.tier, 1, B.tierMaxBytes);
    if (!c.tierExists(k.tier)) v.add("key.tier", "must be a tier of the policy");
  }
  v.scopes("key.scopes", k.scopes, B.keyScopesMax);
  v.map(
    "key.metadata",
    k.metadata,
    B.metadataMaxEntries,
    B.metadataKeyMaxBytes,
    B.metadataValueMaxBytes,
  );
  v.networks("key.ip_allow", k.ipAllow);
  v.networks("key.ip_deny", k.ipDeny);
  const environment = k.environment || c.defaultEnvironment;
  if (Buffer.byteLength(environment) > 16 || !ENVIRONMENT.test(environment)) {
    v.add("key.environment", "must be 1..16 of [a-z0-9]");
  }
  if (k.status !== KeyStatus.UNSPECIFIED && !(k.status in KeyStatus)) {
    v.add("key.status", "must be ACTIVE or REVOKED");
  }
  const revoked = k.status === KeyStatus.REVOKED;
  const defaulted = new Set<keyof KeyRecord>();
  const time = (field: string, t: Timestamp | undefined): number | undefined => {
    if (!t) return undefined;
    const ms = timestampMs(t);
    if (!Number.isFinite(ms) || ms < 0 || ms > LATEST_MS || t.nanos < 0 || t.nanos > 999_999_999) {
      v.add(field, `must be between ${B.minYear} and ${B.maxYear}`);
      return undefined;
    }
    return ms;
  };
  const orDefault = (
    field: keyof KeyRecord,
    given: number | undefined,
    fallback: number,
  ): number => {
    if (given !== undefined) return given;
    defaulted.add(field);
    return fallback;
  };
  const createdAt = orDefault("createdAt", time("key.create_time", k.createTime), c.now);
  const updatedAt = orDefault("updatedAt", time("key.update_time", k.updateTime), createdAt);
  const secretCreatedAt = orDefault(
    "secretCreatedAt",
    time("key.secret_create_time", k.secretCreateTime),
    createdAt,
  );
  const expiresAt = time("key.expire_time", k.expireTime);
  const revokeTime = time("key.revoke_time", k.revokeTime);
  let revokedAt: number | undefined;
  if (revoked) revokedAt = orDefault("revokedAt", revokeTime, updatedAt);
  else if (k.revokeTime) v.add("key.revoke_time", "must be unset unless status is REVOKED");
  v.length("key.revoked_reason", k.revokedReason, 0, B.revokeReasonMaxBytes);
  if (!revoked && k.revokedReason !== "") {
    v.add("key.revoked_reason", "must be empty unless status is REVOKED");
  }
  const graceEndsAt = time("key.grace_end_time", k.graceEndTime);
  if (grace !== undefined && !k.graceEndTime) {
    v.add("key.grace_end_time", "is required with a grace secret digest");
  } else if (grace === undefined && k.graceEndTime) {
    v.add("key.grace_end_time", "must be unset without a grace secret digest");
  }
  if (k.version > BigInt(Number.MAX_SAFE_INTEGER)) v.add("key.version", "must be below 2^53");
  // The key's own credit plan travels in Key.credits (own_plan); a tier's plan is the policy's.
  const credits =
    k.credits?.ownPlan && k.credits.plan
      ? creditPlanFromProto(v, "key.credits.plan", k.credits.plan)
      : undefined;
  if (!v.ok || current === undefined) return { id, violations: v.all };

  const record: KeyRecord = {
    id,
    owner: k.owner,
    tier,
    scopes: [...k.scopes],
    metadata: { ...k.metadata },
    status: revoked ? "revoked" : "active",
    environment,
    createdAt,
    updatedAt,
    ipAllow: [...k.ipAllow],
    ipDeny: [...k.ipDeny],
    digest: current,
    secretCreatedAt,
    version: k.version === 0n ? 1 : Number(k.version),
    ...(expiresAt !== undefined && { expiresAt }),
    ...(revokedAt !== undefined && { revokedAt }),
    ...(revoked && k.revokedReason !== "" && { revokeReason: k.revokedReason }),
    ...(grace !== undefined && { graceDigest: grace }),
    ...(credits && { credits }),
    ...(grace !== undefined && graceEndsAt !== undefined && { graceEndsAt }),
    ...(m.foreignPrefix !== "" && { foreignPrefix: m.foreignPrefix }),
    ...(k.limitOverrides.length > 0 && {
      overrides: k.limitOverrides.map((o) => overrideFromProto(o, createdAt)),
    }),
  };
  return { item: { record, defaulted } };
}

/**
 * The stored digest of one secret from its two possible fields (Tollgate's
 * and foreign), recording a violation unless exactly one is given (for the
 * grace secret: at most one).
 */
function secretDigest(
  v: Violations,
  hmac: string,
  foreign: ForeignDigest | undefined,
  prefix: "" | "grace_",
  optional = false,
): string | undefined {
  const hmacField = `${prefix}secret_digest`;
  const foreignField = `${prefix}foreign_digest`;
  if (hmac !== "" && foreign) {
    v.add(hmacField, `must be empty when ${foreignField} is set`);
    return undefined;
  }
  if (hmac !== "") {
    if (!HMAC_DIGEST.test(hmac)) {
      v.add(hmacField, `must be ${B.hmacDigestChars} base64url characters (an HMAC-SHA256 digest)`);
      return undefined;
    }
    return hmac;
  }
  if (!foreign) {
    if (!optional) v.add(hmacField, `is required unless ${foreignField} is set`);
    return undefined;
  }
  if (foreign.algorithm !== DigestAlgorithm.SHA256) {
    v.add(`${foreignField}.algorithm`, "must be SHA256");
    return undefined;
  }
  const encoding =
    foreign.encoding === DigestEncoding.HEX
      ? "hex"
      : foreign.encoding === DigestEncoding.BASE64
        ? "base64"
        : foreign.encoding === DigestEncoding.UNSPECIFIED
          ? "auto"
          : undefined;
  if (!encoding) {
    v.add(`${foreignField}.encoding`, "must be HEX, BASE64 or unspecified");
    return undefined;
  }
  const n = normaliseForeignDigest(foreign.value, encoding);
  if ("error" in n) {
    v.add(`${foreignField}.value`, n.error);
    return undefined;
  }
  return n.digest;
}
