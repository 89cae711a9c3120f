import type { MarkerClaim, StoreMarker } from "../keys/store-marker.js";
import type { RedisClient } from "./redis-client.js";
import type { KeyNames } from "./redis-keys.js";

/**
 * The marker in Redis: one string key, `<prefix>marker:{marker}` (a single
 * key, so any Cluster slot will do), holding the pepper fingerprint in hex.
 * It has no expiry on purpose: it must live as long as the key records it
 * vouches for, which have none either.
 */
export class RedisStoreMarker implements StoreMarker {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: KeyNames,
  ) {}

  async claim(fingerprint: string): Promise<MarkerClaim> {
    const key = this.names.marker();
    // SET NX then GET, not SET NX GET: that needs Redis 7. If the marker
    // vanishes between the two (a FLUSHALL), claiming again writes ours.
    for (let attempt = 0; attempt < 3; attempt++) {
      if ((await this.redis.set(key, fingerprint, "NX")) === "OK") {
        return { fingerprint, created: true };
      }
      const stored = await this.redis.get(key);
      if (stored !== null) return { fingerprint: stored, created: false };
    }
    throw new Error("the store marker keeps vanishing while being read");
  }

  async replace(fingerprint: string): Promise<void> {
    await this.redis.set(this.names.marker(), fingerprint);
  }

  async epoch(candidate: string): Promise<string> {
    const key = this.names.epoch();
    for (let attempt = 0; attempt < 3; attempt++) {
      if ((await this.redis.set(key, candidate, "NX")) === "OK") return candidate;
      const stored = await this.redis.get(key);
      if (stored !== null) return stored;
    }
    throw new Error("the store epoch keeps vanishing while being read");
  }
}
