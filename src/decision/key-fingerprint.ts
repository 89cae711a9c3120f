import { createHash } from "node:crypto";

/**
 * A presented unknown key's fingerprint: 16 hex of its SHA-256, enough to count
 * distinct keys (credential stuffing) without storing anything usable.
 */
export function keyFingerprint(secret: string): string {
  return createHash("sha256").update(secret).digest("hex").slice(0, 16);
}
