/**
 * Foreign keys: keys imported from another system, known only by the plain
 * SHA-256 digest that system stored. Their secrets are not in Tollgate's
 * `tg_` format, so Authorize would call them malformed; instead, a secret
 * that starts with a prefix an import registered (and has a sane length and
 * alphabet) is looked up by `sha256:<hex>`, a digest form that cannot collide
 * with Tollgate's base64url HMAC digests. Every other malformed secret is
 * still refused without a store call: the registered prefixes are held in
 * memory (ForeignKeys), loaded from the store at start and kept current by
 * the invalidation bus.
 */
import { createHash } from "node:crypto";
import { BASE62 } from "../util/base62.js";
import { INPUT_BOUNDS, INPUT_PATTERNS } from "../util/input-bounds.js";
import type { ForeignPrefixStore } from "./foreign-prefix-store.js";
import type { SecretDigester } from "./secret-digest.js";

/** Marks a stored digest as a foreign SHA-256 digest (hex follows). */
export const FOREIGN_DIGEST_PREFIX = "sha256:";
/** Shortest foreign secret looked up, bytes. */
export const MIN_FOREIGN_SECRET_LENGTH = INPUT_BOUNDS.foreignSecretMinBytes;
/** Longest foreign secret looked up, bytes (Authorize's bound on any presented key). */
export const MAX_FOREIGN_SECRET_LENGTH = INPUT_BOUNDS.foreignSecretMaxBytes;
/** Most foreign prefixes a store registers (each costs a startsWith per malformed secret). */
export const MAX_FOREIGN_PREFIXES = INPUT_BOUNDS.foreignPrefixesMax;

const PREFIX_PATTERN = INPUT_PATTERNS.foreignPrefix;
/** Printable ASCII without space: what a secret a caller can paste into a header consists of. */
const SECRET_ALPHABET = /^[\x21-\x7e]+$/;
const HEX_64 = new RegExp(`^[0-9a-fA-F]{${INPUT_BOUNDS.sha256HexChars}}$`);
const BASE64_32_BYTES = /^[A-Za-z0-9+/_-]{43}=?$/;

/** The stored digest of a foreign secret: `sha256:` + lower-case hex. */
export function foreignDigestOf(secret: string): string {
  return FOREIGN_DIGEST_PREFIX + createHash("sha256").update(secret).digest("hex");
}

/** True if a stored digest is a foreign one. */
export function isForeignDigest(digest: string | undefined): boolean {
  return digest?.startsWith(FOREIGN_DIGEST_PREFIX) === true;
}

/** The hex part of a foreign stored digest. */
export function foreignDigestHex(digest: string): string {
  return digest.slice(FOREIGN_DIGEST_PREFIX.length);
}

/**
 * Why a foreign prefix is refused, or undefined if it is fine. A prefix that
 * could begin a `tg_` secret is refused: malformed Tollgate secrets must keep
 * being refused without a store call.
 */
export function foreignPrefixProblem(prefix: string): string | undefined {
  if (!PREFIX_PATTERN.test(prefix)) return "must be 2..32 bytes of [A-Za-z0-9_-]";
  if ("tg_".startsWith(prefix) || prefix.startsWith("tg_")) {
    return "must not overlap Tollgate's own tg_ prefix";
  }
  return undefined;
}

/**
 * A SHA-256 digest written by another system, as stored: `sha256:<hex>`.
 * `encoding` "auto" tells hex (64 characters) from base64 (43 or 44). Returns
 * an error text naming the bound (never the value) when it is not a SHA-256 digest.
 */
export function normaliseForeignDigest(
  value: string,
  encoding: "hex" | "base64" | "auto",
): { digest: string } | { error: string } {
  const asHex = encoding === "hex" || (encoding === "auto" && value.length === 64);
  if (asHex) {
    if (!HEX_64.test(value)) return { error: "must be 64 hex characters (a SHA-256 digest)" };
    return { digest: FOREIGN_DIGEST_PREFIX + value.toLowerCase() };
  }
  if (!BASE64_32_BYTES.test(value)) {
    return { error: "must be a SHA-256 digest: 64 hex or 43/44 base64 characters" };
  }
  const bytes = Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  if (bytes.length !== 32) return { error: "must decode to 32 bytes (a SHA-256 digest)" };
  return { digest: FOREIGN_DIGEST_PREFIX + bytes.toString("hex") };
}

/**
 * The id of a foreign key imported without one: `key_` + 16 base62
 * characters of HMAC(pepper, label + digest). The same record imported again
 * gets the same id (so the import is idempotent), and, the pepper being
 * needed, the id says nothing about the secret to whoever sees it.
 */
export function foreignKeyId(foreignDigest: string, digest: SecretDigester): string {
  const mac = Buffer.from(digest(`tollgate foreign key id v1:${foreignDigest}`), "base64url");
  let n = BigInt(`0x${mac.subarray(0, 16).toString("hex")}`);
  let out = "";
  for (let i = 0; i < 16; i++) {
    out += BASE62[Number(n % 62n)];
    n /= 62n;
  }
  return `key_${out}`;
}

/**
 * The registered foreign prefixes of this replica, in memory. `recognises` is
 * what Authorize asks for every secret not in Tollgate's format; it never
 * touches the store.
 */
export class ForeignKeys {
  private prefixes: readonly string[] = [];

  constructor(private readonly store?: ForeignPrefixStore) {}

  /** True if `secret` should be looked up by its SHA-256 digest. */
  recognises(secret: string): boolean {
    if (this.prefixes.length === 0) return false;
    if (secret.length < MIN_FOREIGN_SECRET_LENGTH || secret.length > MAX_FOREIGN_SECRET_LENGTH) {
      return false;
    }
    if (!this.prefixes.some((p) => secret.startsWith(p))) return false;
    return SECRET_ALPHABET.test(secret);
  }

  /** The prefixes known here, sorted. */
  list(): readonly string[] {
    return this.prefixes;
  }

  /** Adds prefixes (from an import here or a bus message); invalid ones are ignored. */
  add(prefixes: readonly string[]): void {
    const next = new Set(this.prefixes);
    for (const p of prefixes) {
      if (foreignPrefixProblem(p) === undefined && next.size < MAX_FOREIGN_PREFIXES) next.add(p);
    }
    if (next.size !== this.prefixes.length) this.prefixes = [...next].sort();
  }

  /**
   * Adds the store's prefixes (at start, after missed bus messages,
   * periodically). A union, never a replacement: a read that began before an
   * import registered a prefix must not drop it again, and a prefix that is
   * gone from the store (a flushed Redis) only costs lookups that find
   * nothing. Throws if the store fails.
   */
  async refresh(): Promise<void> {
    if (!this.store) return;
    this.add(await this.store.list());
  }
}
