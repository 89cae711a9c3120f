/**
 * The eviction choice shared by the embedded stores: the lowest values go
 * first, ties oldest (lowest index) first, until both bounds hold.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pickEvictions } from "../../src/util/pick-evictions.js";

const f64 = (xs: number[]) => Float64Array.from(xs);

describe("pickEvictions", () => {
  it("evicts the lowest values first, ties in age order", () => {
    const evict = pickEvictions(f64([5, 1, 3, 1, 9, 1]), f64([1, 1, 1, 1, 1, 1]), 4, 1e9);
    expect([...evict]).toEqual([0, 1, 0, 1, 0, 0]);
  });

  it("evicts until the byte bound holds, whatever the sizes", () => {
    // The three small, low-valued entries go first; the large one stays while it fits…
    expect([...pickEvictions(f64([1, 2, 3, 4]), f64([10, 10, 10, 1000]), 10, 1005)]).toEqual([
      1, 1, 1, 0,
    ]);
    // …and goes too when it does not.
    expect([...pickEvictions(f64([1, 2, 3, 4]), f64([10, 10, 10, 1000]), 10, 995)]).toEqual([
      1, 1, 1, 1,
    ]);
    // Exactly the fewest: one large low-valued entry is enough.
    const some = pickEvictions(f64([1, 2, 3, 4]), f64([500, 10, 10, 10]), 10, 100);
    expect([...some]).toEqual([1, 0, 0, 0]);
    // Ties go oldest first until the bound holds.
    const ties = pickEvictions(f64([7, 7, 7, 7]), f64([10, 10, 10, 10]), 10, 25);
    expect([...ties]).toEqual([1, 1, 0, 0]);
  });

  it("evicts nothing when both bounds hold", () => {
    expect([...pickEvictions(f64([1, 2]), f64([5, 5]), 2, 10)]).toEqual([0, 0]);
  });

  it("leaves both bounds holding, and never keeps an entry worth less than one it evicted", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 100 })), {
          maxLength: 300,
        }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 30_000 }),
        (entries, keepEntries, keepBytes) => {
          const values = f64(entries.map((e) => e[0]));
          const sizes = f64(entries.map((e) => e[1]));
          const evict = pickEvictions(values, sizes, keepEntries, keepBytes);
          let count = 0;
          let bytes = 0;
          let maxEvicted = Number.NEGATIVE_INFINITY;
          let minKept = Number.POSITIVE_INFINITY;
          entries.forEach(([v, s], i) => {
            if (evict[i] === 1) maxEvicted = Math.max(maxEvicted, v);
            else {
              count++;
              bytes += s;
              minKept = Math.min(minKept, v);
            }
          });
          expect(count).toBeLessThanOrEqual(keepEntries);
          expect(bytes).toBeLessThanOrEqual(keepBytes);
          // The choice is by value, so a kept entry is worth at least every evicted one
          // (a larger but equally valued entry may go for the byte bound).
          expect(minKept).toBeGreaterThanOrEqual(maxEvicted);
          // And it takes no more than needed: keeping the last entry it took would break a bound.
          const last = evict.lastIndexOf(1);
          if (last >= 0 && values[last] === maxEvicted) {
            const tooMany = count + 1 > keepEntries;
            const tooBig = bytes + (sizes[last] as number) > keepBytes;
            expect(tooMany || tooBig).toBe(true);
          }
        },
      ),
    );
  });
});
