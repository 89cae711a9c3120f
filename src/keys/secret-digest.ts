import { createHash, hash } from "node:crypto";

/** Computes the stored form of a secret: HMAC-SHA256(pepper, secret), base64url. */
export type SecretDigester = (secret: string) => string;

/** SHA-256's block size, bytes (RFC 2104's B). */
const BLOCK = 64;
/** SHA-256's output size, bytes. */
const OUT = 32;
/** Secrets up to this many UTF-8 bytes are hashed from the scratch buffer (longer: an allocation). */
const SCRATCH_BYTES = 4096;

/**
 * Creates the digester. The pepper comes from a mounted file or the environment,
 * never from Redis, so a copy of the store alone cannot verify guessed keys.
 *
 * Why not `createHmac`: the digest runs on every Authorize, and building an
 * Hmac object (key preparation, a native handle, a stream) cost ~3 µs of a
 * cached decision's ~100 µs in the profile. HMAC is two hashes over padded
 * keys (RFC 2104); the pads are computed once here and each digest is two
 * one-shot `crypto.hash` calls over a reused buffer. The result is the same
 * bytes as `createHmac("sha256", pepper)` (test/unit/secret-digest.test.ts).
 * The digest is synchronous, so one scratch buffer per digester is safe.
 */
export function createSecretDigester(pepper: Buffer): SecretDigester {
  if (pepper.length < 16) throw new Error("pepper must be at least 16 bytes");
  // A key longer than the block is hashed first (RFC 2104, step 1).
  const key = pepper.length > BLOCK ? createHash("sha256").update(pepper).digest() : pepper;
  const inner = Buffer.alloc(BLOCK + SCRATCH_BYTES, 0x36);
  const outer = Buffer.alloc(BLOCK + OUT, 0x5c);
  for (let i = 0; i < key.length; i++) {
    inner[i] = (key[i] as number) ^ 0x36;
    outer[i] = (key[i] as number) ^ 0x5c;
  }
  const ipad = Buffer.from(inner.subarray(0, BLOCK));
  return (secret) => {
    let message: Buffer;
    if (secret.length <= SCRATCH_BYTES / 3) {
      // ≤ 3 UTF-8 bytes per UTF-16 unit: it fits, and write() never truncates.
      const n = inner.write(secret, BLOCK, "utf8");
      message = inner.subarray(0, BLOCK + n);
    } else {
      message = Buffer.concat([ipad, Buffer.from(secret, "utf8")]);
    }
    hash("sha256", message, "buffer").copy(outer, BLOCK);
    // The scratch must not keep the last secret until the next call overwrites it.
    if (message.buffer === inner.buffer) inner.fill(0x36, BLOCK, message.length);
    return hash("sha256", outer, "base64url");
  };
}
