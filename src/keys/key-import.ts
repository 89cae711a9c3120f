/**
 * Key import: restores exported records, or brings in keys from another
 * system by their foreign digests. Each record is applied on its own and
 * idempotently: same id and same content → unchanged (missing index entries
 * are written again, so a retry after a failure completes it); same id with
 * other content → conflict, or with `overwrite` a compare-and-set replace; a
 * revoked key is never made active again. Afterwards every replica drops its
 * cached lookups of the digests involved (negative entries included) and
 * learns newly registered foreign prefixes.
 */
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import {
  type ForeignKeys,
  foreignKeyId,
  isForeignDigest,
  MAX_FOREIGN_PREFIXES,
} from "./foreign-keys.js";
import type { ForeignPrefixStore } from "./foreign-prefix-store.js";
import type { Invalidation, InvalidationBus } from "./invalidation-bus.js";
import type { KeyRecord } from "./key-record.js";
import type { DigestEntry, KeyStore } from "./key-store.js";
import type { SecretDigester } from "./secret-digest.js";

/** One validated record to import. */
export interface ImportItem {
  record: KeyRecord;
  /** Fields filled from defaults: not compared with an existing key. */
  defaulted: ReadonlySet<keyof KeyRecord>;
}

/** What happened to one record (on a dry run: what would). */
export interface ImportResult {
  id: string;
  outcome: "created" | "unchanged" | "replaced" | "conflict" | "invalid";
  /** Why, for a conflict or an invalid record (never a secret or digest). */
  detail?: string;
  /** For an invalid record: the field at fault. */
  field?: string;
}

/** Options of one import batch. */
export interface ImportOptions {
  dryRun: boolean;
  overwrite: boolean;
}

/** Options of KeyImporter. */
export interface KeyImporterOptions {
  store: KeyStore;
  prefixes: ForeignPrefixStore;
  /** This replica's registered prefixes (updated at once on an import here). */
  foreign: ForeignKeys;
  bus: InvalidationBus;
  clock: Clock;
  /** The pepper's digester: ids of foreign keys imported without one derive from it. */
  digest: SecretDigester;
  /** Applies an invalidation to this replica at once (pub/sub may lag). */
  invalidateLocal: (digests: string[], ids: string[]) => void;
  log: Logger;
}

/** Records of one batch applied at the same time (the store pipelines them). */
const CONCURRENCY = 8;
const ATTEMPTS = 3;

/** Field names (as the API calls them) compared between a stored and an imported key. */
const COMPARED: [keyof KeyRecord, string][] = [
  ["owner", "owner"],
  ["tier", "tier"],
  ["scopes", "scopes"],
  ["metadata", "metadata"],
  ["status", "status"],
  ["environment", "environment"],
  ["createdAt", "create_time"],
  ["updatedAt", "update_time"],
  ["expiresAt", "expire_time"],
  ["revokedAt", "revoke_time"],
  ["revokeReason", "revoked_reason"],
  ["ipAllow", "ip_allow"],
  ["ipDeny", "ip_deny"],
  ["digest", "secret_digest"],
  ["secretCreatedAt", "secret_create_time"],
  ["graceDigest", "grace_secret_digest"],
  ["graceEndsAt", "grace_end_time"],
  ["foreignPrefix", "foreign_prefix"],
  ["credits", "credits"],
];

/** Imports key records. Methods throw only on infrastructure failure. */
export class KeyImporter {
  constructor(private readonly o: KeyImporterOptions) {}

  /** The stable id of a foreign key imported without one (see foreignKeyId). */
  foreignKeyId(foreignDigest: string): string {
    return foreignKeyId(foreignDigest, this.o.digest);
  }

