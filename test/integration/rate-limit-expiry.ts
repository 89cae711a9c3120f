/**
 * Shared assertion: every key Tollgate wrote carries an expiry — rate-limit
 * buckets, blocks and usage-report markers (`rl:`, `bl:`, `bo:`, `bd:`, `blocks:`, `ur:`) and every other
 * namespace (events, usage, detection…) — except key records (`key:`, `kd:`,
 * `keys:`) and the store marker (`marker:`, the pepper fingerprint and the
 * store epoch), which are persistent by design. Every key must be hash-tagged.
 */
import type { Redis } from "ioredis";
import { expect } from "vitest";

const EXPIRING = ["rl", "bl", "bo", "bd", "blocks", "ur"];
const PERSISTENT = ["key", "kd", "keys", "marker"];

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
        // The namespace is the last segment before the hash tag (after any per-test prefix).
        const ns = /^([^{]*?):\{/.exec(k.slice(prefix.length))?.[1]?.split(":").pop();
        if (ns === undefined) {
          offenders.push(`${k} (no hash tag)`);
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
