import type {
  UsageCounts,
  UsageIncrement,
  UsageResolution,
  UsageStore,
} from "../events/usage-store.js";
import type { Clock } from "../util/clock.js";
import {
  EVICT_TO,
  type MemoryBounds,
  type MemoryUsage,
  stringBytes,
} from "../util/memory-usage.js";
import { bucketStart } from "../util/time-buckets.js";

/** Writes between sweeps of expired counters. */
const SWEEP_EVERY = 1000;
/** A bucket's Map slot, record and counts object, bytes (its key string besides). */
const BUCKET_OVERHEAD = 120;
/** One endpoint's count in a bucket (its name besides). */
const COUNT_OVERHEAD = 48;

/** Default bounds (the settings' defaults). */
export const USAGE_STORE_DEFAULTS: MemoryBounds = {
  maxEntries: 200_000,
  maxBytes: 16 * 1024 * 1024,
};

interface Bucket {
  counts: UsageCounts;
  expiresAt: number;
  bytes: number;
}

/**
 * The embedded usage store: counters in process memory, expiring after the
 * retention. Bounded in buckets (one per key, resolution and minute or hour)
 * and estimated bytes; past either bound, expired buckets go, then the oldest
 * created — the longest-ago usage — down to 90 % of both bounds. Only allowed
 * requests of valid keys are counted, so only key holders can grow it; a
 * GetUsage range older than what is held reads as no requests.
 */
export class MemoryUsageStore implements UsageStore {
  private readonly map = new Map<string, Bucket>();
  private readonly bounds: MemoryBounds;
  private writes = 0;
  private bytes = 0;
  private evictions = 0;

  /** `bounds` defaults to USAGE_STORE_DEFAULTS (200 000 buckets, 16 MiB). */
  constructor(
    private readonly clock: Clock,
    private readonly retentionMs: number,
    bounds: Partial<MemoryBounds> = {},
  ) {
    this.bounds = { ...USAGE_STORE_DEFAULTS, ...bounds };
  }

  async add(increments: readonly UsageIncrement[]): Promise<void> {
    const now = this.clock.now();
    for (const inc of increments) {
      for (const res of ["minute", "hour"] as const) {
        const k = `${res}\u0000${inc.keyId}\u0000${bucketStart(inc.at, res)}`;
        let e = this.map.get(k);
        if (e && e.expiresAt <= now) this.drop(k, e);
        if (!e || e.expiresAt <= now) {
          e = {
            counts: {},
            expiresAt: now + this.retentionMs,
            bytes: BUCKET_OVERHEAD + stringBytes(k),
          };
          this.map.set(k, e);
          this.bytes += e.bytes;
        }
        const had = e.counts[inc.endpoint];
        if (had === undefined) {
          const b = COUNT_OVERHEAD + stringBytes(inc.endpoint);
          e.bytes += b;
          this.bytes += b;
        }
        e.counts[inc.endpoint] = (had ?? 0) + inc.requests;
      }
      if (this.map.size > this.bounds.maxEntries || this.bytes > this.bounds.maxBytes) {
        this.shrink(now);
      } else if (++this.writes % SWEEP_EVERY === 0) {
        for (const [k, e] of this.map) if (e.expiresAt <= now) this.drop(k, e);
      }
    }
  }

  async read(
    keyId: string,
    resolution: UsageResolution,
    starts: readonly number[],
  ): Promise<UsageCounts[]> {
    const now = this.clock.now();
    return starts.map((s) => {
      const e = this.map.get(`${resolution}\u0000${keyId}\u0000${s}`);
      return e && e.expiresAt > now ? { ...e.counts } : {};
    });
  }

  /** Buckets, estimated bytes and evictions for space, for the memory gauges. */
  usage(): MemoryUsage {
    return { entries: this.map.size, bytes: this.bytes, evictions: this.evictions };
  }

  private drop(k: string, e: Bucket): void {
    if (this.map.delete(k)) this.bytes -= e.bytes;
  }

  /** Expired buckets, then the oldest (Map order is creation order), to EVICT_TO of both bounds. */
  private shrink(now: number): void {
    for (const [k, e] of this.map) if (e.expiresAt <= now) this.drop(k, e);
    const keepEntries = Math.floor(this.bounds.maxEntries * EVICT_TO);
    const keepBytes = Math.floor(this.bounds.maxBytes * EVICT_TO);
    for (const [k, e] of this.map) {
      if (this.map.size <= keepEntries && this.bytes <= keepBytes) break;
      this.drop(k, e);
      this.evictions++;
    }
  }
}
