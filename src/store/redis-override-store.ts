/**
 * Owner overrides on Redis: one hash per owner, `<prefix>ovr:{o:<owner>}`
 * (field: limit name, value: the override as JSON), plus two index sets, of
 * owners and of keys that hold overrides, for ListLimitOverrides without a
 * target. The hash and the sets live in different Cluster slots, so they are
 * written by separate commands: the hash is the truth decisions read, the
 * sets only serve listings (a race between two changes can at worst leave an
 * owner listed with nothing, or a key unlisted until its next change).
 * No expiry, like the key records: overrides are configuration, and expired
 * ones are removed by the service when listed or changed.
 */
import type { LimitOverride } from "../ratelimit/limit-override.js";
import type { OverrideStore } from "../ratelimit/override-store.js";
import type { RedisClient } from "./redis-client.js";
import type { KeyNames } from "./redis-keys.js";

/** Owner overrides and the override indexes in Redis. */
export class RedisOverrideStore implements OverrideStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: KeyNames,
  ) {}

  async ownerOverrides(owner: string): Promise<LimitOverride[]> {
    const all = await this.redis.hgetall(this.names.ownerOverrides(owner));
    return Object.values(all).flatMap((json) => {
      try {
        return [JSON.parse(json) as LimitOverride];
      } catch {
        return [];
      }
    });
  }

  async setOwnerOverride(owner: string, override: LimitOverride): Promise<void> {
    await this.redis.hset(
      this.names.ownerOverrides(owner),
      override.limit,
      JSON.stringify(override),
    );
    await this.redis.sadd(this.names.overrideOwners(), owner);
  }

  async removeOwnerOverrides(owner: string, limits: readonly string[]): Promise<number> {
    if (limits.length === 0) return 0;
    const key = this.names.ownerOverrides(owner);
    const n = await this.redis.hdel(key, ...limits);
    if ((await this.redis.hlen(key)) === 0)
      await this.redis.srem(this.names.overrideOwners(), owner);
    return n;
  }

  owners(max: number): Promise<string[]> {
    return this.scan(this.names.overrideOwners(), max);
  }

  async markKey(keyId: string, hasOverrides: boolean): Promise<void> {
    if (hasOverrides) await this.redis.sadd(this.names.overrideKeys(), keyId);
    else await this.redis.srem(this.names.overrideKeys(), keyId);
  }

  keys(max: number): Promise<string[]> {
    return this.scan(this.names.overrideKeys(), max);
  }

  /** Up to `max` members of a set, by SSCAN (never the whole set at once). */
  private async scan(set: string, max: number): Promise<string[]> {
    const out: string[] = [];
    let cursor = "0";
    do {
      const [next, members] = await this.redis.sscan(set, cursor, "COUNT", 200);
      out.push(...members);
      cursor = next;
    } while (cursor !== "0" && out.length < max);
    return [...new Set(out)].slice(0, max);
  }
}
