import type { Clock } from "../util/clock.js";
import type { KeyCache } from "./key-cache.js";
import { type KeyRecord, matchDigest } from "./key-record.js";
import type { KeyStore } from "./key-store.js";

/** Cache outcome of one lookup, for metrics. */
export type LookupSource = "hit" | "miss";

/**
 * Finds the key a secret digest belongs to: from the bounded cache, else from
 * the store (digest index, then record). Concurrent misses for one digest share
 * one store lookup. A record whose digests no longer include `digest` (a stale
 * index entry) counts as unknown.
 */
export class KeyLookup {
  private readonly inflight = new Map<string, Promise<KeyRecord | null>>();
  /**
   * Counts invalidations. A store read that was under way when one arrived may
   * hold the state from before the change, so its result is returned to its
   * callers but not cached (else a revoked key would keep authorizing for a TTL).
   */
  private epoch = 0;

  constructor(
    private readonly store: KeyStore,
    private readonly cache: KeyCache,
    private readonly clock: Clock,
    private readonly onLookup: (source: LookupSource) => void = () => {},
  ) {}

  /** The key record for `digest`, or null if unknown. Throws if the store fails. */
  async find(digest: string): Promise<KeyRecord | null> {
    const cached = this.cached(digest);
    if (cached) return cached.record;
    this.onLookup("miss");
    let p = this.inflight.get(digest);
    if (!p) {
      const loading = this.load(digest).finally(() => {
        if (this.inflight.get(digest) === loading) this.inflight.delete(digest);
      });
      p = loading;
      this.inflight.set(digest, p);
    }
    return p;
  }

  /**
   * The key with this id (for rate limits by key id), cached like digest
   * lookups. Null if unknown. Throws if the store fails.
   */
  async findById(id: string): Promise<KeyRecord | null> {
    const cacheKey = `id:${id}`;
    const cached = this.cached(cacheKey);
    if (cached) return cached.record;
    this.onLookup("miss");
    const epoch = this.epoch;
    const record = (await this.store.get(id)) ?? null;
    if (epoch === this.epoch) this.cache.set(cacheKey, record, this.clock.now());
    return record;
  }

  /**
   * The cached lookup of a digest (or of a cache key `id:<key id>`), counted as a hit;
   * undefined on a miss (not counted: find / findById count it). Lets a
   * caller with a deadline skip arming a timer when no store call is needed.
   */
  cached(cacheKey: string): { record: KeyRecord | null } | undefined {
    const cached = this.cache.get(cacheKey);
    if (cached) this.onLookup("hit");
    return cached;
  }

  /** As `cached`, by key id. */
  cachedById(id: string): { record: KeyRecord | null } | undefined {
    return this.cached(`id:${id}`);
  }

  /**
   * For fail open: a found key from the cache, even past its TTL, if read from
   * the store at most `maxAgeMs` ago. Undefined when there is none: an unknown
   * (or invalidated) key is never guessed to be valid.
   */
  findStale(digest: string, maxAgeMs: number): KeyRecord | undefined {
    const e = this.cache.getStale(digest);
    if (!e?.record || this.clock.now() - e.fetchedAt > maxAgeMs) return undefined;
    return e.record;
  }

  /** As findStale, by key id. */
  findByIdStale(id: string, maxAgeMs: number): KeyRecord | undefined {
    return this.findStale(`id:${id}`, maxAgeMs);
  }

  /** Marks every cached lookup stale (e.g. after missed invalidations). */
  expireAll(): void {
    this.epoch++;
    this.cache.expireAll();
  }

  /** Drops cached lookups (invalidation from any replica). */
  invalidate(digests: readonly string[], ids: readonly string[] = []): void {
    this.epoch++;
    for (const d of digests) {
      this.cache.delete(d);
      // Later callers must not join a read that started before the change.
      this.inflight.delete(d);
    }
    for (const id of ids) this.cache.delete(`id:${id}`);
  }

  private async load(digest: string): Promise<KeyRecord | null> {
    const epoch = this.epoch;
    const id = await this.store.findIdByDigest(digest);
    const record = id === undefined ? undefined : await this.store.get(id);
    const found =
      record && matchDigest(record, digest, this.clock.now()) !== "none" ? record : null;
    if (epoch === this.epoch) this.cache.set(digest, found, this.clock.now());
    return found;
  }
}
