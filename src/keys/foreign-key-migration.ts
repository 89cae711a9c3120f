/**
 * Moves a foreign key to Tollgate's own digest on its first successful use:
 * the secret is in hand then, so its HMAC digest can be computed and the
 * plain SHA-256 one (guessable offline without the pepper) dropped. Runs off
 * the decision path. Safe when replicas race: the HMAC digest is indexed
 * first (the same value wherever it is computed), the record switches by
 * compare-and-set, and only the switch's winner — or a writer that finds the
 * switch done — goes on to drop the SHA-256 entry.
 */
import type { Logger } from "../observability/logger.js";
import type { Clock } from "../util/clock.js";
import type { InvalidationBus } from "./invalidation-bus.js";
import type { KeyRecord } from "./key-record.js";
import type { KeyStore } from "./key-store.js";
import type { SecretDigester } from "./secret-digest.js";

/** Options of ForeignKeyMigrator. */
export interface ForeignKeyMigratorOptions {
  store: KeyStore;
  digest: SecretDigester;
  bus: InvalidationBus;
  clock: Clock;
  /** Applies an invalidation to this replica at once (pub/sub may lag). */
  invalidateLocal: (digests: string[], ids: string[]) => void;
  log: Logger;
  /** Called once per key moved (metrics). */
  onMigrated?: () => void;
}

/** What migrate() found. */
export type MigrationOutcome = "migrated" | "done-elsewhere" | "gone" | "conflict";

const ATTEMPTS = 5;

/** Re-stores foreign keys under the HMAC digest. */
export class ForeignKeyMigrator {
  /** Keys being moved by this replica: concurrent first uses start one move. */
  private readonly running = new Set<string>();

  constructor(private readonly o: ForeignKeyMigratorOptions) {}

  /**
   * Starts moving key `id` from its foreign digest `foreign` (matched by
   * `secret`) to the HMAC digest, in the background. Never throws, never
   * waits; a move that fails is tried again on the next use.
   */
  schedule(id: string, foreign: string, secret: string): void {
    if (this.running.has(id)) return;
    this.running.add(id);
    this.migrate(id, foreign, secret)
      .catch((err: Error) =>
        this.o.log.warn(
          { keyId: id, err: { message: err.message } },
          "moving a foreign key to the HMAC digest failed; the next use tries again",
        ),
      )
      .finally(() => this.running.delete(id));
  }

  /** Moves the key now. Throws only if the store fails. */
  async migrate(id: string, foreign: string, secret: string): Promise<MigrationOutcome> {
    const hmac = this.o.digest(secret);
    let indexed = false;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const r = await this.o.store.get(id);
      const field = r ? fieldOf(r, foreign) : undefined;
      if (!r || !field) {
        // Moved by another replica (then `hmac` is its digest too), or the
        // key changed otherwise: keep our index entry only if still used.
        if (indexed && r?.digest !== hmac && r?.graceDigest !== hmac) {
          await this.o.store.unindexDigest(hmac);
        }
        return r && (r.digest === hmac || r.graceDigest === hmac) ? "done-elsewhere" : "gone";
      }
      const graceEndsAt = field === "graceDigest" ? r.graceEndsAt : undefined;
      if (field === "graceDigest" && (graceEndsAt ?? 0) <= this.o.clock.now()) return "gone";
      await this.o.store.indexDigest(hmac, id, graceEndsAt);
      indexed = true;
      const next: KeyRecord = { ...r, [field]: hmac, version: r.version + 1 };
      if (!(await this.o.store.replace(next, r.version))) continue;
      await this.o.store.unindexDigest(foreign);
      const stale = [foreign, hmac];
      this.o.invalidateLocal(stale, [id]);
      await this.o.bus.publish({ digests: stale, ids: [id] });
      this.o.log.info(
        {
          audit: "foreign_key_migrated",
          keyId: id,
          which: field === "digest" ? "current" : "grace",
        },
        "foreign key moved to the HMAC digest on first use",
      );
      this.o.onMigrated?.();
      return "migrated";
    }
    return "conflict";
  }
}

function fieldOf(r: KeyRecord, foreign: string): "digest" | "graceDigest" | undefined {
  if (r.digest === foreign) return "digest";
  if (r.graceDigest === foreign) return "graceDigest";
  return undefined;
}
