import { LRUCache } from "lru-cache";
import type { Clock } from "../util/clock.js";
import { type MemoryUsage, stringBytes } from "../util/memory-usage.js";

/** lru-cache's slot bookkeeping and the boxed end time, bytes (the tag string besides). */
const ENTRY_OVERHEAD = 160;
/**
 * Worst-case estimated bytes of one entry: a tag is `<kind>:` plus a subject of
 * at most 256 bytes (key id, IP, owner or caller subject), two bytes a
 * character at worst. So the cache's bytes are bounded by `max` × this.
 */
export const BLOCK_ENTRY_MAX_BYTES = ENTRY_OVERHEAD + 24 + 2 * 258;

/**
 * Active blocks known to this replica: subject tag → end (epoch ms). Fed by
 * this replica's decisions and by block announcements from every replica, so a
 * blocked subject is refused without a store round trip. Bounded (least
 * recently used evicted; `max` default 10 000 entries, at most
 * BLOCK_ENTRY_MAX_BYTES each); a block missing here (evicted, or its
 * announcement lost) is still found by the store on the next rate-limited
 * decision.
 */
export class BlockCache {
  private readonly lru: LRUCache<string, number>;
  private evictions = 0;

  constructor(
    private readonly clock: Clock,
    max = 10_000,
  ) {
    this.lru = new LRUCache({
      max,
      // Never the binding bound (every entry is at most BLOCK_ENTRY_MAX_BYTES):
      // it makes lru-cache keep the estimate the memory gauge reports.
      maxSize: max * BLOCK_ENTRY_MAX_BYTES,
      sizeCalculation: (_v, k) => ENTRY_OVERHEAD + stringBytes(k),
      dispose: (_v, _k, reason) => {
        if (reason === "evict") this.evictions++;
      },
    });
  }

  /** Records a block until `until`. */
  add(tag: string, until: number): void {
    const prev = this.lru.get(tag);
    if (prev === undefined || until > prev) this.lru.set(tag, until);
  }

  /** Forgets a block (lifted). */
  remove(tag: string): void {
    this.lru.delete(tag);
  }

  /** The latest-ending active block among `tags`, if any. */
  find(tags: readonly string[]): { tag: string; until: number } | undefined {
    // Nothing blocked (the usual case): every decision asks, so answer at once.
    if (this.lru.size === 0) return undefined;
    const now = this.clock.now();
    let best: { tag: string; until: number } | undefined;
    for (const tag of tags) {
      const until = this.lru.get(tag);
      if (until === undefined) continue;
      if (until <= now) {
        this.lru.delete(tag);
        continue;
      }
      if (!best || until > best.until) best = { tag, until };
    }
    return best;
  }

  get size(): number {
    return this.lru.size;
  }

  /** Entries, estimated bytes and evictions for space, for the memory gauges. */
  usage(): MemoryUsage {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, evictions: this.evictions };
  }
}
