/**
 * The key-store conformance suite: one set of cases that every KeyStore must
 * pass — the embedded store, RedisKeyStore on a standalone redis-server and on
 * a real Redis Cluster. The first half drives the store interface directly; the
 * second runs the real keys domain (KeyManager, KeyLookup, KeyCache,
 * Authorizer) over the store, so a store that stores correctly but breaks a
 * lifecycle guarantee (rotation grace, revocation, expiry) still fails.
 *
 * Time: the memory store keeps time by the injected clock, Redis by its own
 * (`PXAT` expiries), so a fixture's clock either moves by hand or sleeps for
 * real. Every wait here is a fraction of a second.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Authorizer } from "../../src/keys/authorizer.js";
import { ForeignKeyMigrator } from "../../src/keys/foreign-key-migration.js";
import { ForeignKeys } from "../../src/keys/foreign-keys.js";
import type { ForeignPrefixStore } from "../../src/keys/foreign-prefix-store.js";
import { KeyCache } from "../../src/keys/key-cache.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { KeyImporter } from "../../src/keys/key-import.js";
import { KeyLookup } from "../../src/keys/key-lookup.js";
import { KeyManager, type NewKey, type Rotation } from "../../src/keys/key-manager.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import type { KeyStore } from "../../src/keys/key-store.js";
import { createSecretDigester } from "../../src/keys/secret-digest.js";
import { createLogger } from "../../src/observability/logger.js";
import { matchEndpoint, parsePolicy } from "../../src/policy/policy.js";
import { MemoryInvalidationBus } from "../../src/store/invalidation-bus.js";
import { MemoryForeignPrefixStore } from "../../src/store/memory-foreign-prefix-store.js";
import { normaliseIp } from "../../src/subjects/ip-address.js";
import type { Clock } from "../../src/util/clock.js";

/** A clock the cases can move: by hand (memory) or by sleeping (Redis keeps real time). */
export interface FixtureClock extends Clock {
  /** Lets `ms` milliseconds pass for the store and the domain alike. */
  advance(ms: number): Promise<void>;
}

/** One fresh, isolated store per case. */
export interface KeyStoreFixture {
  store: KeyStore;
  /** The foreign key prefixes kept beside the store (same Redis, same key prefix). */
  prefixes: ForeignPrefixStore;
  clock: FixtureClock;
  /** Releases what the fixture holds (its keys stay in a private Redis). */
  cleanup(): Promise<void>;
}

/** Makes a fresh fixture; called once per case. */
export type KeyStoreFactory = () => Promise<KeyStoreFixture>;

/**
 * The short period used for grace periods and expiries, ms. Real Redis time
 * passes while a case waits, so it is short; it is long enough that the checks
 * made "during" it finish well inside it on a loaded 2-core machine.
 */
export const SHORT_MS = 500;
/** Waiting this long past a SHORT_MS deadline is certainly past it. */
const PAST_SHORT_MS = SHORT_MS + 150;
/** A period no case outlives. */
const LONG_MS = 3_600_000;

const POLICY = parsePolicy(
  `version: 1
default_tier: free
tiers: { free: {}, pro: {} }
endpoints:
  - { name: orders, method: GET, path: /v1/orders, scopes: [orders:read] }
  - { name: refunds, method: POST, path: "/v1/orders/{id}/refunds", scopes: [orders:write, billing:refund] }
`,
  "conformance policy",
);

/** The pepper every conformance domain uses: a restored store's digests must match. */
export const CONFORMANCE_PEPPER = "conformance-pepper-not-a-secret-0123";

/** A store wrapped so every method call is counted; the real store still answers. */
export function countingStore(store: KeyStore): { store: KeyStore; calls: () => number } {
  let n = 0;
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        n++;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls: () => n };
}

/** The keys domain wired over a fixture's store, as main.ts wires it. */
export interface KeyDomain {
  keys: KeyManager;
  authorizer: Authorizer;
  importer: KeyImporter;
  /** This replica's registered foreign prefixes. */
  foreign: ForeignKeys;
  migrator: ForeignKeyMigrator;
  /** Store calls made by the domain so far. */
  storeCalls(): number;
  /** The digest the store holds for a secret. */
  digestOf(secret: string): string;
  /** A NewKey with sensible defaults. */
  newKey(over?: Partial<NewKey>): NewKey;
  /** One Authorize decision (GET /v1/orders unless told otherwise). */
  authorize(
    secret: string,
    o?: { ip?: string; scopes?: string[]; method?: string; path?: string },
  ): ReturnType<Authorizer["authorize"]>;
}

