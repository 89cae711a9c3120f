/**
 * Key lifecycle: create, update, revoke and rotate. Every change is a
 * compare-and-set on the record's version (retried on a lost race) and is
 * followed by an invalidation so every replica's cache drops the old lookup.
 */

import type { CreditPlan } from "../policy/policy.js";
import type { LimitOverride } from "../ratelimit/limit-override.js";
import type { Clock } from "../util/clock.js";
import { newKeyId } from "../util/ids.js";
import { foreignDigestOf } from "./foreign-keys.js";
import type { InvalidationBus } from "./invalidation-bus.js";
import { generateSecret, parseSecret } from "./key-format.js";
import type { KeyRecord } from "./key-record.js";
import type { KeyPage, KeyStore } from "./key-store.js";
import type { SecretDigester } from "./secret-digest.js";

/** Fields a caller sets when creating a key (validated by the service layer). */
export interface NewKey {
  owner: string;
  tier: string;
  scopes: string[];
  metadata: Record<string, string>;
  expiresAt?: number;
  ipAllow: string[];
  ipDeny: string[];
  environment: string;
  /** The key's own credit plan (wins over its tier's). */
  credits?: CreditPlan;
}

/** Fields UpdateKey may change; absent fields stay as they are. */
export type KeyPatch = Partial<
  Pick<KeyRecord, "owner" | "tier" | "scopes" | "metadata" | "ipAllow" | "ipDeny">
> & {
  /** `null` removes the expiry. */
  expiresAt?: number | null;
  /** `null` removes the key's own credit plan (its tier's applies). */
  credits?: CreditPlan | null;
};

/** Failures that are the caller's, not the infrastructure's. */
export type KeyChangeError = "NOT_FOUND" | "REVOKED" | "CONFLICT" | "INVALID_SECRET";

/** Outcome of a rotation. */
export interface Rotation {
  secret: string;
  record: KeyRecord;
  graceEndsAt: number;
}

const CAS_ATTEMPTS = 5;

/** Options of KeyManager. */
export interface KeyManagerOptions {
  store: KeyStore;
  bus: InvalidationBus;
  digest: SecretDigester;
  clock: Clock;
  /** Applies an invalidation to this replica at once (pub/sub may lag). */
  invalidateLocal: (digests: string[], ids: string[]) => void;
  /** Foreign keys (see foreign-keys.ts): their secrets may self-rotate too. */
  foreign?: { recognises(secret: string): boolean };
}

/** Manages keys. Methods throw only on infrastructure failure. */
export class KeyManager {
  constructor(private readonly o: KeyManagerOptions) {}

