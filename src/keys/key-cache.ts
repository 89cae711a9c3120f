import { LRUCache } from "lru-cache";
import { type Clock, systemClock } from "../util/clock.js";
import { type MemoryUsage, stringBytes } from "../util/memory-usage.js";
import type { KeyRecord } from "./key-record.js";

/** Options of KeyCache. */
export interface KeyCacheOptions {
  /** Most found keys held. Default 100 000. */
  max?: number;
  /**
   * Most estimated bytes of found keys held (records and their cache keys).
   * Default 128 MiB: room for the 100 000 entries at ≈ 1.1 KiB a typical
   * record, so the entry bound binds first unless records are heavy.
   */
  maxBytes?: number;
  /**
   * Most unknown digests (and unknown key ids) remembered as unknown, in a
   * space of their own: a flood of unknown keys evicts only other unknown
   * keys, never a found one. Default 10 000.
   */
  negativeMax?: number;
  /** How long a found key is trusted without asking the store, ms. Default 5 000. */
  ttlMs?: number;
  /** How long an unknown digest is remembered as unknown, ms. Default 1 000. */
  negativeTtlMs?: number;
  /** Called when an entry (of either space) is evicted for space (metrics). */
  onEvict?: () => void;
  /**
   * The clock TTLs are measured on (and the default fetch time of set()).
   * Default: the system clock. Tests pass a ManualClock and move it instead
   * of sleeping.
   */
  clock?: Clock;
}

/** Default sizes (the settings' defaults). */
export const KEY_CACHE_DEFAULTS = {
  max: 100_000,
  maxBytes: 128 * 1024 * 1024,
  negativeMax: 10_000,
};

/** A cached lookup: the record, or null for "no such key", and when it was read from the store. */
export type CachedLookup = { record: KeyRecord | null; fetchedAt: number; generation?: number };

/**
 * Estimated bytes of one unknown-key entry: its cache key (a 43-char base64url
 * digest, or `id:` + a 20-char key id: the key length is fixed), the lookup
 * object, and lru-cache's per-slot bookkeeping (measured ≈ 600 B on Node 20).
 * Fixed, so the unknown space's bytes bound is `negativeMax` × this.
 */
export const NEGATIVE_ENTRY_BYTES = 640;

/** lru-cache's per-slot bookkeeping plus the CachedLookup object, bytes. */
const FOUND_ENTRY_OVERHEAD = 160;

/**
 * Estimated heap bytes of a cached key record: every string it holds plus a
 * fixed cost per object, array element and metadata entry. A record's size is
 * bounded by the API (owner 128 B, 64 scopes of 128 B, 32 metadata entries of
 * 64 + 512 B, 2 × 64 CIDRs of 64 B), so one entry is at most ≈ 40 KiB.
 */
export function keyRecordBytes(r: KeyRecord): number {
  let n = 400 + stringBytes(r.id) + stringBytes(r.owner) + stringBytes(r.tier);
  n += stringBytes(r.environment) + stringBytes(r.digest);
  if (r.graceDigest !== undefined) n += stringBytes(r.graceDigest);
  if (r.revokeReason !== undefined) n += stringBytes(r.revokeReason);
  for (const s of r.scopes) n += 8 + stringBytes(s);
  for (const s of r.ipAllow) n += 8 + stringBytes(s);
  for (const s of r.ipDeny) n += 8 + stringBytes(s);
  for (const [k, v] of Object.entries(r.metadata)) n += 32 + stringBytes(k) + stringBytes(v);
  return n;
}

/**
 * Bounded LRUs of digest → key lookups with TTLs, in two spaces: found keys
 * (bounded in entries and estimated bytes) and unknown digests (bounded in
 * entries of a fixed worst-case size). The spaces never evict each other, so
 * presenting many unknown keys cannot push a valid key out — which, with the
 * store unreachable and an endpoint failing open, would turn a valid caller
 * away. The TTL is the worst-case time a change (revocation, rotation, update)
 * stays unseen by a replica that missed its invalidation message.
 */