  /** Applies a batch; one result per item, in order. */
  async importBatch(items: readonly ImportItem[], opts: ImportOptions): Promise<ImportResult[]> {
    const refused = await this.registerPrefixes(items, opts.dryRun);
    const results: ImportResult[] = new Array(items.length);
    const touched = { digests: new Set<string>(), ids: new Set<string>() };
    // Records of one id run one after the other, in batch order.
    const byId = new Map<string, Promise<unknown>>();
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        const item = items[i] as ImportItem;
        const prefix = item.record.foreignPrefix;
        if (prefix !== undefined && refused.has(prefix)) {
          results[i] = {
            id: item.record.id,
            outcome: "invalid",
            field: "foreign_prefix",
            detail: `a store registers at most ${MAX_FOREIGN_PREFIXES} foreign prefixes`,
          };
          continue;
        }
        const before = byId.get(item.record.id) ?? Promise.resolve();
        const run = before.then(() => this.importOne(item, opts, touched));
        byId.set(item.record.id, run);
        results[i] = await run;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, items.length) }, worker));
    if (touched.ids.size > 0) {
      const digests = [...touched.digests];
      const ids = [...touched.ids];
      this.o.invalidateLocal(digests, ids);
      await this.announce({ digests, ids });
    }
    return results;
  }

  /**
   * Registers the foreign prefixes of the batch's foreign records, before any
   * of those records is written (so no replica holds a foreign key it cannot
   * recognise longer than a bus message takes). Returns prefixes refused for
   * the store's bound.
   */
  private async registerPrefixes(
    items: readonly ImportItem[],
    dryRun: boolean,
  ): Promise<Set<string>> {
    const wanted = new Set<string>();
    for (const { record: r } of items) {
      if (r.foreignPrefix && (isForeignDigest(r.digest) || isForeignDigest(r.graceDigest))) {
        wanted.add(r.foreignPrefix);
      }
    }
    const refused = new Set<string>();
    if (wanted.size === 0) return refused;
    const known = new Set(await this.o.prefixes.list());
    const added: string[] = [];
    for (const p of [...wanted].sort()) {
      if (known.has(p)) continue;
      if (known.size + added.length >= MAX_FOREIGN_PREFIXES) refused.add(p);
      else added.push(p);
    }
    if (added.length > 0 && !dryRun) {
      await this.o.prefixes.add(added);
      this.o.foreign.add(added);
      await this.announce({ digests: [], prefixes: added });
    }
    return refused;
  }

  private async importOne(
    item: ImportItem,
    opts: ImportOptions,
    touched: { digests: Set<string>; ids: Set<string> },
  ): Promise<ImportResult> {
    const race = { lost: false };
    const result = await this.apply(item, opts, touched, race);
    if (race.lost && result.outcome === "conflict") {
      // Another writer created the id between our read and our write, with
      // other content: the entries we indexed for it point at a record that
      // does not have them. Lookups would answer unknown anyway; tidy up.
      const stored = await this.o.store.get(item.record.id);
      for (const e of digestEntries(item.record, this.o.clock.now())) {
        if (e.digest === stored?.digest || e.digest === stored?.graceDigest) continue;
        if ((await this.o.store.findIdByDigest(e.digest)) === item.record.id) {
          await this.o.store.unindexDigest(e.digest);
        }
      }
    }
    return result;
  }

  private async apply(
    item: ImportItem,
    opts: ImportOptions,
    touched: { digests: Set<string>; ids: Set<string> },
    race: { lost: boolean },
  ): Promise<ImportResult> {
    const { record } = item;
    const id = record.id;
    const entries = digestEntries(record, this.o.clock.now());
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const existing = await this.o.store.get(id);
      if (!existing) {
        if (opts.dryRun) {
          const holder = await this.takenBy(entries, id);
          return holder ? digestConflict(id) : { id, outcome: "created" };
        }
        const w = await this.o.store.importRecord(record, entries, "create");
        if (w === "exists") {
          race.lost = true; // created concurrently: compare with it
          continue;
        }
        if (typeof w === "object") return digestConflict(id);
        for (const e of entries) touched.digests.add(e.digest);
        touched.ids.add(id);
        return { id, outcome: "created" };
      }
      const differing = differences(existing, record, item.defaulted);
      if (differing.length === 0) {
        if (!opts.dryRun) {
          // Restores index entries a failed earlier import may have left out.
          const w = await this.o.store.importRecord(
            existing,
            digestEntries(existing, this.o.clock.now()),
            "index",
          );
          if (typeof w === "object") return digestConflict(id);
          // A replica may remember a restored digest as unknown.
          if (w === "repaired") {
            for (const e of digestEntries(existing, this.o.clock.now()))
              touched.digests.add(e.digest);
            touched.ids.add(id);
          }
        }
        return { id, outcome: "unchanged" };
      }
      if (existing.status === "revoked" && record.status !== "revoked") {
        return {
          id,
          outcome: "conflict",
          detail: "revoked in this store: an import never makes a revoked key active again",
        };
      }
      if (!opts.overwrite) {
        return { id, outcome: "conflict", detail: `differs in: ${differing.join(", ")}` };
      }
      if (opts.dryRun) {
        return (await this.takenBy(entries, id)) ? digestConflict(id) : { id, outcome: "replaced" };
      }
      const next: KeyRecord = { ...record, version: existing.version + 1 };
      const w = await this.o.store.importRecord(next, entries, "index");
      if (typeof w === "object") return digestConflict(id);
      if (!(await this.o.store.replace(next, existing.version))) continue;
      const kept = new Set(entries.map((e) => e.digest));
      for (const old of [existing.digest, existing.graceDigest]) {
        if (old === undefined || kept.has(old)) continue;
        if ((await this.o.store.findIdByDigest(old)) === id) await this.o.store.unindexDigest(old);
        touched.digests.add(old);
      }
      for (const e of entries) touched.digests.add(e.digest);
      touched.ids.add(id);
      return { id, outcome: "replaced" };
    }
    return { id, outcome: "conflict", detail: "changed concurrently while importing; retry" };
  }

  /**
   * Tells the other replicas. Best effort: the records are written already,
   * and a replica that misses the message catches up by its cache TTL (and
   * its periodic re-read of the foreign prefixes).
   */
  private async announce(message: Invalidation): Promise<void> {
    try {
      await this.o.bus.publish(message);
    } catch (err) {
      this.o.log.warn(
        { err: { message: (err as Error).message } },
        "import: the invalidation message was not sent; other replicas catch up within the cache TTL",
      );
    }
  }

  /** The id another key holds one of `entries` under, if any (dry runs). */
  private async takenBy(entries: readonly DigestEntry[], id: string): Promise<string | undefined> {
    for (const e of entries) {
      const holder = await this.o.store.findIdByDigest(e.digest);
      if (holder !== undefined && holder !== id) return holder;
    }
    return undefined;
  }
}

