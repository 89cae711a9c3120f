/**
 * The embedded rate-limit store's column-wise entries (store/entry-table.ts):
 * the same answers as a Map of entry objects under any sequence of writes and
 * deletes, columns never past their bound, freed slots reused.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Entry, EntryTable } from "../../src/store/entry-table.js";

const entryArb = fc.record({
  a: fc.double({ noNaN: true }),
  b: fc.double({ noNaN: true }),
  expiresAt: fc.integer({ min: 0, max: 2 ** 52 }),
  t: fc.double({ noNaN: true }),
});
const opArb = fc.oneof(
  fc.record({ op: fc.constant("set" as const), key: fc.integer({ min: 0, max: 40 }), e: entryArb }),
  fc.record({ op: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ op: fc.constant("expire" as const), now: fc.integer({ min: 0, max: 2 ** 52 }) }),
);

describe("EntryTable", () => {
  it("answers as a Map of entries does, in the same order, after any writes and deletes", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const table = new EntryTable(41);
        const model = new Map<string, Entry>();
        for (const o of ops) {
          if (o.op === "set") {
            const k = `k${o.key}`;
            expect(table.set(k, o.e)).toBe(!model.has(k));
            model.set(k, { ...o.e });
          } else if (o.op === "delete") {
            expect(table.delete(`k${o.key}`)).toBe(model.delete(`k${o.key}`));
          } else {
            const gone: string[] = [];
            table.deleteExpired(o.now, (k) => gone.push(k));
            const expected = [...model].filter(([, e]) => e.expiresAt <= o.now).map(([k]) => k);
            for (const k of expected) model.delete(k);
            expect(gone).toEqual(expected);
          }
          expect(table.size).toBe(model.size);
        }
        const seen: [string, Entry][] = [];
        table.forEach((k, a, b, expiresAt, t) => {
          seen.push([k, { a, b, expiresAt, t }]);
        });
        expect(seen).toEqual([...model]);
        expect([...table.keys()]).toEqual([...model.keys()]);
        for (const [k, e] of model) expect(table.get(k)).toEqual(e);
        expect(table.capacity).toBeLessThanOrEqual(41);
      }),
      { numRuns: 300 },
    );
  });

  it("reuses freed slots: churn through many keys never grows the columns past the most held", () => {
    const table = new EntryTable(3000);
    for (let i = 0; i < 100_000; i++) {
      table.set(`key-${i}`, { a: i, b: 0, expiresAt: i, t: 0 });
      if (i >= 2000) table.delete(`key-${i - 2000}`);
    }
    expect(table.size).toBe(2000);
    expect(table.capacity).toBeLessThanOrEqual(2048);
    expect(table.get("key-99999")).toEqual({ a: 99_999, b: 0, expiresAt: 99_999, t: 0 });
    expect(table.get("key-0")).toBeUndefined();
  });

  it("gives copies: changing what get returned changes nothing held", () => {
    const table = new EntryTable(10);
    table.set("k", { a: 1, b: 2, expiresAt: 3, t: 4 });
    const e = table.get("k") as Entry;
    e.a = 99;
    expect(table.get("k")).toEqual({ a: 1, b: 2, expiresAt: 3, t: 4 });
  });
});
