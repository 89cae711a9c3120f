/**
 * The embedded rate-limit store's entries, held column-wise: a Map from key
 * to a slot number, and four Float64Array columns indexed by slot.
 *
 * An Entry object per key held its four numbers as boxed doubles besides
 * itself (≈ 112 of the ≈ 175 bytes an entry cost besides its key, measured
 * from a heap snapshot of the 256-byte-subject flood), and every charge
 * replaced it, so each write left old-space garbage behind. A slot is written
 * in place; freed slots are reused, so the columns grow to the most entries
 * ever held at once (the store's own bound) and no further.
 */

/** One entry's numbers (see MemoryRateLimitStore for what each means per kind). */
export interface Entry {
  a: number;
  b: number;
  expiresAt: number;
  t: number;
}

/** Slots the columns start with; they double when full. */
const INITIAL_SLOTS = 1024;

/** Bytes of one slot across the four columns. */
export const SLOT_BYTES = 32;

/** Entries by key, their numbers in columns. */
export class EntryTable {
  private readonly slots = new Map<string, number>();
  private a: Float64Array;
  private b: Float64Array;
  private exp: Float64Array;
  private t: Float64Array;
  /** Slots freed by delete, reused first. */
  private readonly free: number[] = [];
  /** Slots ever handed out (the next new one). */
  private used = 0;

  /**
   * `maxSlots`: the most entries the owner ever holds at once; the columns
   * never grow past it (unless it is passed), so a bound of 150 000 entries
   * costs at most 150 001 slots, not the next power of two.
   */
  constructor(private readonly maxSlots: number) {
    const n = Math.max(1, Math.min(INITIAL_SLOTS, maxSlots));
    this.a = new Float64Array(n);
    this.b = new Float64Array(n);
    this.exp = new Float64Array(n);
    this.t = new Float64Array(n);
  }

  /** Entries held. */
  get size(): number {
    return this.slots.size;
  }

  /** Slots the columns hold (allocated, used or not): what the memory estimate covers. */
  get capacity(): number {
    return this.a.length;
  }

  has(key: string): boolean {
    return this.slots.has(key);
  }

  /** A copy of the entry's numbers (a fresh object: changing it changes nothing held). */
  get(key: string): Entry | undefined {
    const s = this.slots.get(key);
    return s === undefined ? undefined : this.at(s);
  }

  /** Writes the entry's numbers; true if the key is new. */
  set(key: string, e: Entry): boolean {
    let s = this.slots.get(key);
    const added = s === undefined;
    if (s === undefined) {
      s = this.free.pop() ?? this.grab();
      this.slots.set(key, s);
    }
    this.a[s] = e.a;
    this.b[s] = e.b;
    this.exp[s] = e.expiresAt;
    this.t[s] = e.t;
    return added;
  }

  delete(key: string): boolean {
    const s = this.slots.get(key);
    if (s === undefined) return false;
    this.slots.delete(key);
    this.free.push(s);
    return true;
  }

  /**
   * Calls `fn` with each entry's key and numbers in insertion order (oldest
   * first), making no object per entry. `fn` may delete the entry it is
   * given (a Map's iteration survives that).
   */
  forEach(fn: (key: string, a: number, b: number, expiresAt: number, t: number) => void): void {
    for (const [k, s] of this.slots) {
      fn(k, this.a[s] as number, this.b[s] as number, this.exp[s] as number, this.t[s] as number);
    }
  }

  /** Keys in insertion order (the order forEach visits them). */
  keys(): IterableIterator<string> {
    return this.slots.keys();
  }

  /** Deletes every entry expired at `now`, calling `deleted` with each key. */
  deleteExpired(now: number, deleted: (key: string) => void): void {
    for (const [k, s] of this.slots) {
      if ((this.exp[s] as number) <= now) {
        this.delete(k);
        deleted(k);
      }
    }
  }

  private at(s: number): Entry {
    return {
      a: this.a[s] as number,
      b: this.b[s] as number,
      expiresAt: this.exp[s] as number,
      t: this.t[s] as number,
    };
  }

  /** A never-used slot, doubling the columns when they are full. */
  private grab(): number {
    if (this.used === this.a.length) {
      const n = Math.max(this.used + 1, Math.min(this.a.length * 2, this.maxSlots));
      this.a = grown(this.a, n);
      this.b = grown(this.b, n);
      this.exp = grown(this.exp, n);
      this.t = grown(this.t, n);
    }
    return this.used++;
  }
}

function grown(col: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n);
  out.set(col);
  return out;
}
