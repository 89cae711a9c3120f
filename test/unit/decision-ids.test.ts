import { describe, expect, it } from "vitest";
import { newDecisionId } from "../../src/util/ids.js";

describe("newDecisionId", () => {
  it("is 12 hex digits of the ms then 12 random hex digits, distinct across pool refills", () => {
    const now = Date.UTC(2026, 11, 3);
    const ids = Array.from({ length: 10_000 }, (_, i) => newDecisionId(now + (i >> 4)));
    for (const [i, id] of ids.entries()) {
      expect(id).toMatch(/^[0-9a-f]{24}$/);
      expect(Number.parseInt(id.slice(0, 12), 16)).toBe(now + (i >> 4));
    }
    expect(new Set(ids).size).toBe(ids.length);
    // The random halves of consecutive ids differ (not one slice repeated).
    expect(new Set(ids.map((id) => id.slice(12))).size).toBe(ids.length);
  });
});
