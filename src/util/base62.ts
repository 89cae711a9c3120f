import { randomBytes } from "node:crypto";

/** The base62 alphabet, digits first so encoded numbers sort like numbers. */
export const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * Returns `length` uniformly random base62 characters. Rejection sampling keeps
 * the distribution uniform: bytes ≥ 248 (= 4 × 62) are discarded.
 */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Encodes a non-negative integer below 2^53 as exactly `width` base62 characters. */
export function encodeBase62Fixed(value: number, width: number): string {
  let out = "";
  let v = value;
  for (let i = 0; i < width; i++) {
    out = BASE62[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}
