/**
 * One set of key-store and key-lifecycle cases, run against every KeyStore:
 * the embedded store, standalone Redis and a real Redis Cluster. The lifecycle
 * cases drive the real KeyManager, KeyLookup and Authorizer over the store.
 */
import { describe, expect, it } from "vitest";
import { Authorizer } from "../../src/keys/authorizer.js";
import { KeyCache } from "../../src/keys/key-cache.js";
import { KeyLookup } from "../../src/keys/key-lookup.js";
import { KeyManager, type NewKey } from "../../src/keys/key-manager.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { createSecretDigester } from "../../src/keys/secret-digest.js";
import { parsePolicy } from "../../src/policy/policy.js";
import { MemoryInvalidationBus } from "../../src/store/invalidation-bus.js";
import type { KeyStore } from "../../src/store/key-store.js";
import type { Clock } from "../../src/util/clock.js";

/** What a backend provides to the cases. */
export interface KeysHarness {
  store: KeyStore;
  clock: Clock;
  /** Moves time forward: a manual clock, or a real sleep. */
  wait(ms: number): Promise<void>;
}

const policy = parsePolicy(
  `version: 1
default_tier: free
tiers: { free: {}, pro: {} }
endpoints:
  - { name: orders, method: GET, path: /v1/orders, scopes: [orders:read] }
`,
  "test policy",
);

let seq = 0;
function record(over: Partial<KeyRecord> = {}): KeyRecord {
  seq++;
  const id = `key_${String(seq).padStart(16, "0")}`;
  return {
    id,
    owner: "acme",
    tier: "free",
    scopes: ["orders:read"],
    metadata: {},
    status: "active",
    environment: "live",
    createdAt: 1,
    updatedAt: 1,
    ipAllow: [],
    ipDeny: [],
    digest: `digest-${seq}-${Math.random()}`,
    secretCreatedAt: 1,
    version: 1,
    ...over,
  };
}

