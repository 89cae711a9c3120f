/**
 * Conformance cases of key export and import, on every KeyStore: a store's
 * keys exported (through the KeyExport wire format, binary) and imported into
 * an empty store behave exactly as before (rotation grace, revocation, IP
 * rules, expiry); importing again changes nothing; a conflicting record is
 * reported and left alone; a half-done import is completed by a retry; and
 * keys imported by a foreign SHA-256 digest authorize and move to the HMAC
 * digest on first use, safely when replicas race. Run by
 * test/integration/key-store-conformance.test.ts.
 */
import { createHash } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DigestAlgorithm,
  DigestEncoding,
  type KeyExport,
  KeyExportSchema,
} from "../../src/gen/tollgate/v1/key_export_pb.js";
import { foreignDigestOf } from "../../src/keys/foreign-keys.js";
import type { ImportItem } from "../../src/keys/key-import.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { exportRecord, importRecord } from "../../src/services/key-export-convert.js";
import { MemoryInvalidationBus } from "../../src/store/invalidation-bus.js";
import {
  createKeyDomain,
  type KeyDomain,
  type KeyStoreFactory,
  type KeyStoreFixture,
} from "./key-store-cases.js";

const LONG_MS = 3_600_000;
const OPTS = { dryRun: false, overwrite: false };

/** A secret as another system issues it (not in Tollgate's format). */
function foreignSecret(prefix = "sk_live_"): string {
  return prefix + createHash("sha256").update(String(Math.random())).digest("base64url");
}

/** Every record of a store, through ExportKeys' wire format. */
async function exportAll(d: KeyDomain): Promise<KeyExport[]> {
  const out: KeyExport[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await d.keys.list({ limit: 2, includeRevoked: true, after });
    for (const r of page.records) {
      out.push(fromBinary(KeyExportSchema, toBinary(KeyExportSchema, exportRecord(r))));
    }
    if (!page.next) return out;
    after = page.next;
  }
}

/** Export records as import items, checked as ImportKeys checks them. */
function items(d: KeyDomain, records: readonly KeyExport[], now: number): ImportItem[] {
  return records.map((m) => {
    const c = importRecord(m, {
      now,
      defaultTier: "free",
      tierExists: (t) => t === "free" || t === "pro",
      defaultEnvironment: "live",
      foreignKeyId: (digest) => d.importer.foreignKeyId(digest),
    });
    if (!("item" in c)) throw new Error(`invalid record: ${JSON.stringify(c.violations)}`);
    return c.item;
  });
}

/** A foreign import record as a migration from another system would send it. */
function foreignRecord(secret: string, base64 = false): KeyExport {
  const sha = createHash("sha256")
    .update(secret)
    .digest(base64 ? "base64" : "hex");
  return create(KeyExportSchema, {
    formatVersion: 1,
    key: { owner: "migrated-owner", tier: "pro", scopes: ["orders:read"], metadata: { from: "x" } },
    foreignDigest: {
      algorithm: DigestAlgorithm.SHA256,
      encoding: base64 ? DigestEncoding.BASE64 : DigestEncoding.UNSPECIFIED,
      value: sha,
    },
    foreignPrefix: "sk_live_",
  });
}

