import type { ForeignPrefixStore } from "../keys/foreign-prefix-store.js";
import type { RedisClient } from "./redis-client.js";
import type { KeyNames } from "./redis-keys.js";

/**
 * Foreign key prefixes in one Redis set, `<prefix>foreign-prefixes:{index}`
 * (one key, so any Cluster slot will do). No expiry, like the key records
 * that need it.
 */
export class RedisForeignPrefixStore implements ForeignPrefixStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: KeyNames,
  ) {}

  async add(prefixes: readonly string[]): Promise<void> {
    if (prefixes.length > 0) await this.redis.sadd(this.names.foreignPrefixes(), ...prefixes);
  }

  async list(): Promise<string[]> {
    return this.redis.smembers(this.names.foreignPrefixes());
  }
}
