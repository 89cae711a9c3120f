/**
 * The override-store conformance suite: the cases every OverrideStore must
 * pass — the embedded store, RedisOverrideStore on a standalone redis-server
 * and on a real Redis Cluster: an owner's overrides by limit name (set,
 * replace, remove), owners isolated whatever their names hold, and the
 * indexes of owners and keys that ListLimitOverrides reads.
 */
import { describe, expect, it } from "vitest";
import type { LimitOverride } from "../../src/ratelimit/limit-override.js";
import type { OverrideStore } from "../../src/ratelimit/override-store.js";

const ov = (limit: string, o: Partial<LimitOverride> = {}): LimitOverride => ({
  limit,
  exempt: false,
  requests: 10,
  createdAt: 1_700_000_000_000,
  ...o,
});

const byLimit = (l: LimitOverride[]) => [...l].sort((a, b) => (a.limit < b.limit ? -1 : 1));

/** Registers the suite for one store; `fresh` gives an empty, isolated store per case. */
export function overrideStoreConformance(name: string, fresh: () => Promise<OverrideStore>): void {
  describe(`OverrideStore conformance: ${name}`, () => {
    it("an owner without overrides has none and is not listed", async () => {
      const s = await fresh();
      expect(await s.ownerOverrides("acme")).toEqual([]);
      expect(await s.owners(10)).toEqual([]);
      expect(await s.removeOwnerOverrides("acme", ["x"])).toBe(0);
    });

    it("sets, replaces by limit name, and removes an owner's overrides exactly", async () => {
      const s = await fresh();
      const full = ov("per-key", { burst: 20, periodMs: 60_000, expiresAt: 1_800_000_000_000 });
      await s.setOwnerOverride("acme", full);
      await s.setOwnerOverride("acme", ov("daily", { exempt: true, requests: 0 }));
      expect(byLimit(await s.ownerOverrides("acme"))).toEqual([
        ov("daily", { exempt: true, requests: 0 }),
        full,
      ]);
      await s.setOwnerOverride("acme", ov("per-key", { requests: 3 }));
      expect(byLimit(await s.ownerOverrides("acme"))).toEqual([
        ov("daily", { exempt: true, requests: 0 }),
        ov("per-key", { requests: 3 }),
      ]);
      expect(await s.owners(10)).toEqual(["acme"]);
      expect(await s.removeOwnerOverrides("acme", ["per-key", "nope"])).toBe(1);
      expect(await s.owners(10)).toEqual(["acme"]);
      expect(await s.removeOwnerOverrides("acme", ["daily"])).toBe(1);
      expect(await s.ownerOverrides("acme")).toEqual([]);
      expect(await s.owners(10)).toEqual([]);
    });

    it("keeps owners apart whatever their names hold ({, }, :, %)", async () => {
      const s = await fresh();
      const names = ["a", "a{b}", "a}", "o:a", "a%7B", "ä ü"];
      for (const [i, n] of names.entries())
        await s.setOwnerOverride(n, ov("per-key", { requests: i + 1 }));
      for (const [i, n] of names.entries())
        expect(await s.ownerOverrides(n), n).toEqual([ov("per-key", { requests: i + 1 })]);
      expect([...(await s.owners(100))].sort()).toEqual([...names].sort());
      expect(await s.owners(2)).toHaveLength(2);
    });

    it("indexes the keys that hold overrides", async () => {
      const s = await fresh();
      await s.markKey("key_aaaaaaaaaaaaaaaa", true);
      await s.markKey("key_bbbbbbbbbbbbbbbb", true);
      await s.markKey("key_aaaaaaaaaaaaaaaa", true);
      expect([...(await s.keys(10))].sort()).toEqual([
        "key_aaaaaaaaaaaaaaaa",
        "key_bbbbbbbbbbbbbbbb",
      ]);
      await s.markKey("key_aaaaaaaaaaaaaaaa", false);
      expect(await s.keys(10)).toEqual(["key_bbbbbbbbbbbbbbbb"]);
      expect(await s.keys(0)).toEqual([]);
    });
  });
}