export class KeyCache {
  private readonly found: LRUCache<string, CachedLookup>;
  private readonly unknown: LRUCache<string, CachedLookup>;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly clock: Clock;
  /** Entries of an older generation are stale (see expireAll). */
  private generation = 0;
  private foundEvictions = 0;
  private unknownEvictions = 0;

  constructor(options: KeyCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.negativeTtlMs = options.negativeTtlMs ?? 1_000;
    this.clock = options.clock ?? systemClock;
    const onEvict = options.onEvict;
    // lru-cache measures TTLs with `perf.now()`. ttlResolution 0 makes it ask
    // the clock on every check instead of reusing one reading for 1 ms of
    // real time (set by a timer), which a moved ManualClock would not see.
    const time = { perf: this.clock, ttlResolution: 0 };
    this.found = new LRUCache<string, CachedLookup>({
      max: options.max ?? KEY_CACHE_DEFAULTS.max,
      maxSize: options.maxBytes ?? KEY_CACHE_DEFAULTS.maxBytes,
      sizeCalculation: (v, k) =>
        FOUND_ENTRY_OVERHEAD + stringBytes(k) + (v.record ? keyRecordBytes(v.record) : 0),
      ttl: this.ttlMs,
      ttlAutopurge: false,
      ...time,
      // Expired entries stay (until evicted) so that, with the store
      // unreachable, a fail-open endpoint can still use a recent lookup.
      noDeleteOnStaleGet: true,
      dispose: (_v, _k, reason) => {
        if (reason !== "evict") return;
        this.foundEvictions++;
        onEvict?.();
      },
    });
    this.unknown = new LRUCache<string, CachedLookup>({
      max: options.negativeMax ?? KEY_CACHE_DEFAULTS.negativeMax,
      ttl: this.negativeTtlMs,
      ttlAutopurge: false,
      ...time,
      dispose: (_v, _k, reason) => {
        if (reason !== "evict") return;
        this.unknownEvictions++;
        onEvict?.();
      },
    });
  }

  /** A fresh entry (within its TTL and not expired by expireAll). */
  get(digest: string): CachedLookup | undefined {
    const e = this.found.get(digest) ?? this.unknown.get(digest);
    return e && e.generation === this.generation ? e : undefined;
  }

  /** A found entry even past its TTL (for fail open), if not evicted or invalidated. */
  getStale(digest: string): CachedLookup | undefined {
    return this.found.get(digest, { allowStale: true });
  }

  /** Caches a lookup in its space (a record: found; null: unknown), replacing any in the other. */
  set(digest: string, record: KeyRecord | null, now: number = this.clock.now()): void {
    const entry = { record, fetchedAt: now, generation: this.generation };
    if (record) {
      this.unknown.delete(digest);
      this.found.set(digest, entry);
    } else {
      this.found.delete(digest);
      this.unknown.set(digest, entry);
    }
  }

  delete(digest: string): void {
    this.found.delete(digest);
    this.unknown.delete(digest);
  }

  /**
   * Makes every entry stale: the next get() misses and reads the store, while
   * getStale() still finds the entry (with its original fetch time).
   */
  expireAll(): void {
    this.generation++;
  }

  /** Number of entries held (both spaces). */
  get size(): number {
    return this.found.size + this.unknown.size;
  }

  /** Sizes of the two spaces, for the memory gauges. */
  usage(): { found: MemoryUsage; unknown: MemoryUsage } {
    return {
      found: {
        entries: this.found.size,
        bytes: this.found.calculatedSize,
        evictions: this.foundEvictions,
      },
      unknown: {
        entries: this.unknown.size,
        bytes: this.unknown.size * NEGATIVE_ENTRY_BYTES,
        evictions: this.unknownEvictions,
      },
    };
  }
}
