import type { Page } from "../events/event.js";
import type { MemoryBounds, MemoryUsage } from "../util/memory-usage.js";
import { LIST_SCAN_LIMIT } from "./event-store-limits.js";

/** One record of a ring. */
export interface Slot<T> {
  seq: number;
  at: number;
  value: T;
  /** Estimated bytes, counted against the ring's byte bound. */
  size: number;
}

/** Options of Ring. */
export interface RingOptions<T> extends MemoryBounds {
  /** Records older than this are trimmed, ms. */
  maxAgeMs: number;
  /** Estimated heap bytes of a record. */
  sizeOf: (value: T) => number;
  /** Called for every record leaving the ring (trimmed by age or evicted for space). */
  onDrop?: (slot: Slot<T>) => void;
}

/**
 * A bounded ring of records, oldest first: at most `maxEntries` records and
 * `maxBytes` estimated bytes, trimmed by age on every access. Past either
 * bound the oldest records go first — a flood of new records pushes out old
 * ones and nothing else. Cursors are sequence numbers.
 */
export class Ring<T> {
  private items: Slot<T>[] = [];
  /** Index of the oldest held record: the front is dropped by moving it, and compacted in bulk. */
  private head = 0;
  private seq = 0;
  private bytes = 0;
  private evictions = 0;

  constructor(private readonly o: RingOptions<T>) {}

  /** Appends a record; returns its slot, or undefined if it alone is over the byte bound (dropped). */
  push(value: T, now: number): Slot<T> | undefined {
    this.trim(now);
    const slot = { seq: ++this.seq, at: now, value, size: this.o.sizeOf(value) };
    this.items.push(slot);
    this.bytes += slot.size;
    while (
      this.items.length - this.head > this.o.maxEntries ||
      (this.bytes > this.o.maxBytes && this.items.length - this.head > 0)
    ) {
      this.dropOldest();
      this.evictions++;
    }
    this.compact();
    return this.items.length > this.head ? slot : undefined;
  }

  /** Newest first, from before `cursor`, keeping those `keep` accepts. */
  page(
    now: number,
    limit: number,
    cursor: string | undefined,
    keep: (v: T, at: number) => boolean,
  ): Page<T> {
    this.trim(now);
    const before = cursor === undefined ? Number.POSITIVE_INFINITY : Number(cursor);
    const floor = this.head;
    const out: T[] = [];
    let examined = 0;
    for (let i = this.items.length - 1; i >= floor; i--) {
      const s = this.items[i] as Slot<T>;
      if (s.seq >= before) continue;
      if (++examined > LIST_SCAN_LIMIT) return { items: out, next: String(s.seq + 1) };
      if (!keep(s.value, s.at)) continue;
      out.push(s.value);
      if (out.length === limit)
        return i > floor ? { items: out, next: String(s.seq) } : { items: out };
    }
    return { items: out };
  }

  /** Records, estimated bytes and evictions for space. */
  usage(): MemoryUsage {
    return { entries: this.items.length - this.head, bytes: this.bytes, evictions: this.evictions };
  }

  private trim(now: number): void {
    const oldest = now - this.o.maxAgeMs;
    while (this.head < this.items.length && (this.items[this.head] as Slot<T>).at <= oldest) {
      this.dropOldest();
    }
    this.compact();
  }

  private dropOldest(): void {
    const s = this.items[this.head] as Slot<T>;
    // Unreference the record at once: the array is compacted only in bulk.
    this.items[this.head] = undefined as unknown as Slot<T>;
    this.head++;
    this.bytes -= s.size;
    this.o.onDrop?.(s);
  }

  /** Removing from the front of an array is O(n): done once a sixteenth of it is dropped. */
  private compact(): void {
    if (this.head > 1024 && this.head > this.items.length >> 4) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
