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

/** A cached lookup: the record, or null for "no such key". */
export type CachedLookup = { record: KeyRecord | null };

/**
 * Bounded LRU of digest → key lookups with TTLs. The TTL is the worst-case time
 * a change (revocation, rotation, update) stays unseen by a replica that missed
 * its invalidation message.
 */
export class KeyCache {
  private readonly lru: LRUCache<string, CachedLookup>;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;

  constructor(options: KeyCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 1_000;
    const onEvict = options.onEvict;
    this.lru = new LRUCache<string, CachedLookup>({
      max: options.max ?? 100_000,
      ttl: this.ttlMs,
      ttlAutopurge: false,
      ...(onEvict && {
        dispose: (_v: CachedLookup, _k: string, reason: string) => {
          if (reason === "evict") onEvict();
        },
      }),
    });
  }

  get(digest: string): CachedLookup | undefined {
    return this.lru.get(digest);
  }

  set(digest: string, record: KeyRecord | null): void {
    this.lru.set(digest, { record }, { ttl: record ? this.ttlMs : this.negativeTtlMs });
  }

  delete(digest: string): void {
    this.lru.delete(digest);
  }

  /** Number of entries held. */
  get size(): number {
    return this.lru.size;
  }

  clear(): void {
    this.lru.clear();
  }
}