/** A store wrapped to count calls: still the real store underneath. */
function counted(store: KeyStore): { store: KeyStore; calls: () => number } {
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

function lifecycle(h: KeysHarness, cacheTtlMs = 0) {
  const digest = createSecretDigester(Buffer.from("conformance-pepper-0123456789"));
  const c = counted(h.store);
  const cache = new KeyCache({ ttlMs: cacheTtlMs, negativeTtlMs: cacheTtlMs });
  const lookup = new KeyLookup(c.store, cache, h.clock);
  const bus = new MemoryInvalidationBus();
  const keys = new KeyManager({
    store: c.store,
    bus,
    digest,
    clock: h.clock,
    invalidateLocal: (d, ids) => lookup.invalidate(d, ids),
  });
  const authorizer = new Authorizer({
    lookup,
    digest,
    clock: h.clock,
    policy: () => policy,
    expiryWarningMs: 7 * 86_400_000,
    rotationAgeMs: 0,
    failMode: () => "closed",
    staleKeyMaxMs: 0,
  });
  const authorize = (secret: string, o: { ip?: string; scopes?: string[]; path?: string } = {}) =>
    authorizer.authorize({
      secret,
      method: "GET",
      normalisedPath: o.path ?? "/v1/orders",
      endpointName: "",
      clientIp: o.ip ?? "",
      requiredScopes: o.scopes ?? [],
    });
  const newKey = (over: Partial<NewKey> = {}): NewKey => ({
    owner: "acme",
    tier: "free",
    scopes: ["orders:read"],
    metadata: { team: "web" },
    ipAllow: [],
    ipDeny: [],
    environment: "live",
    ...over,
  });
  return { keys, authorize, newKey, storeCalls: c.calls, lookup };
}

/** Registers the cases for one backend; `setup` gives a fresh harness per case. */
export function keysConformance(name: string, setup: () => KeysHarness) {
  describe(`${name}: key store`, () => {
    it("stores a record and its digest index, and reads them back", async () => {
      const h = setup();
      const r = record();
      expect(await h.store.create(r)).toBe(true);
      expect(await h.store.get(r.id)).toEqual(r);
      expect(await h.store.findIdByDigest(r.digest)).toBe(r.id);
      expect(await h.store.get("key_doesnotexist00")).toBeUndefined();
      expect(await h.store.findIdByDigest("no-such-digest")).toBeUndefined();
    });

    it("refuses a duplicate id or a duplicate digest", async () => {
      const h = setup();
      const r = record();
      expect(await h.store.create(r)).toBe(true);
      expect(await h.store.create({ ...record(), id: r.id })).toBe(false);
      expect(await h.store.create({ ...record(), digest: r.digest })).toBe(false);
    });

    it("replaces only at the expected version (compare and set)", async () => {
      const h = setup();
      const r = record();
      await h.store.create(r);
      expect(await h.store.replace({ ...r, owner: "x", version: 2 }, 5)).toBe(false);
      expect((await h.store.get(r.id))?.owner).toBe("acme");
      expect(await h.store.replace({ ...r, owner: "globex", version: 2 }, 1)).toBe(true);
      expect(await h.store.get(r.id)).toMatchObject({ owner: "globex", version: 2 });
      expect(await h.store.replace({ ...r, owner: "late", version: 2 }, 1)).toBe(false);
    });

    it("indexes a digest with an expiry that actually expires, and unindexes", async () => {
      const h = setup();
      const r = record();
      await h.store.create(r);
      await h.store.indexDigest("temp-digest", r.id, h.clock.now() + 300);
      expect(await h.store.findIdByDigest("temp-digest")).toBe(r.id);
      await h.wait(450);
      expect(await h.store.findIdByDigest("temp-digest")).toBeUndefined();
      await h.store.unindexDigest(r.digest);
      expect(await h.store.findIdByDigest(r.digest)).toBeUndefined();
    });

    it("lists by id in pages, filtered by owner, hiding revoked keys unless asked", async () => {
      const h = setup();
      const mine = [
        record({ owner: "page-owner" }),
        record({ owner: "page-owner" }),
        record({ owner: "page-owner" }),
      ];
      const revoked = record({ owner: "page-owner", status: "revoked" });
      for (const r of [...mine, revoked, record({ owner: "someone-else" })])
        await h.store.create(r);
      const p1 = await h.store.list({ limit: 2, owner: "page-owner", includeRevoked: false });
      expect(p1.records.map((r) => r.id)).toEqual(mine.slice(0, 2).map((r) => r.id));
      expect(p1.next).toBe(mine[1]?.id);
      const p2 = await h.store.list({
        limit: 2,
        owner: "page-owner",
        includeRevoked: false,
        after: p1.next as string,
      });
      expect(p2.records.map((r) => r.id)).toEqual([mine[2]?.id]);
      const all = await h.store.list({ limit: 10, owner: "page-owner", includeRevoked: true });
      expect(all.records.map((r) => r.id)).toEqual([...mine, revoked].map((r) => r.id));
    });
  });

  describe(`${name}: key lifecycle`, () => {
    it("creates a key whose secret authorizes with its identity", async () => {
      const l = lifecycle(setup());
      const { secret, record: r } = await l.keys.create(l.newKey());
      expect(secret).toMatch(/^tg_live_[0-9A-Za-z]{30}$/);
      expect(JSON.stringify(r)).not.toContain(secret);
      const d = await l.authorize(secret);
      expect(d).toMatchObject({ allowed: true, reason: "OK", httpStatus: 200 });
      expect(d.record).toMatchObject({
        id: r.id,
        owner: "acme",
        tier: "free",
        metadata: { team: "web" },
      });
    });

    it("answers a malformed key without any store call, and an unknown one as UNKNOWN_KEY", async () => {
      const l = lifecycle(setup());
      const before = l.storeCalls();
      for (const bad of [
        "",
        "tg_live_short",
        "TG_LIVE_abcdefghijklmnopqrstuvwxyz0123",
        "x".repeat(300),
      ]) {
        const d = await l.authorize(bad);
        expect(d.reason).toBe(bad === "" ? "MISSING_KEY" : "MALFORMED_KEY");
        expect(d.httpStatus).toBe(401);
      }
      expect(l.storeCalls()).toBe(before);
      const { secret } = await l.keys.create(l.newKey());
      await l.keys.rotateById(
        (await l.keys.list({ limit: 1, includeRevoked: true })).records[0]?.id ?? "",
        0,
      );
      expect((await l.authorize(secret)).reason).toBe("UNKNOWN_KEY");
    });

    it("revocation takes effect at once and for good", async () => {
      const l = lifecycle(setup(), 60_000);
      const { secret, record: r } = await l.keys.create(l.newKey());
      expect((await l.authorize(secret)).allowed).toBe(true);
      const revoked = await l.keys.revoke(r.id, "leaked");
      expect(revoked).toMatchObject({ status: "revoked", revokeReason: "leaked" });
      expect(await l.authorize(secret)).toMatchObject({
        allowed: false,
        reason: "REVOKED_KEY",
        httpStatus: 401,
      });
      expect(await l.keys.update(r.id, { tier: "pro" })).toBe("REVOKED");
      expect(await l.keys.rotateById(r.id, 0)).toBe("REVOKED");
    });

    it("rotation keeps the old secret valid for its grace period, then refuses it", async () => {
      const h = setup();
      const l = lifecycle(h);
      const { secret: old, record: r } = await l.keys.create(l.newKey());
      const rot = await l.keys.rotateById(r.id, 400);
      if (typeof rot === "string") throw new Error(rot);
      expect(rot.secret).not.toBe(old);
      expect((await l.authorize(rot.secret)).allowed).toBe(true);
      const during = await l.authorize(old);
      expect(during.allowed).toBe(true);
      expect(during.hints).toMatchObject({ inGracePeriod: true, rotationDue: true });
      await h.wait(550);
      expect((await l.authorize(old)).reason).toBe("UNKNOWN_KEY");
      expect((await l.authorize(rot.secret)).allowed).toBe(true);
    });

    it("a zero grace period ends the old secret at once", async () => {
      const l = lifecycle(setup());
      const { secret: old, record: r } = await l.keys.create(l.newKey());
      const rot = await l.keys.rotateById(r.id, 0);
      if (typeof rot === "string") throw new Error(rot);
      expect((await l.authorize(old)).reason).toBe("UNKNOWN_KEY");
      expect((await l.authorize(rot.secret)).allowed).toBe(true);
    });

    it("a second rotation during a grace period ends the oldest secret and keeps the previous one", async () => {
      const l = lifecycle(setup());
      const { secret: s1, record: r } = await l.keys.create(l.newKey());
      const a = await l.keys.rotateById(r.id, 60_000);
      if (typeof a === "string") throw new Error(a);
      const b = await l.keys.rotateById(r.id, 60_000);
      if (typeof b === "string") throw new Error(b);
      expect((await l.authorize(s1)).reason).toBe("UNKNOWN_KEY");
      expect((await l.authorize(a.secret)).allowed).toBe(true);
      expect((await l.authorize(b.secret)).allowed).toBe(true);
    });

    it("self-rotation needs the current secret: the grace secret cannot rotate", async () => {
      const l = lifecycle(setup());
      const { secret: s1 } = await l.keys.create(l.newKey());
      const a = await l.keys.rotateBySecret(s1, 60_000);
      if (typeof a === "string") throw new Error(a);
      expect(await l.keys.rotateBySecret(s1, 60_000)).toBe("INVALID_SECRET");
      expect(await l.keys.rotateBySecret("tg_live_not-a-key", 0)).toBe("INVALID_SECRET");
      const b = await l.keys.rotateBySecret(a.secret, 0);
      expect(typeof b).toBe("object");
    });

    it("an update is seen by the next decision (cache invalidated)", async () => {
      const l = lifecycle(setup(), 60_000);
      const { secret, record: r } = await l.keys.create(l.newKey({ scopes: [] }));
      const denied = await l.authorize(secret);
      expect(denied).toMatchObject({
        allowed: false,
        reason: "INSUFFICIENT_SCOPE",
        httpStatus: 403,
      });
      expect(denied.missingScopes).toEqual(["orders:read"]);
      expect(denied.record?.id).toBe(r.id);
      await l.keys.update(r.id, { scopes: ["orders:*"] });
      expect((await l.authorize(secret)).allowed).toBe(true);
    });

    it("an expired key is EXPIRED_KEY; one expiring soon says so", async () => {
      const h = setup();
      const l = lifecycle(h);
      const { secret } = await l.keys.create(l.newKey({ expiresAt: h.clock.now() + 300 }));
      const soon = await l.authorize(secret);
      expect(soon.allowed).toBe(true);
      expect(soon.hints?.expiresSoon).toBe(true);
      await h.wait(450);
      expect(await l.authorize(secret)).toMatchObject({
        allowed: false,
        reason: "EXPIRED_KEY",
        httpStatus: 401,
      });
    });

    it("applies IPv4 and IPv6 allow and deny lists (deny wins, mapped IPv4 matches)", async () => {
      const l = lifecycle(setup());
      const { secret } = await l.keys.create(
        l.newKey({ ipAllow: ["10.0.0.0/8", "2001:db8::/32"], ipDeny: ["10.9.0.0/16"] }),
      );
      expect((await l.authorize(secret, { ip: "10.1.2.3" })).allowed).toBe(true);
      expect((await l.authorize(secret, { ip: "::ffff:10.1.2.3" })).allowed).toBe(true);
      expect((await l.authorize(secret, { ip: "2001:db8::7" })).allowed).toBe(true);
      expect(await l.authorize(secret, { ip: "10.9.1.1" })).toMatchObject({
        reason: "IP_DENIED",
        httpStatus: 403,
      });
      expect((await l.authorize(secret, { ip: "192.168.1.1" })).reason).toBe("IP_DENIED");
      expect((await l.authorize(secret, { ip: "" })).reason).toBe("IP_DENIED");
    });

    it("requires the endpoint's scopes plus the request's", async () => {
      const l = lifecycle(setup());
      const { secret } = await l.keys.create(l.newKey({ scopes: ["orders:read"] }));
      expect((await l.authorize(secret)).allowed).toBe(true);
      const d = await l.authorize(secret, { scopes: ["orders:write"] });
      expect(d.reason).toBe("INSUFFICIENT_SCOPE");
      expect(d.missingScopes).toEqual(["orders:write"]);
    });
  });
}
