/**
 * The key-lookup cache: found keys bounded in entries and estimated bytes,
 * unknown digests in a bounded space of their own (so they never evict a found
 * key), found keys trusted for ttlMs, unknown digests remembered for
 * negativeTtlMs, and stale entries kept (until evicted) so that fail-open
 * decisions can use a recent lookup.
 */
import { describe, expect, it } from "vitest";
import { KeyCache, keyRecordBytes, NEGATIVE_ENTRY_BYTES } from "../../src/keys/key-cache.js";
import { KeyLookup } from "../../src/keys/key-lookup.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { ManualClock } from "../../src/util/clock.js";

function record(id: string, digest = `d-${id}`): KeyRecord {
  return {
    id,
    owner: "acme",
    tier: "free",
    scopes: [],
    metadata: {},
    status: "active",
    environment: "live",
    createdAt: 0,
    updatedAt: 0,
    ipAllow: [],
    ipDeny: [],
    digest,
    secretCreatedAt: 0,
    version: 1,
  };
}

describe("KeyCache", () => {
  it("never holds more than max found keys, evicting the least recently used", () => {
    let evictions = 0;
    const cache = new KeyCache({ max: 100, onEvict: () => evictions++ });
    cache.set("d0", record("k0"), 0);
    for (let i = 1; i < 100 + 250; i++) {
      cache.set(`d${i}`, record(`k${i}`), i);
      expect(cache.get("d0")?.record?.id).toBe("k0"); // kept warm
      expect(cache.usage().found.entries).toBeLessThanOrEqual(100);
    }
    expect(cache.usage().found).toMatchObject({ entries: 100, evictions: 250 });
    expect(evictions).toBe(250);
    expect(cache.get("d1")).toBeUndefined();
    expect(cache.get("d349")?.record?.id).toBe("k349");
  });

  it("never holds more than maxBytes of found keys, by each record's estimated size", () => {
    const cache = new KeyCache({ max: 10_000, maxBytes: 200_000 });
    const heavy = (i: number) => ({
      ...record(`k${i}`),
      metadata: Object.fromEntries(
        Array.from({ length: 32 }, (_, m) => [`key${m}`.padEnd(64, "k"), "v".repeat(512)]),
      ),
    });
    expect(keyRecordBytes(heavy(0))).toBeGreaterThan(32 * (64 + 512));
    for (let i = 0; i < 100; i++) {
      cache.set(`d${i}`, heavy(i), i);
      expect(cache.usage().found.bytes).toBeLessThanOrEqual(200_000);
    }
    const { entries } = cache.usage().found;
    expect(entries).toBeGreaterThan(0);
    expect(entries).toBeLessThan(200_000 / keyRecordBytes(heavy(0)) + 1);
    expect(cache.get("d99")?.record?.id).toBe("k99"); // the newest stay
    expect(cache.get("d0")).toBeUndefined();
  });

  it("keeps unknown digests in a space of their own: any number of them never evicts a found key", () => {
    let evictions = 0;
    const cache = new KeyCache({ max: 20, negativeMax: 50, onEvict: () => evictions++ });
    for (let i = 0; i < 20; i++) cache.set(`valid${i}`, record(`k${i}`), i);
    for (let i = 0; i < 20 * 1000; i++) cache.set(`unknown${i}`, null, i);
    const { found, unknown } = cache.usage();
    expect(found).toMatchObject({ entries: 20, evictions: 0 });
    expect(unknown).toMatchObject({ entries: 50, evictions: 20 * 1000 - 50 });
    expect(unknown.bytes).toBe(50 * NEGATIVE_ENTRY_BYTES);
    expect(evictions).toBe(20 * 1000 - 50);
    for (let i = 0; i < 20; i++) {
      expect(cache.get(`valid${i}`)?.record?.id).toBe(`k${i}`);
      expect(cache.getStale(`valid${i}`)?.record?.id).toBe(`k${i}`);
    }
    expect(cache.get("unknown19999")?.record).toBeNull(); // the newest unknowns stay
    expect(cache.get("unknown0")).toBeUndefined();
  });

  it("moves a digest between the spaces when its lookup changes", () => {
    const cache = new KeyCache({ max: 10, negativeMax: 10 });
    cache.set("d", null, 1);
    cache.set("d", record("k"), 2);
    expect(cache.usage().unknown.entries).toBe(0);
    expect(cache.get("d")?.record?.id).toBe("k");
    cache.set("d", null, 3); // e.g. the key's secret was rotated away
    expect(cache.usage().found.entries).toBe(0);
    expect(cache.get("d")?.record).toBeNull();
    expect(cache.getStale("d")).toBeUndefined(); // never guessed valid from an old copy
    cache.delete("d");
    expect(cache.size).toBe(0);
  });

  it("caches unknown key ids (findById) in the unknown space too", async () => {
    const clock = new ManualClock();
    const cache = new KeyCache({ max: 5, negativeMax: 5 });
    const store = new MemoryKeyStore(clock);
    await store.create(record("key_a"));
    const lookup = new KeyLookup(store, cache, clock);
    await lookup.findById("key_a");
    for (let i = 0; i < 100; i++) expect(await lookup.findById(`key_${i}`)).toBeNull();
    expect(cache.usage().unknown.entries).toBe(5);
    expect(lookup.findByIdStale("key_a", 60_000)?.id).toBe("key_a");
  });

  it("remembers an unknown digest only for negativeTtlMs, a found key for ttlMs", () => {
    const clock = new ManualClock();
    const cache = new KeyCache({ ttlMs: 10_000, negativeTtlMs: 40, clock });
    cache.set("unknown", null);
    cache.set("known", record("k"));
    clock.advance(40);
    expect(cache.get("unknown")?.record).toBeNull(); // still within its TTL
    clock.advance(1);
    expect(cache.get("unknown")).toBeUndefined();
    expect(cache.get("known")?.record?.id).toBe("k");
    clock.advance(10_000 - 41);
    expect(cache.get("known")?.record?.id).toBe("k");
    clock.advance(1);
    expect(cache.get("known")).toBeUndefined();
  });

  it("stamps a lookup with the injected clock's time unless told otherwise", () => {
    const clock = new ManualClock();
    const cache = new KeyCache({ clock });
    cache.set("known", record("k"));
    expect(cache.get("known")?.fetchedAt).toBe(clock.now());
  });

  it("keeps an expired found key for fail open, but not for normal lookups", () => {
    const clock = new ManualClock();
    const cache = new KeyCache({ ttlMs: 30, negativeTtlMs: 30, clock });
    cache.set("known", record("k"), 1234);
    clock.advance(31);
    expect(cache.get("known")).toBeUndefined();
    expect(cache.getStale("known")).toMatchObject({ record: { id: "k" }, fetchedAt: 1234 });
    cache.delete("known");
    expect(cache.getStale("known")).toBeUndefined();
  });
});

