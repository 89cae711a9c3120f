/**
 * Shared assertion: every rate-limit key Tollgate wrote (namespaces `rl:`,
 * `bl:`, `bo:`, `bd:`, `blocks:`) carries an expiry. Key records (`key:`,
 * `kd:`, `keys:`) are persistent by design and skipped.
 */
import type { Redis } from "ioredis";
import { expect } from "vitest";

const EXPIRING = ["rl", "bl", "bo", "bd", "blocks"];
const PERSISTENT = ["key", "kd", "keys"];

/**
 * SCANs every node under `prefix` and asserts each rate-limit key has PTTL > 0
 * and no key falls outside the known namespaces. Returns the namespaces seen.
 */
export async function expectEveryRateLimitKeyExpires(
  nodes: Redis[],
  prefix: string,
): Promise<string[]> {
  const seen = new Set<string>();
  const offenders: string[] = [];
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const k of keys) {
        const ns = /^(?:[^{]*:)?(rl|bl|bo|bd|blocks|key|kd|keys):\{/.exec(k)?.[1];
        if (ns === undefined) {
          offenders.push(`${k} (unknown namespace)`);
          continue;
        }
        seen.add(ns);
        if (PERSISTENT.includes(ns)) continue;
        const ttl = await node.pttl(k);
        // -2: expired between SCAN and PTTL, which is fine.
        if (ttl === -1 || ttl === 0) offenders.push(`${k} (PTTL ${ttl})`);
      }
    } while (cursor !== "0");
  }
  expect(offenders).toEqual([]);
  return [...seen].filter((s) => EXPIRING.includes(s));
}
