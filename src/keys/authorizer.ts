/**
 * The Authorize decision: is this secret a live key, allowed from this IP,
 * holding the scopes this endpoint needs? Pure logic over an injected clock,
 * lookup and policy; the store is touched only through KeyLookup, and never for
 * a missing or malformed secret.
 */
import type { Endpoint } from "../policy/policy.js";
import { beforeDeadline } from "../resilience/caller-deadline.js";
import { isStoreUnavailable } from "../store/store-errors.js";
import type { Clock } from "../util/clock.js";
import { foreignDigestOf } from "./foreign-keys.js";
import { IpRules } from "./ip-rules.js";
import { parseSecret } from "./key-format.js";
import type { KeyLookup } from "./key-lookup.js";
import { type KeyRecord, matchDigest, unusableReason } from "./key-record.js";
import { missingScopes } from "./scopes.js";
import type { SecretDigester } from "./secret-digest.js";

/** Reasons an Authorize decision can give (rate-limit reasons come from the limiter). */
export type AuthReason =
  | "OK"
  | "MISSING_KEY"
  | "MALFORMED_KEY"
  | "UNKNOWN_KEY"
  | "EXPIRED_KEY"
  | "REVOKED_KEY"
  | "IP_DENIED"
  | "INSUFFICIENT_SCOPE";

/** Input of one decision: facts already normalised by the door (see decision/facts.ts). */
export interface AuthorizeInput {
  secret: string;
  /** The request's endpoint (its scopes are required; its fail mode applies). */
  endpoint: Endpoint | undefined;
  /** The client address, parsed once; undefined when not given. */
  clientIp: { address: string; family: "ipv4" | "ipv6" } | undefined;
  requiredScopes: readonly string[];
  /** When store calls must give up (resilience/caller-deadline.ts); undefined: their budget. */
  deadline?: number | undefined;
}

/** Lifecycle hints for a recognised key. */
export interface KeyHintsData {
  expiresSoon: boolean;
  expiresAt?: number;
  inGracePeriod: boolean;
  graceEndsAt?: number;
  rotationDue: boolean;
}

/** The outcome. A denial is a value, never an exception. */
export interface AuthDecision {
  allowed: boolean;
  reason: AuthReason;
  httpStatus: 200 | 401 | 403;
  /** The key, when recognised (also on 403 denials). */
  record?: KeyRecord;
  /** The id of the revoked or expired key the secret belongs to (logs only). */
  unusableKeyId?: string;
  endpoint?: Endpoint;
  missingScopes: string[];
  hints?: KeyHintsData;
  message: string;
  /** True if taken without the store (unreachable; the endpoint fails open). */
  decidedLocally?: boolean;
}

/** Options of the Authorizer. */
export interface AuthorizerOptions {
  lookup: KeyLookup;
  digest: SecretDigester;
  clock: Clock;
  /** Hint `expires_soon` within this many ms of expiry. */
  expiryWarningMs: number;
  /** Hint `rotation_due` once a secret is this old, ms; 0 disables. */
  rotationAgeMs: number;
  /** The fail mode of an endpoint (undefined: a request matching none). */
  failMode: (endpoint: Endpoint | undefined) => "open" | "closed";
  /** Fail open: the oldest cached key lookup that may still authorize, ms. */
  staleKeyMaxMs: number;
  /**
   * Keys imported by foreign SHA-256 digests. Without it (or with no prefix
   * registered) every secret outside Tollgate's format is MALFORMED_KEY.
   */
  foreign?: {
    /** True if a secret outside Tollgate's format is to be looked up by SHA-256 (memory only). */
    recognises(secret: string): boolean;
    /** After an allowed decision by a foreign digest; must neither throw nor wait. */
    used(record: KeyRecord, foreignDigest: string, secret: string): void;
  };
}

const MESSAGES: Record<AuthReason, string> = {
  OK: "allowed",
  MISSING_KEY: "an API key is required",
  MALFORMED_KEY: "the API key is malformed",
  UNKNOWN_KEY: "the API key is not valid",
  EXPIRED_KEY: "the API key has expired",
  REVOKED_KEY: "the API key has been revoked",
  IP_DENIED: "the API key may not be used from this address",
  INSUFFICIENT_SCOPE: "the API key lacks a required scope",
};

/** Takes Authorize decisions. */
export class Authorizer {
  /** Compiled IP rules per key id and version, bounded by the key cache's churn. */
  private readonly ipRules = new WeakMap<KeyRecord, IpRules>();

  constructor(private readonly o: AuthorizerOptions) {}

  /** Decides. Throws only if the store fails. */
  async authorize(input: AuthorizeInput): Promise<AuthDecision> {
    const endpoint = input.endpoint;
    if (input.secret === "") return deny("MISSING_KEY", 401, endpoint);
    let foreignDigest: string | undefined;
    if (!parseSecret(input.secret).ok) {
      if (!this.o.foreign?.recognises(input.secret)) return deny("MALFORMED_KEY", 401, endpoint);
      foreignDigest = foreignDigestOf(input.secret);
    }
    let digest = this.o.digest(input.secret);
    // A cached key is decided without awaiting anything (most decisions).
    const hit = this.o.lookup.cached(digest);
    let { record, local } = hit
      ? { record: hit.record, local: false }
      : await this.find(digest, endpoint, input.deadline);
    // A foreign secret is found by its HMAC digest once it moved there (its
    // first successful use), by its SHA-256 digest before.
    let foreign = false;
    if (foreignDigest !== undefined && !record) {
      const before = await this.find(foreignDigest, endpoint, input.deadline);
      if (before.record) {
        ({ record, local } = before);
        digest = foreignDigest;
        foreign = true;
      }
    }
    const decision = this.decide(input, endpoint, digest, record);
    if (foreign && decision.allowed && decision.record && !local) {
      this.o.foreign?.used(decision.record, digest, input.secret);
    }
    return local ? { ...decision, decidedLocally: true } : decision;
  }