  /** Creates a key; returns the record and the secret (the only time it exists in plaintext). */
  async create(input: NewKey): Promise<{ secret: string; record: KeyRecord }> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const secret = generateSecret(input.environment);
      const now = this.o.clock.now();
      const record: KeyRecord = {
        id: newKeyId(),
        owner: input.owner,
        tier: input.tier,
        scopes: input.scopes,
        metadata: input.metadata,
        status: "active",
        environment: input.environment,
        createdAt: now,
        updatedAt: now,
        ipAllow: input.ipAllow,
        ipDeny: input.ipDeny,
        digest: this.o.digest(secret),
        secretCreatedAt: now,
        version: 1,
        ...(input.expiresAt !== undefined && { expiresAt: input.expiresAt }),
        ...(input.credits && { credits: input.credits }),
      };
      if (await this.o.store.create(record)) {
        // A negative cache entry for this digest is practically impossible
        // (the secret is new), but correctness should not rest on luck.
        await this.invalidate([record.digest], record.id);
        return { secret, record };
      }
    }
    throw new Error("could not allocate a unique key id");
  }

  /** The key with this id, if any. */
  get(id: string): Promise<KeyRecord | undefined> {
    return this.o.store.get(id);
  }

  /** Lists keys ordered by id. */
  list(options: {
    after?: string;
    limit: number;
    owner?: string;
    includeRevoked: boolean;
  }): Promise<KeyPage> {
    return this.o.store.list(options);
  }

  /** Applies a patch. Revoked keys cannot be changed. */
  update(id: string, patch: KeyPatch): Promise<KeyRecord | KeyChangeError> {
    return this.change(id, (r) => {
      if (r.status === "revoked") return "REVOKED";
      const { expiresAt, credits, ...rest } = patch;
      const next: KeyRecord = { ...r, ...rest };
      if (expiresAt === null) delete next.expiresAt;
      else if (expiresAt !== undefined) next.expiresAt = expiresAt;
      if (credits === null) delete next.credits;
      else if (credits !== undefined) next.credits = credits;
      return next;
    });
  }

  /**
   * Changes a key's limit overrides by `apply` (given the current list, empty
   * for none; returns the new one), in one compare-and-set like every change.
   * Revoked keys cannot be changed. An empty result removes the field.
   */
  changeOverrides(
    id: string,
    apply: (current: readonly LimitOverride[]) => LimitOverride[],
  ): Promise<KeyRecord | KeyChangeError> {
    return this.change(id, (r) => {
      if (r.status === "revoked") return "REVOKED";
      const next: KeyRecord = { ...r };
      const overrides = apply(r.overrides ?? []);
      if (overrides.length > 0) next.overrides = overrides;
      else delete next.overrides;
      return next;
    });
  }

  /**
   * Revokes a key for good, recording `reason` (may be empty). Revoking a
   * revoked key is idempotent: it returns the key as it is (first reason and
   * time kept) with `changed: false`, so callers record no second event.
   */
  async revoke(
    id: string,
    reason: string,
  ): Promise<{ record: KeyRecord; changed: boolean } | KeyChangeError> {
    let already = false;
    const r = await this.change(id, (r) => {
      if (r.status === "revoked") {
        already = true;
        return r;
      }
      const now = this.o.clock.now();
      const next: KeyRecord = { ...r, status: "revoked", revokedAt: now };
      if (reason) next.revokeReason = reason;
      return next;
    });
    return typeof r === "string" ? r : { record: r, changed: !already };
  }

  /**
   * Rotates by id. The new secret is indexed before the record changes, and the
   * old one stays indexed until its grace period ends, so some secret is valid
   * at every moment. A second rotation during a grace period ends the older
   * grace secret at once: at most two secrets (current and previous) are ever valid.
   */
  rotateById(id: string, graceMs: number): Promise<Rotation | KeyChangeError> {
    return this.rotate(id, graceMs);
  }

  /**
   * Rotates; with `currentDigest`, only while that digest is still the key's
   * current one at the moment of the compare-and-set (else INVALID_SECRET), so a
   * secret superseded by a concurrent rotation cannot rotate the key again.
   */
  private async rotate(
    id: string,
    graceMs: number,
    currentDigest?: string,
  ): Promise<Rotation | KeyChangeError> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const r = await this.o.store.get(id);
      if (currentDigest !== undefined && !this.isCurrent(r, currentDigest)) {
        return "INVALID_SECRET";
      }
      if (!r) return "NOT_FOUND";
      if (r.status === "revoked") return "REVOKED";
      const secret = generateSecret(r.environment);
      const digest = this.o.digest(secret);
      await this.o.store.indexDigest(digest, r.id);
      const now = this.o.clock.now();
      const graceEndsAt = now + graceMs;
      const next: KeyRecord = {
        ...r,
        digest,
        secretCreatedAt: now,
        updatedAt: now,
        version: r.version + 1,
      };
      delete next.graceDigest;
      delete next.graceEndsAt;
      if (graceMs > 0) {
        next.graceDigest = r.digest;
        next.graceEndsAt = graceEndsAt;
      }
      if (!(await this.o.store.replace(next, r.version))) {
        await this.o.store.unindexDigest(digest);
        continue;
      }
      if (graceMs > 0) await this.o.store.indexDigest(r.digest, r.id, graceEndsAt);
      else await this.o.store.unindexDigest(r.digest);
      const stale = [r.digest, digest];
      if (r.graceDigest !== undefined && r.graceDigest !== r.digest) {
        await this.o.store.unindexDigest(r.graceDigest);
        stale.push(r.graceDigest);
      }
      await this.invalidate(stale, r.id);
      return { secret, record: next, graceEndsAt };
    }
    return "CONFLICT";
  }

  /**
   * Self-rotation: the caller proves possession of the *current* secret. A
   * previous (grace) secret cannot rotate, so a leaked old secret cannot take
   * the key over. A foreign key's secret (see foreign-keys.ts) may rotate it
   * too; the new secret is a `tg_` one.
   */
  async rotateBySecret(secret: string, graceMs: number): Promise<Rotation | KeyChangeError> {
    let digest: string;
    let id: string | undefined;
    if (parseSecret(secret).ok) {
      digest = this.o.digest(secret);
      id = await this.o.store.findIdByDigest(digest);
    } else if (this.o.foreign?.recognises(secret)) {
      // A foreign secret: by its HMAC digest once moved there, else by SHA-256.
      digest = this.o.digest(secret);
      id = await this.o.store.findIdByDigest(digest);
      if (id === undefined) {
        digest = foreignDigestOf(secret);
        id = await this.o.store.findIdByDigest(digest);
      }
    } else return "INVALID_SECRET";
    if (id === undefined) return "INVALID_SECRET";
    return this.rotate(id, graceMs, digest);
  }

  /** True if `digest` is the current secret of `r`, an active, unexpired key. */
  private isCurrent(r: KeyRecord | undefined, digest: string): r is KeyRecord {
    return (
      r !== undefined &&
      r.digest === digest &&
      r.status !== "revoked" &&
      (r.expiresAt === undefined || r.expiresAt > this.o.clock.now())
    );
  }

  private async change(
    id: string,
    apply: (r: KeyRecord) => KeyRecord | KeyChangeError,
  ): Promise<KeyRecord | KeyChangeError> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const r = await this.o.store.get(id);
      if (!r) return "NOT_FOUND";
      const next = apply(r);
      if (typeof next === "string" || next === r) return next;
      next.version = r.version + 1;
      next.updatedAt = this.o.clock.now();
      if (await this.o.store.replace(next, r.version)) {
        await this.invalidate([r.digest, ...(r.graceDigest ? [r.graceDigest] : [])], r.id);
        return next;
      }
    }
    return "CONFLICT";
  }

  private async invalidate(digests: string[], id: string): Promise<void> {
    this.o.invalidateLocal(digests, [id]);
    await this.o.bus.publish({ digests, ids: [id] });
  }
}