describe("KeyLookup over the cache", () => {
  it("asks the store once per digest while the entry is fresh, negative or not", async () => {
    const clock = new ManualClock();
    const store = new MemoryKeyStore(clock);
    await store.create(record("key_a"));
    let calls = 0;
    const counted = new Proxy(store, {
      get(t, p, r) {
        const v = Reflect.get(t, p, r);
        return typeof v === "function"
          ? (...a: unknown[]) => {
              calls++;
              return v.apply(t, a);
            }
          : v;
      },
    });
    const lookup = new KeyLookup(counted, new KeyCache({ ttlMs: 60_000 }), clock);
    const [a, b] = await Promise.all([lookup.find("d-key_a"), lookup.find("d-key_a")]);
    expect(a?.id).toBe("key_a");
    expect(b?.id).toBe("key_a");
    expect(calls).toBe(2); // one findIdByDigest + one get, shared by both callers
    expect(await lookup.find("d-key_a")).toMatchObject({ id: "key_a" });
    expect(await lookup.find("nobody")).toBeNull();
    const afterMiss = calls;
    expect(await lookup.find("nobody")).toBeNull();
    expect(calls).toBe(afterMiss);
    lookup.invalidate(["d-key_a"]);
    await lookup.find("d-key_a");
    expect(calls).toBe(afterMiss + 2);
  });

  it("lets fail open use a cached key only within maxAgeMs of its fetch (ManualClock)", async () => {
    const clock = new ManualClock();
    const store = new MemoryKeyStore(clock);
    await store.create(record("key_a"));
    const lookup = new KeyLookup(store, new KeyCache({ ttlMs: 60_000 }), clock);
    await lookup.find("d-key_a");
    clock.advance(300_000);
    expect(lookup.findStale("d-key_a", 300_000)?.id).toBe("key_a");
    clock.advance(1);
    expect(lookup.findStale("d-key_a", 300_000)).toBeUndefined();
    expect(lookup.findStale("never-seen", 300_000)).toBeUndefined();
  });

  it("never guesses a key from a negative entry or an ended grace period", async () => {
    const clock = new ManualClock();
    const store = new MemoryKeyStore(clock);
    const r = { ...record("key_a"), graceDigest: "old", graceEndsAt: clock.now() + 1000 };
    await store.create(r);
    await store.indexDigest("old", "key_a");
    const lookup = new KeyLookup(store, new KeyCache({ ttlMs: 60_000 }), clock);
    expect((await lookup.find("old"))?.id).toBe("key_a");
    clock.advance(1000);
    lookup.invalidate(["old"]);
    // The index still names the key, but the record says the grace has ended.
    expect(await lookup.find("old")).toBeNull();
    expect(lookup.findStale("old", 60_000)).toBeUndefined();
  });
  it("does not keep a lookup that raced a revocation: the next decision sees it", async () => {
    const clock = new ManualClock();
    const store = new MemoryKeyStore(clock);
    await store.create(record("key_a"));
    const slow = holdingReads(store);
    const lookup = new KeyLookup(slow.store, new KeyCache({ ttlMs: 60_000 }), clock);
    const inflight = lookup.find("d-key_a");
    await slow.read; // the lookup has read the record and is on its way back
    await store.replace({ ...record("key_a"), status: "revoked", version: 2 }, 1);
    lookup.invalidate(["d-key_a"], ["key_a"]);
    const asked = lookup.find("d-key_a"); // asked after the invalidation
    slow.release();
    expect((await inflight)?.status).toBe("active"); // read before the revocation
    expect((await asked)?.status).toBe("revoked");
    expect((await lookup.find("d-key_a"))?.status).toBe("revoked");
  });

  it("does not keep a lookup by id that raced a change", async () => {
    const clock = new ManualClock();
    const store = new MemoryKeyStore(clock);
    await store.create(record("key_a"));
    const slow = holdingReads(store);
    const lookup = new KeyLookup(slow.store, new KeyCache({ ttlMs: 60_000 }), clock);
    const inflight = lookup.findById("key_a");
    await slow.read;
    await store.replace({ ...record("key_a"), tier: "pro", version: 2 }, 1);
    lookup.invalidate([], ["key_a"]);
    slow.release();
    expect((await inflight)?.tier).toBe("free");
    expect((await lookup.findById("key_a"))?.tier).toBe("pro");
  });
});

/**
 * The real store, with every record read held back until `release()`; `read`
 * settles once the first record has been read (and is being held).
 */
function holdingReads(store: MemoryKeyStore): {
  store: MemoryKeyStore;
  read: Promise<void>;
  release(): void;
} {
  let release = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  let readDone = () => {};
  const read = new Promise<void>((r) => {
    readDone = r;
  });
  const proxy = new Proxy(store, {
    get(t, p, r) {
      const v = Reflect.get(t, p, r);
      if (p === "get") {
        return async (id: string) => {
          const rec = await t.get(id);
          readDone();
          await held;
          return rec;
        };
      }
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { store: proxy, read, release: () => release() };
}