/**
 * The index entries a record needs: its current digest, and its grace digest
 * until the grace period ends (an ended one is not indexed again).
 */
export function digestEntries(record: KeyRecord, now: number): DigestEntry[] {
  const entries: DigestEntry[] = [{ digest: record.digest }];
  const { graceDigest, graceEndsAt } = record;
  if (graceDigest !== undefined && graceEndsAt !== undefined && graceEndsAt > now) {
    entries.push({ digest: graceDigest, expiresAt: graceEndsAt });
  }
  return entries;
}

/**
 * The API names of the fields in which an imported record differs from the
 * stored key, skipping `version` and defaulted fields. A foreign digest
 * matches a stored key that came from a foreign digest and has since moved
 * to Tollgate's HMAC digest (its first use): the digest cannot be compared
 * without the secret, and the id (derived from it, or given) is the same.
 */
export function differences(
  stored: KeyRecord,
  imported: KeyRecord,
  defaulted: ReadonlySet<keyof KeyRecord> = new Set(),
): string[] {
  const out: string[] = [];
  for (const [field, name] of COMPARED) {
    if (defaulted.has(field)) continue;
    const a = stored[field];
    const b = imported[field];
    if ((field === "digest" || field === "graceDigest") && movedToHmac(stored, a, b)) continue;
    if (!same(a ?? emptyOf(field), b ?? emptyOf(field))) out.push(name);
  }
  return out;
}

function movedToHmac(stored: KeyRecord, a: unknown, b: unknown): boolean {
  return (
    typeof a === "string" &&
    typeof b === "string" &&
    isForeignDigest(b) &&
    !isForeignDigest(a) &&
    stored.foreignPrefix !== undefined
  );
}

/** What an absent optional field equals (an empty revoke reason is no reason). */
function emptyOf(field: keyof KeyRecord): unknown {
  return field === "revokeReason" ? "" : undefined;
}

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return (
      same(ka, kb) &&
      ka.every((k) => (a as Record<string, unknown>)[k] === (b as Record<string, unknown>)[k])
    );
  }
  return a === b;
}

function digestConflict(id: string): ImportResult {
  return {
    id,
    outcome: "conflict",
    detail: "a secret digest of this record belongs to another key",
  };
}
