import { LRUCache } from "lru-cache";
import type { Clock } from "../util/clock.js";

/**
 * Active blocks known to this replica: subject tag → end (epoch ms). Fed by
 * this replica's decisions and by block announcements from every replica, so a
 * blocked subject is refused without a store round trip. Bounded; a block
 * missing here (evicted, or its announcement lost) is still found by the store
 * on the next rate-limited decision.
 */
export class BlockCache {
  private readonly lru: LRUCache<string, number>;

  constructor(
    private readonly clock: Clock,
    max = 10_000,
  ) {
    this.lru = new LRUCache({ max });
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
}
