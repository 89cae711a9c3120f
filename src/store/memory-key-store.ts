import type { KeyRecord } from "../keys/key-record.js";
import type {
  DigestEntry,
  ImportWrite,
  KeyPage,
  KeyStore,
  ListOptions,
} from "../keys/key-store.js";
import type { Clock } from "../util/clock.js";

/**
 * The embedded key store: process memory, for `npm start` and single-replica
 * use. Records are deep-copied in and out so callers cannot alias stored state.
 */
export class MemoryKeyStore implements KeyStore {
  private readonly records = new Map<string, KeyRecord>();
  private readonly digests = new Map<string, { id: string; expiresAt?: number }>();

  constructor(private readonly clock: Clock) {}

  async create(record: KeyRecord): Promise<boolean> {
    if (this.records.has(record.id) || this.liveDigest(record.digest)) return false;
    this.records.set(record.id, structuredClone(record));
    this.digests.set(record.digest, { id: record.id });
    return true;
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    const r = this.records.get(id);
    return r && structuredClone(r);
  }

  async findIdByDigest(digest: string): Promise<string | undefined> {
    return this.liveDigest(digest)?.id;
  }

  async replace(record: KeyRecord, expectedVersion: number): Promise<boolean> {
    const current = this.records.get(record.id);
    if (!current || current.version !== expectedVersion) return false;
    this.records.set(record.id, structuredClone(record));
    return true;
  }

  async indexDigest(digest: string, id: string, expiresAt?: number): Promise<void> {
    this.digests.set(digest, expiresAt === undefined ? { id } : { id, expiresAt });
  }

  async unindexDigest(digest: string): Promise<void> {
    this.digests.delete(digest);
  }

  async list(options: ListOptions): Promise<KeyPage> {
    const ids = [...this.records.keys()].sort();
    const records: KeyRecord[] = [];
    for (const id of ids) {
      if (options.after !== undefined && id <= options.after) continue;
      const r = this.records.get(id) as KeyRecord;
      if (options.owner !== undefined && r.owner !== options.owner) continue;
      if (!options.includeRevoked && r.status === "revoked") continue;
      if (records.length === options.limit) {
        return { records, next: records[records.length - 1]?.id };
      }
      records.push(structuredClone(r));
    }
    return { records };
  }

  async importRecord(
    record: KeyRecord,
    digests: readonly DigestEntry[],
    mode: "create" | "index",
  ): Promise<ImportWrite> {
    const taken = digests.find((e) => (this.liveDigest(e.digest)?.id ?? record.id) !== record.id);
    if (taken) return { taken: taken.digest };
    if (mode === "create" && this.records.has(record.id)) return "exists";
    // No await from the checks to the writes: the import is atomic here.
    const missing = digests.some((e) => !this.liveDigest(e.digest));
    for (const { digest, expiresAt } of digests) {
      this.digests.set(
        digest,
        expiresAt === undefined ? { id: record.id } : { id: record.id, expiresAt },
      );
    }
    if (mode === "index") return missing ? "repaired" : "indexed";
    this.records.set(record.id, structuredClone(record));
    return "written";
  }

  private liveDigest(digest: string): { id: string; expiresAt?: number } | undefined {
    const e = this.digests.get(digest);
    if (e?.expiresAt !== undefined && e.expiresAt <= this.clock.now()) {
      this.digests.delete(digest);
      return undefined;
    }
    return e;
  }
}