/**
 * Wires KeyManager + KeyLookup + KeyCache + Authorizer over `store`. The cache
 * trusts entries for an hour, so whatever a later decision sees differently
 * was seen because of an invalidation or of the record's own times, never
 * because a cache entry happened to expire.
 */
export function createKeyDomain(
  store: KeyStore,
  clock: Clock,
  prefixes: ForeignPrefixStore = new MemoryForeignPrefixStore(),
  bus = new MemoryInvalidationBus(),
): KeyDomain {
  const digest = createSecretDigester(Buffer.from(CONFORMANCE_PEPPER));
  const counted = countingStore(store);
  const cache = new KeyCache({ max: 1000, ttlMs: LONG_MS, negativeTtlMs: LONG_MS });
  const lookup = new KeyLookup(counted.store, cache, clock);
  const invalidateLocal = (digests: string[], ids: string[]) => lookup.invalidate(digests, ids);
  // Replicas sharing `bus` hear each other's invalidations, as over Redis pub/sub.
  void bus.subscribe((m) => {
    lookup.invalidate(m.digests, m.ids);
    if (m.prefixes?.length) foreign.add(m.prefixes);
  });
  const foreign = new ForeignKeys(prefixes);
  const keys = new KeyManager({
    store: counted.store,
    bus,
    digest,
    clock,
    invalidateLocal,
    foreign,
  });
  const migrator = new ForeignKeyMigrator({
    store: counted.store,
    digest,
    bus,
    clock,
    invalidateLocal,
    log: createLogger("silent"),
  });
  const importer = new KeyImporter({
    store: counted.store,
    prefixes,
    foreign,
    bus,
    clock,
    digest,
    invalidateLocal,
    log: createLogger("silent"),
  });
  const authorizer = new Authorizer({
    lookup,
    digest,
    clock,
    expiryWarningMs: 60_000,
    rotationAgeMs: 0,
    failMode: () => "closed",
    staleKeyMaxMs: 0,
    foreign: {
      recognises: (secret) => foreign.recognises(secret),
      used: (record, foreignDigest, secret) => migrator.schedule(record.id, foreignDigest, secret),
    },
  });
  return {
    keys,
    authorizer,
    importer,
    foreign,
    migrator,
    storeCalls: counted.calls,
    digestOf: digest,
    newKey: (over = {}) => ({
      owner: "acme",
      tier: "pro",
      scopes: ["orders:read"],
      metadata: { team: "payments" },
      ipAllow: [],
      ipDeny: [],
      environment: "test",
      ...over,
    }),
    authorize: (secret, o = {}) =>
      authorizer.authorize({
        secret,
        endpoint: matchEndpoint(POLICY, o.method ?? "GET", o.path ?? "/v1/orders"),
        clientIp: normaliseIp(o.ip ?? "127.0.0.1"),
        requiredScopes: o.scopes ?? [],
      }),
  };
}

/** A stored record with every field set; ids sort in the order given. */
function record(id: string, over: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id,
    owner: "acme",
    tier: "free",
    scopes: ["orders:read", "orders:*"],
    metadata: { team: "payments", "cost-centre": "42" },
    status: "active",
    environment: "live",
    createdAt: 1_767_225_600_000,
    updatedAt: 1_767_225_600_000,
    ipAllow: ["10.0.0.0/8"],
    ipDeny: ["10.9.0.0/16"],
    digest: `digest-of-${id}`,
    secretCreatedAt: 1_767_225_600_000,
    version: 1,
    ...over,
  };
}

function rotated(r: Rotation | string): Rotation {
  if (typeof r === "string") throw new Error(`rotation failed: ${r}`);
  return r;
}

function ids(records: readonly KeyRecord[]): string[] {
  return records.map((r) => r.id);
}