  /**
   * The key with id `id` (a caller that authenticated already), from the
   * store, or — store unreachable and the endpoint failing open — from a
   * recent cached lookup: the same fail-open rule as for a secret. Throws the
   * store failure otherwise.
   */
  async findById(
    id: string,
    endpoint: Endpoint | undefined,
    deadline?: number,
  ): Promise<{ record: KeyRecord | null; local: boolean }> {
    try {
      // A cached answer needs no store call, so no deadline timer.
      const hit = this.o.lookup.cachedById(id);
      if (hit) return { record: hit.record, local: false };
      const record = await beforeDeadline(this.o.lookup.findById(id), deadline, "keys.get");
      return { record, local: false };
    } catch (err) {
      if (!isStoreUnavailable(err) || this.o.failMode(endpoint) !== "open") throw err;
      const stale = this.o.lookup.findByIdStale(id, this.o.staleKeyMaxMs);
      if (!stale) throw err;
      return { record: stale, local: true };
    }
  }

  /**
   * The key a presented secret names (its current secret, or the previous one
   * in its grace period), revoked or expired alike, or undefined: a usage
   * report authenticated by the reported request's own key. Looked up as an
   * Authorize would (cache first); a secret outside Tollgate's format names none.
   */
  async recordForSecret(
    secret: string,
    endpoint: Endpoint | undefined,
    deadline: number | undefined,
  ): Promise<KeyRecord | undefined> {
    if (secret === "" || !parseSecret(secret).ok) return undefined;
    const digest = this.o.digest(secret);
    const { record } = await this.find(digest, endpoint, deadline);
    if (!record || matchDigest(record, digest, this.o.clock.now()) === "none") return undefined;
    return record;
  }

  /** The key of `digest`, from the store, or (fail open) from a recent cached lookup. */
  private async find(
    digest: string,
    endpoint: Endpoint | undefined,
    deadline: number | undefined,
  ): Promise<{ record: KeyRecord | null; local: boolean }> {
    try {
      const hit = this.o.lookup.cached(digest);
      if (hit) return { record: hit.record, local: false };
      const record = await beforeDeadline(this.o.lookup.find(digest), deadline, "keys.find");
      return { record, local: false };
    } catch (err) {
      if (!isStoreUnavailable(err) || this.o.failMode(endpoint) !== "open") throw err;
      // Fail open: only a key seen recently may pass; revoked or expired state
      // in that copy still denies, and an unknown key is never allowed.
      return { record: this.o.lookup.findStale(digest, this.o.staleKeyMaxMs) ?? null, local: true };
    }
  }

  private decide(
    input: AuthorizeInput,
    endpoint: Endpoint | undefined,
    digest: string,
    record: KeyRecord | null,
  ): AuthDecision {
    const now = this.o.clock.now();
    const which = record ? matchDigest(record, digest, now) : "none";
    if (!record || which === "none") return deny("UNKNOWN_KEY", 401, endpoint);
    const unusable = unusableReason(record, now);
    if (unusable) return { ...deny(unusable, 401, endpoint), unusableKeyId: record.id };
    const hints = this.hints(record, which === "grace", now);
    if (!this.rules(record).permits(input.clientIp)) {
      return { ...deny("IP_DENIED", 403, endpoint), record, hints };
    }
    const required =
      endpoint && endpoint.scopes.length > 0
        ? input.requiredScopes.length > 0
          ? [...endpoint.scopes, ...input.requiredScopes]
          : endpoint.scopes
        : input.requiredScopes;
    const missing = missingScopes(record.scopes, required);
    if (missing.length > 0) {
      return {
        ...deny("INSUFFICIENT_SCOPE", 403, endpoint),
        record,
        hints,
        missingScopes: missing,
      };
    }
    const ok: AuthDecision = {
      allowed: true,
      reason: "OK",
      httpStatus: 200,
      record,
      missingScopes: [],
      hints,
      message: MESSAGES.OK,
    };
    if (endpoint) ok.endpoint = endpoint;
    return ok;
  }

  private rules(record: KeyRecord): IpRules {
    let r = this.ipRules.get(record);
    if (!r) {
      r = new IpRules(record.ipAllow, record.ipDeny);
      this.ipRules.set(record, r);
    }
    return r;
  }

  private hints(record: KeyRecord, inGrace: boolean, now: number): KeyHintsData {
    const expiresSoon =
      record.expiresAt !== undefined && record.expiresAt - now <= this.o.expiryWarningMs;
    const old = this.o.rotationAgeMs > 0 && now - record.secretCreatedAt >= this.o.rotationAgeMs;
    // Built without spreads: this runs on every allowed decision.
    const h: KeyHintsData = { expiresSoon, inGracePeriod: inGrace, rotationDue: inGrace || old };
    if (record.expiresAt !== undefined) h.expiresAt = record.expiresAt;
    if (inGrace && record.graceEndsAt !== undefined) h.graceEndsAt = record.graceEndsAt;
    return h;
  }
}

function deny(
  reason: AuthReason,
  httpStatus: 401 | 403,
  endpoint: Endpoint | undefined,
): AuthDecision {
  return {
    allowed: false,
    reason,
    httpStatus,
    missingScopes: [],
    message: MESSAGES[reason],
    ...(endpoint && { endpoint }),
  };
}
