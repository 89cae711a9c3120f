import type { KeyRecord } from "../keys/key-record.js";
import type {
  DigestEntry,
  ImportWrite,
  KeyPage,
  KeyStore,
  ListOptions,
} from "../keys/key-store.js";
import { SCRIPTS } from "./lua-scripts.js";
import type { RedisClient } from "./redis-client.js";
import type { KeyNames } from "./redis-keys.js";
import { CLAIM, REPLACE } from "./script-replies.js";
import { runScript } from "./script-runner.js";

/** The client type, where it was first exported (kept for existing importers). */
export type { RedisClient } from "./redis-client.js";

/** Ids fetched per round of a filtered list scan. */
const LIST_BATCH = 200;
/** Most ids one ListKeys call examines; a sparse filter returns a short page and a token. */
const LIST_SCAN_LIMIT = 5000;

/**
 * Keys in Redis. Every command touches one key, so it runs unchanged on Cluster.
 * Scripts run through `runScript` (EVALSHA, EVAL on NOSCRIPT).
 */
export class RedisKeyStore implements KeyStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: KeyNames,
  ) {}

  async create(record: KeyRecord): Promise<boolean> {
    const digestKey = this.names.digest(record.digest);
    // Index first: a lookup by this digest before the record exists finds no
    // record and answers "unknown", which is the truth at that moment.
    if ((await this.redis.set(digestKey, record.id, "NX")) !== "OK") return false;
    if (
      (await this.redis.set(this.names.record(record.id), JSON.stringify(record), "NX")) !== "OK"
    ) {
      await this.redis.del(digestKey);
      return false;
    }
    await this.redis.zadd(this.names.keyIndex(), 0, record.id);
    return true;
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    const json = await this.redis.get(this.names.record(id));
    return json === null ? undefined : (JSON.parse(json) as KeyRecord);
  }

  async findIdByDigest(digest: string): Promise<string | undefined> {
    return (await this.redis.get(this.names.digest(digest))) ?? undefined;
  }

  async replace(record: KeyRecord, expectedVersion: number): Promise<boolean> {
    const key = this.names.record(record.id);
    const json = JSON.stringify(record);
    const r = await runScript<number>(
      this.redis,
      SCRIPTS.replaceIfVersion,
      [key],
      [expectedVersion, json],
    );
    return r === REPLACE.replaced;
  }

  async indexDigest(digest: string, id: string, expiresAt?: number): Promise<void> {
    if (expiresAt === undefined) {
      await this.redis.set(this.names.digest(digest), id);
    } else {
      await this.redis.set(
        this.names.digest(digest),
        id,
        "PXAT",
        Math.max(1, Math.ceil(expiresAt)),
      );
    }
  }

  async unindexDigest(digest: string): Promise<void> {
    await this.redis.del(this.names.digest(digest));
  }

  /**
   * One key per command, in the order `create` uses (index entries, then the
   * record, then the listing), so a crash part-way leaves only index entries
   * that point at a missing record — which lookups answer as unknown — and a
   * retry completes the rest.
   */
  async importRecord(
    record: KeyRecord,
    digests: readonly DigestEntry[],
    mode: "create" | "index",
  ): Promise<ImportWrite> {
    const made: string[] = [];
    for (const { digest, expiresAt } of digests) {
      const key = this.names.digest(digest);
      const at = expiresAt === undefined ? 0 : Math.max(1, Math.ceil(expiresAt));
      const r = await runScript<number>(this.redis, SCRIPTS.claimDigest, [key], [record.id, at]);
      if (r === CLAIM.taken) {
        // One DEL per entry: on Cluster they live in different slots.
        await Promise.all(made.map((k) => this.redis.del(k)));
        return { taken: digest };
      }
      if (r === CLAIM.made) made.push(key);
    }
    if (mode === "create") {
      const json = JSON.stringify(record);
      // Entries made above stay if the id exists: a concurrent import of the
      // same record may be relying on them (the caller sorts it out).
      if ((await this.redis.set(this.names.record(record.id), json, "NX")) !== "OK")
        return "exists";
    }
    await this.redis.zadd(this.names.keyIndex(), 0, record.id);
    if (mode === "create") return "written";
    return made.length > 0 ? "repaired" : "indexed";
  }

  async list(options: ListOptions): Promise<KeyPage> {
    const records: KeyRecord[] = [];
    let cursor = options.after;
    let scanned = 0;
    while (scanned < LIST_SCAN_LIMIT) {
      const ids = await this.redis.zrangebylex(
        this.names.keyIndex(),
        cursor === undefined ? "-" : `(${cursor}`,
        "+",
        "LIMIT",
        0,
        LIST_BATCH,
      );
      if (ids.length === 0) return { records };
      // One GET per id: Cluster spreads records over slots, so no MGET.
      const batch = await Promise.all(ids.map((id) => this.get(id)));
      for (let i = 0; i < ids.length; i++) {
        scanned++;
        cursor = ids[i];
        const r = batch[i];
        if (!r) continue;
        if (options.owner !== undefined && r.owner !== options.owner) continue;
        if (!options.includeRevoked && r.status === "revoked") continue;
        records.push(r);
        if (records.length === options.limit) {
          const more = i < ids.length - 1 || ids.length === LIST_BATCH;
          return more ? { records, next: r.id } : { records };
        }
      }
      if (ids.length < LIST_BATCH) return { records };
    }
    return cursor === undefined ? { records } : { records, next: cursor };
  }
}
