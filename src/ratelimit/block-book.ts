/**
 * The one owner of the block lifecycle. A block refuses a subject (a key, a
 * client IP or a caller-chosen subject) for a while; it is placed by a rate
 * limit's escalation (inside the limit script) or by a detection rule, lifted
 * by an operator, and known to every replica:
 *
 *  - in the store, where limited decisions and ListBlocks find it;
 *  - in this replica's BlockCache, so a blocked subject is refused with no
 *    store round trip;
 *  - in the other replicas' caches, by an announcement on the invalidation bus
 *    (best effort: a lost announcement is healed by the store on the next
 *    limited decision, or by the cache load at start).
 *
 * Everything that places, lifts, finds or learns of a block goes through here.
 */

import type { BlockCache } from "./block-cache.js";
import type { RateLimitStore } from "./rate-limit-store.js";

/** An active block: subject tag (see subjectTag) and its end, epoch ms. */
export interface ActiveBlockEntry {
  tag: string;
  until: number;
}

/** What happened to a block, for metrics and logs (the owner of those is the caller). */
export interface BlockListener {
  /** A block placed by this replica (`origin`: a limit's escalation or a detection rule). */
  placed(block: ActiveBlockEntry, origin: "limit" | "detection"): void;
}

/** Options of BlockBook. */
export interface BlockBookOptions {
  /** This replica's cache of active blocks. */
  cache: BlockCache;
  /** Where blocks live for every replica. */
  store: Pick<RateLimitStore, "placeBlock" | "liftBlock" | "listBlocks">;
  /** Tells every other replica; must neither throw nor wait. */
  announce: (message: { blocks?: ActiveBlockEntry[]; unblocks?: string[] }) => void;
  /** Told of every block this replica places. Default: nothing. */
  listener?: BlockListener;
}

/** Blocks kept at startup from the store (the newest-ending first). */
const LOAD_AT_START = 1000;

/** Places, lifts, finds and shares blocks. */
export class BlockBook {
  constructor(private readonly o: BlockBookOptions) {}

  /** The latest-ending active block among `tags` known to this replica (no store call). */
  find(tags: readonly string[]): ActiveBlockEntry | undefined {
    return this.o.cache.find(tags);
  }

  /**
   * Blocks a limit decision placed in the store (its script escalates and
   * writes them atomically): remembered here and announced to the others.
   */
  placedByLimit(blocks: readonly ActiveBlockEntry[]): void {
    if (blocks.length === 0) return;
    for (const b of blocks) {
      this.o.cache.add(b.tag, b.until);
      this.o.listener?.placed(b, "limit");
    }
    this.o.announce({ blocks: [...blocks] });
  }

  /** A block a limited decision found in the store: remembered, so the next request is refused locally. */
  foundInStore(block: ActiveBlockEntry): void {
    this.o.cache.add(block.tag, block.until);
  }

  /**
   * Places a block for `durationMs` (a detection rule's action) in the store,
   * keeping a longer active one; remembers and announces it. Resolves to its end.
   */
  async place(tag: string, durationMs: number): Promise<number> {
    const until = await this.o.store.placeBlock(tag, durationMs);
    const block = { tag, until };
    this.o.cache.add(tag, until);
    this.o.announce({ blocks: [block] });
    this.o.listener?.placed(block, "detection");
    return until;
  }

  /** Lifts a block in the store, here and (announced) everywhere. True if one was active. */
  async lift(tag: string): Promise<boolean> {
    const lifted = await this.o.store.liftBlock(tag);
    this.o.cache.remove(tag);
    this.o.announce({ unblocks: [tag] });
    return lifted;
  }

  /** Applies another replica's announcement. */
  apply(message: { blocks?: readonly ActiveBlockEntry[]; unblocks?: readonly string[] }): void {
    for (const b of message.blocks ?? []) this.o.cache.add(b.tag, b.until);
    for (const t of message.unblocks ?? []) this.o.cache.remove(t);
  }

  /** Loads the blocks already active (at start: placed before this replica ran). */
  async load(): Promise<void> {
    for (const b of await this.o.store.listBlocks(LOAD_AT_START)) this.o.cache.add(b.tag, b.until);
  }
}