/** Registers the import cases for one store; `factory` gives a fresh fixture per call. */
export function keyImportConformance(name: string, factory: KeyStoreFactory): void {
  describe(`${name}: export and import`, () => {
    let f: KeyStoreFixture;
    let d: KeyDomain;
    const extra: KeyStoreFixture[] = [];
    beforeEach(async () => {
      f = await factory();
      d = createKeyDomain(f.store, f.clock, f.prefixes);
    });
    afterEach(async () => {
      await f?.cleanup();
      for (const x of extra.splice(0)) await x.cleanup();
    });

    /** An empty second store (the restore target) with its own domain, same pepper. */
    async function emptyStore(): Promise<{ fixture: KeyStoreFixture; domain: KeyDomain }> {
      const fixture = await factory();
      extra.push(fixture);
      return { fixture, domain: createKeyDomain(fixture.store, fixture.clock, fixture.prefixes) };
    }

    it("a store exported and imported into an empty one behaves exactly as before", async () => {
      const plain = await d.keys.create(d.newKey({ owner: "plain" }));
      const rotatedKey = await d.keys.create(d.newKey({ owner: "rotated" }));
      const rot = await d.keys.rotateById(rotatedKey.record.id, LONG_MS);
      if (typeof rot === "string") throw new Error(rot);
      const revoked = await d.keys.create(d.newKey({ owner: "revoked" }));
      await d.keys.revoke(revoked.record.id, "leaked in a log");
      const fenced = await d.keys.create(
        d.newKey({
          owner: "fenced",
          ipAllow: ["10.0.0.0/8"],
          ipDeny: ["10.9.0.0/16"],
          expiresAt: f.clock.now() + LONG_MS,
        }),
      );
      const exported = await exportAll(d);
      expect(exported).toHaveLength(4);
      const text = JSON.stringify(exported, (_k, v) => (typeof v === "bigint" ? String(v) : v));
      for (const s of [
        plain.secret,
        rot.secret,
        rotatedKey.secret,
        revoked.secret,
        fenced.secret,
      ]) {
        expect(text).not.toContain(s);
      }

      const { fixture: target, domain: t } = await emptyStore();
      const results = await t.importer.importBatch(items(t, exported, f.clock.now()), OPTS);
      expect(results.map((r) => r.outcome)).toEqual(["created", "created", "created", "created"]);
      for (const r of exported) {
        const id = r.key?.id as string;
        expect(await target.store.get(id)).toEqual(await f.store.get(id));
      }
      const allowed = await t.authorize(plain.secret);
      expect(allowed).toMatchObject({ allowed: true, record: { id: plain.record.id } });
      expect((await t.authorize(rot.secret)).record?.id).toBe(rotatedKey.record.id);
      const grace = await t.authorize(rotatedKey.secret);
      expect(grace).toMatchObject({ allowed: true, hints: { inGracePeriod: true } });
      expect(grace.hints?.graceEndsAt).toBe(rot.graceEndsAt);
      expect(await t.authorize(revoked.secret)).toMatchObject({
        allowed: false,
        reason: "REVOKED_KEY",
      });
      expect(await target.store.get(revoked.record.id)).toMatchObject({
        status: "revoked",
        revokeReason: "leaked in a log",
      });
      expect((await t.authorize(fenced.secret, { ip: "10.1.2.3" })).allowed).toBe(true);
      expect((await t.authorize(fenced.secret, { ip: "10.9.1.1" })).reason).toBe("IP_DENIED");
      // The grace digest's index entry expires when the grace period does.
      const graceId = await target.store.findIdByDigest(t.digestOf(rotatedKey.secret));
      expect(graceId).toBe(rotatedKey.record.id);
      // The restored keys are listed.
      const listed = await target.store.list({ limit: 10, includeRevoked: true });
      expect(listed.records).toHaveLength(4);
    });

    it("importing the same records again reports every one unchanged and changes nothing", async () => {
      await d.keys.create(d.newKey());
      const r2 = await d.keys.create(d.newKey({ owner: "b" }));
      await d.keys.rotateById(r2.record.id, LONG_MS);
      const exported = await exportAll(d);
      const before = await Promise.all(exported.map((m) => f.store.get(m.key?.id as string)));
      const again = await d.importer.importBatch(items(d, exported, f.clock.now()), OPTS);
      expect(again.map((r) => r.outcome)).toEqual(["unchanged", "unchanged"]);
      const after = await Promise.all(exported.map((m) => f.store.get(m.key?.id as string)));
      expect(after).toEqual(before);
    });

    it("reports a conflicting record and leaves the key alone; overwrite replaces it by compare-and-set", async () => {
      const { secret, record } = await d.keys.create(d.newKey({ owner: "acme" }));
      const [exported] = (await exportAll(d)) as [KeyExport];
      await d.keys.update(record.id, { owner: "globex", scopes: ["*"] });
      const changed = await f.store.get(record.id);

      const [conflict] = await d.importer.importBatch(items(d, [exported], f.clock.now()), OPTS);
      expect(conflict).toMatchObject({ id: record.id, outcome: "conflict" });
      // (update_time too, unless the update landed in the same millisecond)
      expect(conflict?.detail).toMatch(/^differs in: owner, scopes(, update_time)?$/);
      expect(await f.store.get(record.id)).toEqual(changed);

      const dry = await d.importer.importBatch(items(d, [exported], f.clock.now()), {
        dryRun: true,
        overwrite: true,
      });
      expect(dry[0]?.outcome).toBe("replaced");
      expect(await f.store.get(record.id)).toEqual(changed);

      const [replaced] = await d.importer.importBatch(items(d, [exported], f.clock.now()), {
        dryRun: false,
        overwrite: true,
      });
      expect(replaced?.outcome).toBe("replaced");
      expect(await f.store.get(record.id)).toMatchObject({
        owner: "acme",
        scopes: ["orders:read"],
        version: (changed?.version ?? 0) + 1,
      });
      // The cached lookup of the changed key was dropped.
      expect((await d.authorize(secret)).record?.owner).toBe("acme");
    });

    it("never makes a revoked key active again, even with overwrite", async () => {
      const { secret, record } = await d.keys.create(d.newKey());
      const [exported] = (await exportAll(d)) as [KeyExport];
      await d.keys.revoke(record.id, "compromised");
      const [r] = await d.importer.importBatch(items(d, [exported], f.clock.now()), {
        dryRun: false,
        overwrite: true,
      });
      expect(r?.outcome).toBe("conflict");
      expect(r?.detail).toContain("revoked");
      expect((await d.authorize(secret)).reason).toBe("REVOKED_KEY");
    });

    it("refuses a record whose secret digest belongs to another key, writing nothing", async () => {
      const a = await d.keys.create(d.newKey());
      const [exported] = (await exportAll(d)) as [KeyExport];
      const copy = fromBinary(KeyExportSchema, toBinary(KeyExportSchema, exported));
      (copy.key as { id: string }).id = "key_AAAAAAAAAAAAAAAA";
      const [r] = await d.importer.importBatch(items(d, [copy], f.clock.now()), OPTS);
      expect(r).toMatchObject({ outcome: "conflict", id: "key_AAAAAAAAAAAAAAAA" });
      expect(await f.store.get("key_AAAAAAAAAAAAAAAA")).toBeUndefined();
      expect(await f.store.findIdByDigest(d.digestOf(a.secret))).toBe(a.record.id);
    });

    it("a dry run writes nothing", async () => {
      await d.keys.create(d.newKey());
      const exported = await exportAll(d);
      const { fixture: target, domain: t } = await emptyStore();
      const dry = await t.importer.importBatch(items(t, exported, f.clock.now()), {
        dryRun: true,
        overwrite: false,
      });
      expect(dry.map((r) => r.outcome)).toEqual(["created"]);
      expect(await target.store.list({ limit: 10, includeRevoked: true })).toEqual({ records: [] });
    });

    it("completes an import a crash interrupted: a lone index entry, or a record without its index", async () => {
      const a = await d.keys.create(d.newKey({ owner: "a" }));
      const b = await d.keys.create(d.newKey({ owner: "b" }));
      const exported = await exportAll(d);
      const { fixture: target, domain: t } = await emptyStore();
      const [ra, rb] = exported.map((m) => items(t, [m], f.clock.now())[0]?.record) as [
        KeyRecord,
        KeyRecord,
      ];
      // a: the index entry was written, then the process died.
      await target.store.indexDigest(ra.digest, ra.id);
      // b: the record was written, its index entry lost.
      await target.store.importRecord(rb, [], "create");
      expect((await t.authorize(b.secret)).reason).toBe("UNKNOWN_KEY");
      const byId = new Map([
        [ra.id, a.secret],
        [rb.id, b.secret],
      ]);
      const results = await t.importer.importBatch(items(t, exported, f.clock.now()), OPTS);
      for (const r of results) {
        expect(r.outcome).toBe(r.id === ra.id ? "created" : "unchanged");
        expect((await t.authorize(byId.get(r.id) as string)).allowed).toBe(true);
      }
    });

    it("a foreign SHA-256 key authorizes and moves to the HMAC digest on its first use", async () => {
      const secret = foreignSecret();
      const [r] = await d.importer.importBatch(
        items(d, [foreignRecord(secret, true)], f.clock.now()),
        OPTS,
      );
      expect(r?.outcome).toBe("created");
      const id = r?.id as string;
      expect(id).toMatch(/^key_[0-9A-Za-z]{16}$/);
      expect(await f.prefixes.list()).toEqual(["sk_live_"]);
      const sha = foreignDigestOf(secret);
      expect(await f.store.findIdByDigest(sha)).toBe(id);

      // Outside every registered prefix: malformed, without a store call.
      const before = d.storeCalls();
      for (const bad of [
        "pk_live_abcdefghijklmnop",
        "sk_live_",
        "hunter2",
        `sk_live_${"x".repeat(300)}`,
      ]) {
        expect((await d.authorize(bad)).reason).toBe("MALFORMED_KEY");
      }
      expect(d.storeCalls()).toBe(before);
      expect((await d.authorize("sk_live_not-the-secret-at-all")).reason).toBe("UNKNOWN_KEY");

      expect(await d.migrator.migrate(id, sha, secret)).toBe("migrated");
      const stored = (await f.store.get(id)) as KeyRecord;
      expect(stored.digest).toBe(d.digestOf(secret));
      expect(stored.foreignPrefix).toBe("sk_live_");
      expect(await f.store.findIdByDigest(sha)).toBeUndefined();
      expect(await f.store.findIdByDigest(d.digestOf(secret))).toBe(id);
      expect(await d.authorize(secret)).toMatchObject({
        allowed: true,
        record: { id, owner: "migrated-owner" },
      });
      // Importing the foreign record again: the same key, already moved.
      const [again] = await d.importer.importBatch(
        items(d, [foreignRecord(secret, true)], f.clock.now()),
        OPTS,
      );
      expect(again).toMatchObject({ id, outcome: "unchanged" });
      expect(await f.store.findIdByDigest(sha)).toBeUndefined();
    });

    it("an Authorize of a foreign key starts the move in the background", async () => {
      const secret = foreignSecret();
      const [r] = await d.importer.importBatch(
        items(d, [foreignRecord(secret)], f.clock.now()),
        OPTS,
      );
      expect((await d.authorize(secret)).allowed).toBe(true);
      const deadline = Date.now() + 5000;
      while ((await f.store.get(r?.id as string))?.digest !== d.digestOf(secret)) {
        if (Date.now() > deadline) throw new Error("the foreign key was not moved");
        await new Promise((res) => setTimeout(res, 20));
      }
      expect((await d.authorize(secret)).allowed).toBe(true);
    });

    it("replicas moving one foreign key at once: one move wins, the key keeps working everywhere", async () => {
      const secret = foreignSecret();
      const bus = new MemoryInvalidationBus();
      const replicas = [0, 1, 2].map(() => createKeyDomain(f.store, f.clock, f.prefixes, bus));
      const [r] = await d.importer.importBatch(
        items(d, [foreignRecord(secret)], f.clock.now()),
        OPTS,
      );
      const id = r?.id as string;
      const sha = foreignDigestOf(secret);
      for (const x of replicas) await x.foreign.refresh();
      const outcomes = await Promise.all(replicas.map((x) => x.migrator.migrate(id, sha, secret)));
      expect(outcomes.filter((o) => o === "migrated")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "done-elsewhere")).toHaveLength(2);
      const stored = (await f.store.get(id)) as KeyRecord;
      expect(stored.digest).toBe(d.digestOf(secret));
      expect(await f.store.findIdByDigest(sha)).toBeUndefined();
      for (const x of replicas) expect((await x.authorize(secret)).allowed).toBe(true);
    });

    it("rotating a foreign key issues a tg_ secret; the foreign one works through the grace period", async () => {
      const secret = foreignSecret();
      const [r] = await d.importer.importBatch(
        items(d, [foreignRecord(secret)], f.clock.now()),
        OPTS,
      );
      const rot = await d.keys.rotateBySecret(secret, LONG_MS);
      if (typeof rot === "string") throw new Error(rot);
      expect(rot.record.id).toBe(r?.id);
      expect(rot.secret).toMatch(/^tg_live_/);
      // The export of a key rotated before its foreign secret moved keeps the foreign grace digest.
      const [exported] = await exportAll(d);
      expect(exported?.graceForeignDigest?.value).toBe(foreignDigestOf(secret).slice(7));
      expect(exported?.secretDigest).toBe(d.digestOf(rot.secret));
      expect((await d.authorize(rot.secret)).allowed).toBe(true);
      expect(await d.authorize(secret)).toMatchObject({
        allowed: true,
        hints: { inGracePeriod: true },
      });
    });
  });
}
