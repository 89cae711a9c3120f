/**
 * Sizes of bounded in-memory structures. Each structure a caller's input can
 * grow (caches, the embedded store's maps and rings) is bounded in entries and
 * in estimated bytes, evicts when either bound is passed, and reports its size
 * here for the `tollgate_memory_*` gauges.
 *
 * Bytes are *estimates* of V8 heap use, computed cheaply on write (string
 * lengths plus a fixed overhead per object), never measured: they are
 * calibrated to over- rather than under-estimate what V8 holds for the shapes
 * Tollgate stores (see the per-structure constants and test/unit/memory-*.test.ts).
 */

/** The size of one bounded structure. */
export interface MemoryUsage {
  /** Entries held now. */
  entries: number;
  /** Estimated heap bytes held now. */
  bytes: number;
  /** Entries evicted for space (not expiry) since start. */
  evictions: number;
}

/** Bounds of one structure: it never holds more than either. */
export interface MemoryBounds {
  maxEntries: number;
  maxBytes: number;
}

/** V8 string header (map, hash, length) plus allocation rounding, bytes. */
const STRING_OVERHEAD = 24;
/** Characters past Latin-1 make V8 store a string with two bytes per character. */
const WIDE = /[\u0100-\uffff]/;

/** Estimated heap bytes of a string: its header, one byte per character (two if any is past U+00FF). */
export function stringBytes(s: string): number {
  return STRING_OVERHEAD + (WIDE.test(s) ? 2 * s.length : s.length);
}

/** Fraction of a bound an overflowing structure is brought back to, so evictions come in batches. */
export const EVICT_TO = 0.9;
