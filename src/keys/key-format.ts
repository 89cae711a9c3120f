/**
 * API key secrets: `tg_<env>_<24 random base62><6 base62 CRC32>`.
 *
 * 24 base62 characters carry ≈142 bits of randomness. The CRC32 checksum (over
 * everything before it) lets Tollgate reject a mistyped or invented key without
 * a store lookup, and lets secret scanners recognise real keys with few false
 * positives. The checksum is not a security control: the digest lookup is.
 */
import { crc32 } from "node:zlib";
import { encodeBase62Fixed, randomBase62 } from "../util/base62.js";
import { INPUT_PATTERNS } from "../util/input-bounds.js";

const RANDOM_LENGTH = 24;
const CHECKSUM_LENGTH = 6;
/** Longest accepted secret: `tg_` + 16-char env + `_` + 30. */
export const MAX_SECRET_LENGTH = 3 + 16 + 1 + RANDOM_LENGTH + CHECKSUM_LENGTH;
const SECRET_PATTERN = /^tg_([a-z0-9]{1,16})_([0-9A-Za-z]{30})$/;
/** Pattern an environment tag must match. */
export const ENVIRONMENT_PATTERN = INPUT_PATTERNS.environment;

function checksum(body: string): string {
  return encodeBase62Fixed(crc32(body), CHECKSUM_LENGTH);
}

/** Mints a new secret for environment `env` (must match ENVIRONMENT_PATTERN). */
export function generateSecret(env: string): string {
  if (!ENVIRONMENT_PATTERN.test(env)) throw new Error("invalid key environment tag");
  const body = `tg_${env}_${randomBase62(RANDOM_LENGTH)}`;
  return body + checksum(body);
}

/** The result of checking a presented secret's shape. */
export type ParsedSecret = { ok: true; environment: string } | { ok: false };

/**
 * Checks prefix, length, alphabet and checksum. Pure and constant-bounded:
 * anything longer than MAX_SECRET_LENGTH is rejected before any regex work.
 */
export function parseSecret(secret: string): ParsedSecret {
  if (secret.length > MAX_SECRET_LENGTH) return { ok: false };
  const m = SECRET_PATTERN.exec(secret);
  if (!m) return { ok: false };
  const body = secret.slice(0, secret.length - CHECKSUM_LENGTH);
  if (checksum(body) !== secret.slice(-CHECKSUM_LENGTH)) return { ok: false };
  return { ok: true, environment: m[1] as string };
}