/** Registers every case for one store; `factory` gives a fresh fixture per case. */
export function keyStoreConformance(name: string, factory: KeyStoreFactory): void {
  describe(`${name}`, () => {
    let f: KeyStoreFixture;
    beforeEach(async () => {
      f = await factory();
    });
    afterEach(async () => {
      await f?.cleanup();
    });

    describe("key store", () => {
      it("returns a created record unchanged and finds it by its digest", async () => {
        const r = record("key_a", {
          expiresAt: 1_800_000_000_000,
          graceDigest: "older",
          graceEndsAt: 1_767_225_700_000,
        });
        expect(await f.store.create(r)).toBe(true);
        expect(await f.store.get("key_a")).toEqual(r);
        expect(await f.store.findIdByDigest("digest-of-key_a")).toBe("key_a");
        expect(await f.store.get("key_missing")).toBeUndefined();
        expect(await f.store.findIdByDigest("digest-nobody-has")).toBeUndefined();
      });

      it("hands out copies: changing a returned record does not change the stored one", async () => {
        await f.store.create(record("key_a"));
        const got = (await f.store.get("key_a")) as KeyRecord;
        got.scopes.push("admin:*");
        got.owner = "mallory";
        expect(await f.store.get("key_a")).toEqual(record("key_a"));
      });

      it("refuses a second key with the same id, leaving the first and indexing nothing", async () => {
        expect(await f.store.create(record("key_a"))).toBe(true);
        const dup = record("key_a", { owner: "other", digest: "digest-of-the-duplicate" });
        expect(await f.store.create(dup)).toBe(false);
        expect(await f.store.get("key_a")).toEqual(record("key_a"));
        expect(await f.store.findIdByDigest("digest-of-the-duplicate")).toBeUndefined();
        expect(await f.store.findIdByDigest("digest-of-key_a")).toBe("key_a");
      });

      it("refuses a second key with the same digest, creating nothing", async () => {
        expect(await f.store.create(record("key_a"))).toBe(true);
        expect(await f.store.create(record("key_b", { digest: "digest-of-key_a" }))).toBe(false);
        expect(await f.store.get("key_b")).toBeUndefined();
        expect(await f.store.findIdByDigest("digest-of-key_a")).toBe("key_a");
        const page = await f.store.list({ limit: 10, includeRevoked: true });
        expect(ids(page.records)).toEqual(["key_a"]);
      });

      it("refuses a digest that is only indexed (a grace-period secret) as well", async () => {
        await f.store.create(record("key_a"));
        await f.store.indexDigest("grace-digest", "key_a", f.clock.now() + LONG_MS);
        expect(await f.store.create(record("key_b", { digest: "grace-digest" }))).toBe(false);
        expect(await f.store.get("key_b")).toBeUndefined();
      });

      it("finds an id by any digest indexed to it", async () => {
        await f.store.create(record("key_a"));
        await f.store.create(record("key_b"));
        await f.store.indexDigest("second-digest-of-a", "key_a");
        expect(await f.store.findIdByDigest("second-digest-of-a")).toBe("key_a");
        expect(await f.store.findIdByDigest("digest-of-key_b")).toBe("key_b");
        // Re-indexing moves the digest.
        await f.store.indexDigest("second-digest-of-a", "key_b");
        expect(await f.store.findIdByDigest("second-digest-of-a")).toBe("key_b");
      });

      it("replaces a record only at the expected version (compare and set)", async () => {
        const r = record("key_a");
        await f.store.create(r);
        expect(await f.store.replace({ ...r, owner: "wrong", version: 3 }, 2)).toBe(false);
        expect(await f.store.replace({ ...r, owner: "wrong", version: 1 }, 0)).toBe(false);
        expect(await f.store.get("key_a")).toEqual(r);

        const v2 = { ...r, owner: "globex", scopes: ["billing:*"], version: 2 };
        expect(await f.store.replace(v2, 1)).toBe(true);
        expect(await f.store.get("key_a")).toEqual(v2);

        // The loser of a race still holds version 1: it must fail, not overwrite.
        expect(await f.store.replace({ ...r, owner: "late", version: 2 }, 1)).toBe(false);
        expect(await f.store.get("key_a")).toEqual(v2);
        expect(await f.store.replace({ ...v2, tier: "pro", version: 3 }, 2)).toBe(true);
        expect((await f.store.get("key_a"))?.tier).toBe("pro");
      });

      it("does not create a record by replacing a missing one", async () => {
        expect(await f.store.replace(record("key_ghost", { version: 2 }), 1)).toBe(false);
        expect(await f.store.get("key_ghost")).toBeUndefined();
      });

      it("forgets a digest indexed with an expiry once the expiry passes", async () => {
        await f.store.create(record("key_a"));
        await f.store.indexDigest("expiring-digest", "key_a", f.clock.now() + SHORT_MS);
        await f.store.indexDigest("lasting-digest", "key_a");
        expect(await f.store.findIdByDigest("expiring-digest")).toBe("key_a");
        await f.clock.advance(PAST_SHORT_MS);
        expect(await f.store.findIdByDigest("expiring-digest")).toBeUndefined();
        expect(await f.store.findIdByDigest("lasting-digest")).toBe("key_a");
        expect(await f.store.findIdByDigest("digest-of-key_a")).toBe("key_a");
        // An expired index entry does not block a new key with that digest.
        expect(await f.store.create(record("key_b", { digest: "expiring-digest" }))).toBe(true);
      });

      it("treats an expiry already in the past as gone at once", async () => {
        await f.store.create(record("key_a"));
        await f.store.indexDigest("stale-digest", "key_a", f.clock.now() - 1000);
        expect(await f.store.findIdByDigest("stale-digest")).toBeUndefined();
      });

      it("drops an earlier expiry when a digest is re-indexed without one", async () => {
        await f.store.create(record("key_a"));
        await f.store.indexDigest("d", "key_a", f.clock.now() + SHORT_MS);
        await f.store.indexDigest("d", "key_a");
        await f.clock.advance(PAST_SHORT_MS);
        expect(await f.store.findIdByDigest("d")).toBe("key_a");
      });

      it("unindexes a digest and leaves the record alone", async () => {
        await f.store.create(record("key_a"));
        await f.store.unindexDigest("digest-of-key_a");
        expect(await f.store.findIdByDigest("digest-of-key_a")).toBeUndefined();
        expect(await f.store.get("key_a")).toEqual(record("key_a"));
        await f.store.unindexDigest("never-indexed"); // a no-op, not an error
      });

      it("lists nothing from an empty store, without a cursor", async () => {
        expect(await f.store.list({ limit: 10, includeRevoked: true })).toEqual({ records: [] });
      });

      it("lists keys ordered by id, whatever the order they were created in", async () => {
        for (const id of ["key_d", "key_a", "key_c", "key_e", "key_b"]) {
          await f.store.create(record(id));
        }
        const page = await f.store.list({ limit: 10, includeRevoked: false });
        expect(ids(page.records)).toEqual(["key_a", "key_b", "key_c", "key_d", "key_e"]);
        expect(page.next).toBeUndefined();
        expect(page.records[2]).toEqual(record("key_c"));
      });

      it("pages by limit with a cursor, and the last page has no cursor", async () => {
        for (const id of ["key_e", "key_d", "key_c", "key_b", "key_a"]) {
          await f.store.create(record(id));
        }
        const p1 = await f.store.list({ limit: 2, includeRevoked: false });
        expect(ids(p1.records)).toEqual(["key_a", "key_b"]);
        expect(p1.next).toBe("key_b");
        const p2 = await f.store.list({ limit: 2, includeRevoked: false, after: p1.next });
        expect(ids(p2.records)).toEqual(["key_c", "key_d"]);
        expect(p2.next).toBe("key_d");
        const p3 = await f.store.list({ limit: 2, includeRevoked: false, after: p2.next });
        expect(ids(p3.records)).toEqual(["key_e"]);
        expect(p3.next).toBeUndefined();
        // A page that ends exactly at the last key is the last page.
        const whole = await f.store.list({ limit: 5, includeRevoked: false });
        expect(ids(whole.records)).toHaveLength(5);
        expect(whole.next).toBeUndefined();
        // A cursor need not be an existing id: paging resumes after it.
        const mid = await f.store.list({ limit: 10, includeRevoked: false, after: "key_bb" });
        expect(ids(mid.records)).toEqual(["key_c", "key_d", "key_e"]);
        const beyond = await f.store.list({ limit: 10, includeRevoked: false, after: "key_z" });
        expect(beyond.records).toEqual([]);
        expect(beyond.next).toBeUndefined();
      });

      it("filters by owner and hides revoked keys unless asked for them", async () => {
        await f.store.create(record("key_a", { owner: "acme" }));
        await f.store.create(record("key_b", { owner: "globex" }));
        await f.store.create(record("key_c", { owner: "acme", status: "revoked" }));
        await f.store.create(record("key_d", { owner: "acme" }));
        await f.store.create(record("key_e", { owner: "globex", status: "revoked" }));
        await f.store.create(record("key_f", { owner: "acme" }));

        const active = await f.store.list({ limit: 10, includeRevoked: false });
        expect(ids(active.records)).toEqual(["key_a", "key_b", "key_d", "key_f"]);
        const all = await f.store.list({ limit: 10, includeRevoked: true });
        expect(ids(all.records)).toEqual(["key_a", "key_b", "key_c", "key_d", "key_e", "key_f"]);
        const acme = await f.store.list({ limit: 10, owner: "acme", includeRevoked: false });
        expect(ids(acme.records)).toEqual(["key_a", "key_d", "key_f"]);
        const acmeAll = await f.store.list({ limit: 10, owner: "acme", includeRevoked: true });
        expect(ids(acmeAll.records)).toEqual(["key_a", "key_c", "key_d", "key_f"]);
        expect(
          (await f.store.list({ limit: 10, owner: "nobody", includeRevoked: true })).records,
        ).toEqual([]);

        // Filtered paging visits every match once, in order, in pages of at most `limit`.
        const seen: string[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const p = await f.store.list({ limit: 2, owner: "acme", includeRevoked: true, after });
          expect(p.records.length).toBeLessThanOrEqual(2);
          seen.push(...ids(p.records));
          if (p.next === undefined) break;
          expect(p.next > (after ?? "")).toBe(true);
          after = p.next;
        }
        expect(seen).toEqual(["key_a", "key_c", "key_d", "key_f"]);
      });
    });

    describe("keys domain over the store", () => {
      let d: KeyDomain;
      beforeEach(() => {
        d = createKeyDomain(f.store, f.clock, f.prefixes);
      });

      it("authorizes a new key's secret with its identity, never its secret", async () => {
        const { secret, record: r } = await d.keys.create(
          d.newKey({ metadata: { team: "payments", region: "eu" } }),
        );
        expect(secret).toMatch(/^tg_test_[0-9A-Za-z]{30}$/);
        expect(JSON.stringify(await f.store.get(r.id))).not.toContain(secret);
        const ok = await d.authorize(secret);
        expect(ok).toMatchObject({ allowed: true, reason: "OK", httpStatus: 200 });
        expect(ok.missingScopes).toEqual([]);
        expect(ok.endpoint?.name).toBe("orders");
        expect(ok.record).toMatchObject({
          id: r.id,
          owner: "acme",
          tier: "pro",
          scopes: ["orders:read"],
          metadata: { team: "payments", region: "eu" },
          status: "active",
        });
        expect(ok.hints).toMatchObject({ inGracePeriod: false, expiresSoon: false });
        expect(await f.store.get(r.id)).toEqual(r);
      });

      it("answers UNKNOWN_KEY for a well-formed secret nobody was given, and remembers it", async () => {
        const stranger = generateSecret("test");
        const before = d.storeCalls();
        expect(await d.authorize(stranger)).toMatchObject({
          allowed: false,
          reason: "UNKNOWN_KEY",
          httpStatus: 401,
        });
        expect(d.storeCalls()).toBeGreaterThan(before);
        const afterFirst = d.storeCalls();
        expect((await d.authorize(stranger)).reason).toBe("UNKNOWN_KEY");
        expect(d.storeCalls()).toBe(afterFirst); // negative cache
      });

      it("denies a malformed key without a single store call", async () => {
        const { secret } = await d.keys.create(d.newKey());
        const last = secret.at(-1) === "A" ? "B" : "A";
        const inner = secret[12] === "x" ? "y" : "x";
        const malformed = [
          secret.slice(0, -1) + last, // checksum character changed
          secret.slice(0, 12) + inner + secret.slice(13), // random part changed
          secret.slice(0, -1), // one character short
          `${secret}A`, // one character long
          secret.replace(/^tg_/, "tk_"), // wrong prefix
          secret.replace("_test_", "_TEST_"), // environment out of alphabet
          `${secret.slice(0, 20)}-${secret.slice(21)}`, // character out of alphabet
          ` ${secret}`,
          `tg_test_${"A".repeat(10_000)}`, // far too long
        ];
        const before = d.storeCalls();
        for (const bad of malformed) {
          expect(await d.authorize(bad), bad.slice(0, 40)).toMatchObject({
            allowed: false,
            reason: "MALFORMED_KEY",
            httpStatus: 401,
          });
        }
        expect(await d.authorize("")).toMatchObject({ reason: "MISSING_KEY", httpStatus: 401 });
        expect(await d.keys.rotateBySecret(malformed[0] as string, 0)).toBe("INVALID_SECRET");
        expect(d.storeCalls()).toBe(before);
        expect((await d.authorize(secret)).allowed).toBe(true);
      });

      it("denies a revoked key at once, for good, though its lookup was cached", async () => {
        const { secret, record: r } = await d.keys.create(d.newKey());
        expect((await d.authorize(secret)).allowed).toBe(true);
        const t0 = f.clock.now();
        const revoked = await d.keys.revoke(r.id, "leaked in a log");
        expect(revoked).toMatchObject({
          changed: true,
          record: { status: "revoked", revokeReason: "leaked in a log", version: 2 },
        });
        const revokedAt = (revoked as { record: KeyRecord }).record.revokedAt as number;
        expect(revokedAt).toBeGreaterThanOrEqual(t0);
        expect(revokedAt).toBeLessThanOrEqual(f.clock.now());
        expect(await d.authorize(secret)).toMatchObject({
          allowed: false,
          reason: "REVOKED_KEY",
          httpStatus: 401,
        });
        expect((await f.store.get(r.id))?.status).toBe("revoked");
        // Revoking again changes nothing (first reason and time kept); nothing brings the key back.
        expect(await d.keys.revoke(r.id, "again")).toMatchObject({
          changed: false,
          record: { version: 2, revokeReason: "leaked in a log", revokedAt },
        });
        expect((await f.store.get(r.id))?.revokeReason).toBe("leaked in a log");
        expect(await d.keys.update(r.id, { scopes: ["*"] })).toBe("REVOKED");
        expect(await d.keys.rotateById(r.id, 0)).toBe("REVOKED");
        expect(await d.keys.rotateBySecret(secret, 0)).toBe("INVALID_SECRET");
        expect((await d.authorize(secret)).reason).toBe("REVOKED_KEY");
        expect(await d.keys.revoke("key_missing", "x")).toBe("NOT_FOUND");
      });

      it("keeps the old secret valid through a rotation's grace period, then refuses it", async () => {
        const { secret: old, record: r } = await d.keys.create(d.newKey());
        expect((await d.authorize(old)).allowed).toBe(true);
        const rot = rotated(await d.keys.rotateById(r.id, SHORT_MS));
        expect(rot.secret).not.toBe(old);
        expect(rot.graceEndsAt).toBe(rot.record.graceEndsAt);

        const current = await d.authorize(rot.secret);
        expect(current).toMatchObject({ allowed: true, reason: "OK" });
        expect(current.record?.id).toBe(r.id);
        expect(current.hints?.inGracePeriod).toBe(false);
        const during = await d.authorize(old);
        expect(during).toMatchObject({ allowed: true, reason: "OK" });
        expect(during.record?.id).toBe(r.id);
        expect(during.hints).toMatchObject({
          inGracePeriod: true,
          rotationDue: true,
          graceEndsAt: rot.graceEndsAt,
        });
        expect(await f.store.findIdByDigest(d.digestOf(old))).toBe(r.id);

        await f.clock.advance(PAST_SHORT_MS);
        expect(await d.authorize(old)).toMatchObject({
          allowed: false,
          reason: "UNKNOWN_KEY",
          httpStatus: 401,
        });
        expect(await f.store.findIdByDigest(d.digestOf(old))).toBeUndefined();
        expect((await d.authorize(rot.secret)).allowed).toBe(true);
        expect(await f.store.get(r.id)).toMatchObject({
          digest: d.digestOf(rot.secret),
          graceDigest: d.digestOf(old),
          version: 2,
        });
      });

      it("ends the old secret at once when rotating with no grace period", async () => {
        const { secret: old, record: r } = await d.keys.create(d.newKey());
        expect((await d.authorize(old)).allowed).toBe(true); // cached
        const rot = rotated(await d.keys.rotateById(r.id, 0));
        expect(await d.authorize(old)).toMatchObject({ allowed: false, reason: "UNKNOWN_KEY" });
        expect((await d.authorize(rot.secret)).allowed).toBe(true);
        expect(await f.store.findIdByDigest(d.digestOf(old))).toBeUndefined();
        const stored = await f.store.get(r.id);
        expect(stored?.graceDigest).toBeUndefined();
        expect(stored?.graceEndsAt).toBeUndefined();
      });

      it("a second rotation during a grace period ends the oldest secret and keeps the previous one", async () => {
        const { secret: s1, record: r } = await d.keys.create(d.newKey());
        const s2 = rotated(await d.keys.rotateById(r.id, LONG_MS)).secret;
        expect((await d.authorize(s1)).allowed).toBe(true);
        expect((await d.authorize(s2)).allowed).toBe(true);

        const third = rotated(await d.keys.rotateById(r.id, SHORT_MS));
        const s3 = third.secret;
        expect(await d.authorize(s1)).toMatchObject({ allowed: false, reason: "UNKNOWN_KEY" });
        expect(await f.store.findIdByDigest(d.digestOf(s1))).toBeUndefined();
        const previous = await d.authorize(s2);
        expect(previous).toMatchObject({ allowed: true, reason: "OK" });
        expect(previous.hints?.inGracePeriod).toBe(true);
        expect((await d.authorize(s3)).allowed).toBe(true);
        expect(third.record).toMatchObject({
          digest: d.digestOf(s3),
          graceDigest: d.digestOf(s2),
          version: 3,
        });

        // The previous secret's grace is the new rotation's, not the first one's.
        await f.clock.advance(PAST_SHORT_MS);
        expect((await d.authorize(s2)).reason).toBe("UNKNOWN_KEY");
        expect((await d.authorize(s3)).allowed).toBe(true);
      });

      it("self-rotates only with the current secret, never with a grace-period secret", async () => {
        const { secret: s1, record: r } = await d.keys.create(d.newKey());
        const a = rotated(await d.keys.rotateBySecret(s1, LONG_MS));
        expect(a.record.id).toBe(r.id);
        // s1 still authorizes (grace) but cannot take the key over.
        expect((await d.authorize(s1)).allowed).toBe(true);
        expect(await d.keys.rotateBySecret(s1, LONG_MS)).toBe("INVALID_SECRET");
        expect((await f.store.get(r.id))?.version).toBe(2);
        expect(await d.keys.rotateBySecret(generateSecret("test"), 0)).toBe("INVALID_SECRET");

        const b = rotated(await d.keys.rotateBySecret(a.secret, 0));
        expect(b.record.version).toBe(3);
        expect((await d.authorize(b.secret)).allowed).toBe(true);
        expect((await d.authorize(a.secret)).reason).toBe("UNKNOWN_KEY");
        expect((await d.authorize(s1)).reason).toBe("UNKNOWN_KEY");
      });

      it("lets one secret self-rotate only once, even when two rotations race", async () => {
        const { secret, record: r } = await d.keys.create(d.newKey());
        const results = await Promise.all([
          d.keys.rotateBySecret(secret, LONG_MS),
          d.keys.rotateBySecret(secret, LONG_MS),
        ]);
        const won = results.filter((x): x is Rotation => typeof x === "object");
        expect(won).toHaveLength(1);
        expect(results.filter((x) => x === "INVALID_SECRET")).toHaveLength(1);
        const stored = await f.store.get(r.id);
        expect(stored).toMatchObject({
          version: 2,
          digest: d.digestOf(won[0]?.secret as string),
          graceDigest: d.digestOf(secret),
        });
      });

      it("refuses a self-rotation whose secret stopped being current while it ran", async () => {
        const { secret, record: r } = await d.keys.create(d.newKey());
        // A management rotation lands between the secret's check and the change.
        const [bySecret, byId] = await Promise.all([
          d.keys.rotateBySecret(secret, LONG_MS),
          d.keys.rotateById(r.id, LONG_MS),
        ]);
        const stored = (await f.store.get(r.id)) as KeyRecord;
        if (typeof bySecret === "object") {
          // It went first: the management rotation came after it.
          expect(stored.graceDigest).toBe(d.digestOf(bySecret.secret));
        } else {
          expect(bySecret).toBe("INVALID_SECRET");
        }
        expect(stored.digest).toBe(d.digestOf(rotated(byId).secret));
      });

      it("refuses to rotate an unknown id", async () => {
        expect(await d.keys.rotateById("key_missing", 0)).toBe("NOT_FOUND");
        expect(await d.keys.update("key_missing", { tier: "free" })).toBe("NOT_FOUND");
      });

      it("applies an update to the very next decision (the cached lookup is invalidated)", async () => {
        const { secret, record: r } = await d.keys.create(d.newKey({ scopes: ["billing:read"] }));
        const denied = await d.authorize(secret);
        expect(denied).toMatchObject({
          allowed: false,
          reason: "INSUFFICIENT_SCOPE",
          httpStatus: 403,
          missingScopes: ["orders:read"],
        });
        expect(denied.record?.id).toBe(r.id);

        const updated = await d.keys.update(r.id, { scopes: ["orders:*"], tier: "free" });
        expect(updated).toMatchObject({ scopes: ["orders:*"], tier: "free", version: 2 });
        const allowed = await d.authorize(secret);
        expect(allowed).toMatchObject({ allowed: true, reason: "OK" });
        expect(allowed.record).toMatchObject({ scopes: ["orders:*"], tier: "free" });

        // Taking a scope away is just as immediate.
        await d.keys.update(r.id, { scopes: [] });
        expect((await d.authorize(secret)).reason).toBe("INSUFFICIENT_SCOPE");
        expect(await f.store.get(r.id)).toMatchObject({ scopes: [], version: 3 });
      });

      it("lands concurrent updates of one key one after the other (compare and set)", async () => {
        const { record: r } = await d.keys.create(d.newKey());
        const [a, b] = await Promise.all([
          d.keys.update(r.id, { tier: "free" }),
          d.keys.update(r.id, { metadata: { team: "risk" } }),
        ]);
        expect(typeof a).toBe("object");
        expect(typeof b).toBe("object");
        expect(await f.store.get(r.id)).toMatchObject({
          tier: "free",
          metadata: { team: "risk" },
          version: 3,
        });
      });

      it("denies an expired key with EXPIRED_KEY, and warns before it expires", async () => {
        const expiresAt = f.clock.now() + SHORT_MS;
        const { secret, record: r } = await d.keys.create(d.newKey({ expiresAt }));
        const before = await d.authorize(secret);
        expect(before).toMatchObject({ allowed: true, reason: "OK" });
        expect(before.hints).toMatchObject({ expiresSoon: true, expiresAt });
        await f.clock.advance(PAST_SHORT_MS);
        expect(await d.authorize(secret)).toMatchObject({
          allowed: false,
          reason: "EXPIRED_KEY",
          httpStatus: 401,
        });
        expect(await d.keys.rotateBySecret(secret, 0)).toBe("INVALID_SECRET");
        // Lifting the expiry brings it back (an update, not a revocation).
        await d.keys.update(r.id, { expiresAt: null });
        expect((await d.authorize(secret)).allowed).toBe(true);
        expect((await f.store.get(r.id))?.expiresAt).toBeUndefined();
      });

      it("applies IPv4 and IPv6 allow and deny lists: deny wins, mapped IPv4 counts as IPv4", async () => {
        const { secret } = await d.keys.create(
          d.newKey({
            ipAllow: ["10.0.0.0/8", "2001:db8::/32"],
            ipDeny: ["10.9.0.0/16", "2001:db8:bad::/48"],
          }),
        );
        const permitted = ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::7", "2001:DB8:1::1"];
        const refused = [
          "10.9.1.1", // denied subnet inside the allowed one
          "::ffff:10.9.1.1", // the same, IPv4-mapped
          "::FFFF:10.9.0.1",
          "192.168.1.1", // outside every allow entry
          "::ffff:192.168.1.1",
          "2001:db8:bad::1", // denied IPv6 subnet
          "2001:db9::1",
          "::1",
          "",
          "not-an-ip",
        ];
        for (const ip of permitted) {
          expect((await d.authorize(secret, { ip })).reason, ip).toBe("OK");
        }
        for (const ip of refused) {
          const dec = await d.authorize(secret, { ip });
          expect(dec, ip).toMatchObject({ allowed: false, reason: "IP_DENIED", httpStatus: 403 });
          expect(dec.record?.owner).toBe("acme");
        }
      });

      it("refuses only the denied addresses when a key has a deny list alone", async () => {
        const { secret } = await d.keys.create(
          d.newKey({ ipDeny: ["203.0.113.0/24", "2001:db8::/32"] }),
        );
        expect((await d.authorize(secret, { ip: "198.51.100.7" })).allowed).toBe(true);
        expect((await d.authorize(secret, { ip: "2001:db9::1" })).allowed).toBe(true);
        expect((await d.authorize(secret, { ip: "203.0.113.9" })).reason).toBe("IP_DENIED");
        expect((await d.authorize(secret, { ip: "::ffff:203.0.113.9" })).reason).toBe("IP_DENIED");
        expect((await d.authorize(secret, { ip: "2001:db8::1" })).reason).toBe("IP_DENIED");
      });

      it("needs the endpoint's scopes and the request's, and names the missing ones", async () => {
        const { secret } = await d.keys.create(d.newKey({ scopes: ["orders:read", "billing:*"] }));
        expect((await d.authorize(secret)).allowed).toBe(true);
        const refund = await d.authorize(secret, {
          method: "POST",
          path: "/v1/orders/o-17/refunds",
        });
        expect(refund).toMatchObject({
          allowed: false,
          reason: "INSUFFICIENT_SCOPE",
          httpStatus: 403,
          missingScopes: ["orders:write"],
        });
        expect(refund.endpoint?.name).toBe("refunds");
        const extra = await d.authorize(secret, { scopes: ["orders:write", "admin", "billing:x"] });
        expect(extra.missingScopes).toEqual(["orders:write", "admin"]);
        // No endpoint matched: only the request's scopes count.
        expect((await d.authorize(secret, { path: "/v2/other" })).allowed).toBe(true);
      });
    });
  });
}
