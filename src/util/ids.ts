import { randomBytes } from "node:crypto";
import { randomBase62 } from "./base62.js";

/** A new API key id: `key_` + 16 base62 characters (≈95 bits). Not secret. */
export function newKeyId(): string {
  return `key_${randomBase62(16)}`;
}

/**
 * A new decision id: 12 hex characters of time (ms) then 12 of randomness, so
 * ids sort by time in logs and never collide in practice.
 */
export function newDecisionId(nowMs: number): string {
  return nowMs.toString(16).padStart(12, "0") + randomBytes(6).toString("hex");
}
