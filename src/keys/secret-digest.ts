import { createHmac } from "node:crypto";

/** Computes the stored form of a secret: HMAC-SHA256(pepper, secret), base64url. */
export type SecretDigester = (secret: string) => string;

/**
 * Creates the digester. The pepper comes from a mounted file or the environment,
 * never from Redis, so a copy of the store alone cannot verify guessed keys.
 */
export function createSecretDigester(pepper: Buffer): SecretDigester {
  if (pepper.length < 16) throw new Error("pepper must be at least 16 bytes");
  return (secret) => createHmac("sha256", pepper).update(secret).digest("base64url");
}
