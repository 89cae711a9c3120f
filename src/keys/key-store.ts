import type { KeyRecord } from "./key-record.js";

/** A page of keys. */
export interface KeyPage {
  records: KeyRecord[];
  /** Id to pass as `after` for the next page; undefined on the last page. */
  next?: string;
}

/** Options of KeyStore.list. */
export interface ListOptions {
  /** Return ids strictly greater than this. */
  after?: string;
  /** Page size, 1..1000. */
  limit: number;
  owner?: string;
  includeRevoked: boolean;
}

/** A digest index entry to write with an imported record; `expiresAt` (epoch ms) removes it then. */
export interface DigestEntry {
  digest: string;
  expiresAt?: number;
}

/**
 * Outcome of KeyStore.importRecord: the record was `written`; a record with
 * its id `exists` (mode "create": left as it is); its digests were all
 * `indexed` already, or some were missing and are now (`repaired`; mode
 * "index"); or a digest is indexed to another key (`taken`: nothing was
 * written, and entries this call made were removed again).
 */
export type ImportWrite = "written" | "exists" | "indexed" | "repaired" | { taken: string };

/**
 * Storage of API keys. Every operation touches one store key at a time, so it is
 * safe on Redis Cluster. Implementations throw only on infrastructure failure.
 */
export interface KeyStore {
  /** Stores a new record and indexes its digest. False if the id or digest exists. */
  create(record: KeyRecord): Promise<boolean>;
  /** The record with this id, if any. */
  get(id: string): Promise<KeyRecord | undefined>;
  /** The id a digest is indexed under, if any. */
  findIdByDigest(digest: string): Promise<string | undefined>;
  /**
   * Replaces the record if its stored version is `expectedVersion` (compare and set).
   * The new record must carry version `expectedVersion + 1`. False on a lost race.
   */
  replace(record: KeyRecord, expectedVersion: number): Promise<boolean>;
  /** Indexes a digest to a key id; `expiresAt` (epoch ms) removes the entry then. */
  indexDigest(digest: string, id: string, expiresAt?: number): Promise<void>;
  /** Removes a digest from the index. */
  unindexDigest(digest: string): Promise<void>;
  /** Lists keys ordered by id. */
  list(options: ListOptions): Promise<KeyPage>;
  /**
   * For imports: indexes each of `digests` to the record's id (an entry
   * already indexed to this id keeps it, with the new expiry; one indexed to
   * another id stops everything), then, in mode "create", stores the record
   * unless its id exists; and lists the id. A retry after a failure part-way
   * completes what the first attempt began, so imports are idempotent.
   */
  importRecord(
    record: KeyRecord,
    digests: readonly DigestEntry[],
    mode: "create" | "index",
  ): Promise<ImportWrite>;
}
