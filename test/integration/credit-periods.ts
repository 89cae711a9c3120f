/**
 * Credit refill periods on a real Redis, for the conformance cases: Redis TIME
 * cannot be moved, so a period passing is made by rewriting the balance's
 * stored period id ("<period id>:<balance>") that many periods back. The
 * refill that follows is the script's own.
 */
import type { Cluster, Redis } from "ioredis";
import type { LimitItem } from "../../src/ratelimit/rate-limit-store.js";
import type { KeyNames } from "../../src/store/redis-keys.js";

/** Rewinds the stored period of a credits item's balance by `periods` (no balance: nothing to do). */
export async function rewindCreditPeriods(
  client: Redis | Cluster,
  names: KeyNames,
  item: LimitItem,
  periods: number,
): Promise<void> {
  const key = names.bucket(item.tag, item.limit.bucketId);
  const v = await client.get(key);
  if (v === null) return;
  const [id, balance] = v.split(":");
  await client.set(key, `${Number(id) - periods}:${balance}`, "KEEPTTL");
}
