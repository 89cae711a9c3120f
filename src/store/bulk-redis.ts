/**
 * The Redis connection key export and import run on. Bulk work sends
 * thousands of commands in bursts; on the decision path's connection, with
 * its 10 ms command timeout and its breaker, a large import could time out
 * spuriously and open the breaker that every Authorize goes through. So it
 * gets a connection of its own, made on first use (most replicas never
 * export), with a generous command timeout and an offline queue (a bulk call
 * may wait for a reconnect; the caller's StoreGuard bounds it).
 */
import { Cluster } from "ioredis";
import type { ForeignPrefixStore } from "../keys/foreign-prefix-store.js";
import type { KeyStore } from "../keys/key-store.js";
import { closeRedisClient, type RedisClient } from "./redis-client.js";
import { RedisForeignPrefixStore } from "./redis-foreign-prefix-store.js";
import { RedisKeyStore } from "./redis-key-store.js";
import type { KeyNames } from "./redis-keys.js";

/** The bulk connection and the stores over it. */
export class BulkRedis {
  private made:
    | { client: RedisClient; keys: RedisKeyStore; prefixes: RedisForeignPrefixStore }
    | undefined;
  private closed = false;

  /**
   * @param main the decision path's client, duplicated (same servers, TLS, auth, mode)
   * @param names key names (the same namespace)
   * @param commandTimeoutMs per-command timeout of the bulk connection
   */
  constructor(
    private readonly main: RedisClient,
    private readonly names: KeyNames,
    private readonly commandTimeoutMs: number,
  ) {}

  /** A KeyStore on the bulk connection (connects on its first call). */
  keyStore(): KeyStore {
    return this.view(() => this.connection().keys) as KeyStore;
  }

  /** A ForeignPrefixStore on the bulk connection. */
  prefixStore(): ForeignPrefixStore {
    return this.view(() => this.connection().prefixes) as ForeignPrefixStore;
  }

  /** Closes the connection, if one was made, within `waitMs`. */
  async close(waitMs: number): Promise<void> {
    this.closed = true;
    if (this.made) await closeRedisClient(this.made.client, waitMs);
  }

  private connection() {
    if (this.closed) throw new Error("the bulk Redis connection is closed");
    if (!this.made) {
      const client =
        this.main instanceof Cluster
          ? this.main.duplicate(undefined, {
              enableOfflineQueue: true,
              redisOptions: { commandTimeout: this.commandTimeoutMs },
            })
          : this.main.duplicate({
              enableOfflineQueue: true,
              commandTimeout: this.commandTimeoutMs,
            });
      // Errors surface as failed calls; the main connection already logs Redis trouble.
      client.on("error", () => {});
      this.made = {
        client,
        keys: new RedisKeyStore(client, this.names),
        prefixes: new RedisForeignPrefixStore(client, this.names),
      };
    }
    return this.made;
  }

  /** An object whose every method runs on the store `target()` returns. */
  private view(target: () => object): object {
    return new Proxy(
      {},
      {
        get: (_t, prop) => {
          // Not a thenable, not a symbol-keyed protocol: only store methods.
          if (typeof prop !== "string" || prop === "then") return undefined;
          return (...args: unknown[]) => {
            const store = target() as Record<string | symbol, (...a: unknown[]) => unknown>;
            return (store[prop] as (...a: unknown[]) => unknown).apply(store, args);
          };
        },
      },
    );
  }
}
