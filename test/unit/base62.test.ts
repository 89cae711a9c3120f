/** base62: the alphabet of secrets and key ids, and fixed-width number encoding. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BASE62, encodeBase62Fixed, randomBase62 } from "../../src/util/base62.js";

describe("BASE62", () => {
  it("has 62 distinct characters in ascending code order, digits first", () => {
    expect(BASE62).toHaveLength(62);
    expect(new Set(BASE62).size).toBe(62);
    expect([...BASE62].sort().join("")).toBe(BASE62);
    expect(BASE62.slice(0, 10)).toBe("0123456789");
  });
});

describe("encodeBase62Fixed", () => {
  it("encodes known values at a fixed width, zero-padded", () => {
    expect(encodeBase62Fixed(0, 6)).toBe("000000");
    expect(encodeBase62Fixed(61, 1)).toBe("z");
    expect(encodeBase62Fixed(62, 2)).toBe("10");
    expect(encodeBase62Fixed(62, 4)).toBe("0010");
    expect(encodeBase62Fixed(3843, 2)).toBe("zz"); // 62² − 1
    expect(encodeBase62Fixed(2 ** 32 - 1, 6)).toBe("4gfFC3");
  });

  it("round-trips and keeps numeric order for every 32-bit value (CRC32 range)", () => {
    const decode = (s: string) => [...s].reduce((n, c) => n * 62 + BASE62.indexOf(c), 0);
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 2 ** 32 - 1 }), (a, b) => {
        const ea = encodeBase62Fixed(a, 6);
        const eb = encodeBase62Fixed(b, 6);
        expect(ea).toHaveLength(6);
        expect(decode(ea)).toBe(a);
        expect(ea < eb).toBe(a < b);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("randomBase62", () => {
  it("returns exactly the length asked for, from the alphabet only", () => {
    for (const n of [0, 1, 16, 24, 100, 1000]) {
      const s = randomBase62(n);
      expect(s).toHaveLength(n);
      expect(s).toMatch(/^[0-9A-Za-z]*$/);
    }
  });

  it("uses every character about equally often (no modulo bias)", () => {
    const counts = new Map<string, number>();
    for (const c of randomBase62(62 * 2000)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(62);
    // Expected 2000 each, σ ≈ 44: a bias of 248 mod 62 = 0 would be invisible, but a
    // naive `byte % 62` over 256 values skews the first 8 characters by ~+24%.
    for (const [c, n] of counts) {
      expect(n, c).toBeGreaterThan(1700);
      expect(n, c).toBeLessThan(2300);
    }
  });
});
