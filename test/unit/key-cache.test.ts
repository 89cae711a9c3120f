/**
 * The key-lookup cache: bounded in entries, found keys trusted for ttlMs,
 * unknown digests remembered for negativeTtlMs, and stale entries kept (until
 * evicted) so that fail-open decisions can use a recent lookup.
 */
import { describe, expect, it } from "vitest";
import { KeyCache } from "../../src/keys/key-cache.js";
import { KeyLookup } from "../../src/keys/key-lookup.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { ManualClock } from "../../src/util/clock.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
  it("never holds more than max entries, evicting the least recently used", () => {
    let evictions = 0;
    const cache = new KeyCache({ max: 100, onEvict: () => evictions++ });
    cache.set("d0", record("k0"), 0);
    for (let i = 1; i < 100 + 250; i++) {
      cache.set(`d${i}`, i % 3 === 0 ? null : record(`k${i}`), i);
      expect(cache.get("d0")?.record?.id).toBe("k0"); // kept warm
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.size).toBe(100);
    expect(evictions).toBe(250);
    expect(cache.get("d1")).toBeUndefined();
    expect(cache.get("d349")?.record?.id).toBe("k349");
    expect(cache.get("d348")).toMatchObject({ record: null, fetchedAt: 348 });
  });

  it("remembers an unknown digest only for negativeTtlMs, a found key for ttlMs", async () => {
    const cache = new KeyCache({ ttlMs: 10_000, negativeTtlMs: 40 });
    cache.set("unknown", null, 1);
    cache.set("known", record("k"), 1);
    expect(cache.get("unknown")?.record).toBeNull();
    await sleep(80);
    expect(cache.get("unknown")).toBeUndefined();
    expect(cache.get("known")?.record?.id).toBe("k");
  });

  it("keeps an expired found key for fail open, but not for normal lookups", async () => {
    const cache = new KeyCache({ ttlMs: 30, negativeTtlMs: 30 });
    cache.set("known", record("k"), 1234);
    await sleep(60);
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
    await sleep(5); // the lookup has read the record and is on its way back
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
    await sleep(5);
    await store.replace({ ...record("key_a"), tier: "pro", version: 2 }, 1);
    lookup.invalidate([], ["key_a"]);
    slow.release();
    expect((await inflight)?.tier).toBe("free");
    expect((await lookup.findById("key_a"))?.tier).toBe("pro");
  });
});

/** The real store, with every record read held back until `release()`. */
function holdingReads(store: MemoryKeyStore): { store: MemoryKeyStore; release(): void } {
  let release = () => {};
  const held = new Promise<void>((r) => {
    release = r;
  });
  const proxy = new Proxy(store, {
    get(t, p, r) {
      const v = Reflect.get(t, p, r);
      if (p === "get") {
        return async (id: string) => {
          const rec = await t.get(id);
          await held;
          return rec;
        };
      }
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  return { store: proxy, release: () => release() };
}
