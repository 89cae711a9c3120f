import { Redis } from "ioredis";

/** Options of createRedisClient. */
export interface RedisClientOptions {
  /** redis:// or rediss:// URL (user, password, db and TLS come from it). */
  url: string;
  /** Per-command timeout, ms. */
  commandTimeoutMs?: number;
  /** Called on connection errors (already rate-limited by ioredis' reconnect backoff). */
  onError?: (err: Error) => void;
}

/**
 * Creates an ioredis client configured for a sidecar: auto-pipelining of
 * concurrent commands, a command timeout, no unbounded offline queue while
 * disconnected (commands fail fast instead of piling up), capped reconnect backoff.
 */
export function createRedisClient(o: RedisClientOptions): Redis {
  const client = new Redis(o.url, {
    enableAutoPipelining: true,
    commandTimeout: o.commandTimeoutMs ?? 1_000,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    lazyConnect: false,
  });
  client.on("error", (err: Error) => o.onError?.(err));
  return client;
}
