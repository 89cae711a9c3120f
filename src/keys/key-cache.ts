import { LRUCache } from "lru-cache";
import type { KeyRecord } from "./key-record.js";

/** Options of KeyCache. */
export interface KeyCacheOptions {
  /** Most entries held (positive and negative together). Default 100 000. */
  max?: number;
  /** How long a found key is trusted without asking the store, ms. Default 5 000. */
  ttlMs?: number;
  /** How long an unknown digest is remembered as unknown, ms. Default 1 000. */
  negativeTtlMs?: number;
  /** Called when an entry is evicted for space (metrics). */
  onEvict?: () => void;
}

/** A cached lookup: the record, or null for "no such key", and when it was read from the store. */
export type CachedLookup = { record: KeyRecord | null; fetchedAt: number; generation?: number };

/**
 * Bounded LRU of digest → key lookups with TTLs. The TTL is the worst-case time
 * a change (revocation, rotation, update) stays unseen by a replica that missed
 * its invalidation message.
 */
export class KeyCache {
  private readonly lru: LRUCache<string, CachedLookup>;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  /** Entries of an older generation are stale (see expireAll). */
  private generation = 0;

  constructor(options: KeyCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 1_000;
    const onEvict = options.onEvict;
    this.lru = new LRUCache<string, CachedLookup>({
      max: options.max ?? 100_000,
      ttl: this.ttlMs,
      ttlAutopurge: false,
      // Expired entries stay (until evicted) so that, with the store
      // unreachable, a fail-open endpoint can still use a recent lookup.
      noDeleteOnStaleGet: true,
      ...(onEvict && {
        dispose: (_v: CachedLookup, _k: string, reason: string) => {
          if (reason === "evict") onEvict();
        },
      }),
    });
  }

  /** A fresh entry (within its TTL and not expired by expireAll). */
  get(digest: string): CachedLookup | undefined {
    const e = this.lru.get(digest);
    return e && e.generation === this.generation ? e : undefined;
  }

  /** An entry even past its TTL (for fail open), if not evicted or invalidated. */
  getStale(digest: string): CachedLookup | undefined {
    return this.lru.get(digest, { allowStale: true });
  }

  set(digest: string, record: KeyRecord | null, now: number = Date.now()): void {
    this.lru.set(
      digest,
      { record, fetchedAt: now, generation: this.generation },
      { ttl: record ? this.ttlMs : this.negativeTtlMs },
    );
  }

  delete(digest: string): void {
    this.lru.delete(digest);
  }

  /**
   * Makes every entry stale: the next get() misses and reads the store, while
   * getStale() still finds the entry (with its original fetch time).
   */
  expireAll(): void {
    this.generation++;
  }

  /** Number of entries held. */
  get size(): number {
    return this.lru.size;
  }
}
