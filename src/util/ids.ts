import { randomFillSync } from "node:crypto";
import { randomBase62 } from "./base62.js";

/** A new API key id: `key_` + 16 base62 characters (≈95 bits). Not secret. */
export function newKeyId(): string {
  return `key_${randomBase62(16)}`;
}

/**
 * Random bytes taken from a pool refilled in bulk: one syscall per 4096 ids,
 * not per id; hex-encoded once per refill, so an id takes a 12-character
 * slice instead of a Buffer.toString call each.
 */
const POOL = Buffer.alloc(6 * 4096);
let poolHex = "";
let poolAt = POOL.length;

/**
 * A new decision id: 12 hex characters of time (ms) then 12 of randomness, so
 * ids sort by time in logs and never collide in practice.
 */
export function newDecisionId(nowMs: number): string {
  if (poolAt === POOL.length) {
    randomFillSync(POOL);
    poolHex = POOL.toString("hex");
    poolAt = 0;
  }
  const rnd = poolHex.slice(2 * poolAt, 2 * poolAt + 12);
  poolAt += 6;
  // Many decisions share a millisecond: its hex is formatted once.
  if (nowMs !== prefixMs) {
    prefixMs = nowMs;
    prefix = nowMs.toString(16).padStart(12, "0");
  }
  return prefix + rnd;
}
let prefixMs = -1;
let prefix = "";
