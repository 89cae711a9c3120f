/**
 * ioredis clients configured for a sidecar, in standalone, Sentinel or Cluster
 * mode: auto-pipelining of concurrent commands, a short command timeout, no
 * offline queue (a command while disconnected fails at once, so the fail mode
 * applies instead of requests piling up), and capped exponential reconnects.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { settlesWithin } from "../util/deadline.js";

/** A standalone, Sentinel or Cluster ioredis client. */
export type RedisClient = Redis | Cluster;

/** Options of createRedisClient. */
export interface RedisClientOptions {
  mode: "standalone" | "sentinel" | "cluster";
  /** redis:// or rediss:// URL: the server (standalone), a seed (cluster), auth/TLS/db (sentinel). */
  url: string;
  sentinels?: string;
  sentinelMaster?: string;
  sentinelPassword?: string;
  clusterNodes?: string;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  /** Called on connection errors. */
  onError?: (err: Error) => void;
}

/** Reconnect backoff: 50 ms doubling to 2 s. */
const retryStrategy = (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2_000);

function hosts(list: string): { host: string; port: number }[] {
  return list
    .split(",")
    .filter(Boolean)
    .map((hp) => {
      const i = hp.lastIndexOf(":");
      return { host: hp.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(hp.slice(i + 1)) };
    });
}

/** Parses the URL's auth, TLS and db into ioredis options (nothing secret is logged). */
function urlOptions(url: string): { host: string; port: number; options: RedisOptions } {
  const u = new URL(url);
  const options: RedisOptions = {};
  if (u.username) options.username = decodeURIComponent(u.username);
  if (u.password) options.password = decodeURIComponent(u.password);
  if (u.protocol === "rediss:") options.tls = { servername: u.hostname };
  const db = u.pathname.replace(/^\//, "");
  if (db) options.db = Number(db);
  return { host: u.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(u.port || 6379), options };
}

/** Creates the client. Connection starts at once; errors go to `onError`. */
export function createRedisClient(o: RedisClientOptions): RedisClient {
  const common: RedisOptions = {
    // Each command is written at once. Auto-pipelining batches the commands
    // of one event-loop turn into a pipeline sent on the next (setImmediate):
    // measured on CheckRateLimit (one EVALSHA per decision), that wait and the
    // pipeline's bookkeeping cost more than the writes it saves, at 1, 16 and
    // 64 calls in flight (16: 6.2-8.5k -> 8.3-9.4k req/s; docs/performance.md).
    enableAutoPipelining: false,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy,
  };
  const { host, port, options } = urlOptions(o.url);
  let client: RedisClient;
  if (o.mode === "cluster") {
    const cluster: ClusterOptions = {
      // Off on Cluster as everywhere; there it must be: ioredis would batch
      // concurrent scripts of different slots into one pipeline and reject it
      // ("same slots allocation group").
      enableAutoPipelining: false,
      enableOfflineQueue: false,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { ...common, ...options, enableAutoPipelining: false },
      ...(options.tls && { dnsLookup: (address, callback) => callback(null, address) }),
    };
    client = new Cluster([{ host, port }, ...hosts(o.clusterNodes ?? "")], cluster);
  } else if (o.mode === "sentinel") {
    client = new Redis({
      ...common,
      ...options,
      sentinels: hosts(o.sentinels ?? ""),
      name: o.sentinelMaster ?? "mymaster",
      ...(o.sentinelPassword && { sentinelPassword: o.sentinelPassword }),
      ...(options.tls && { enableTLSForSentinelMode: true }),
      sentinelRetryStrategy: retryStrategy,
    });
  } else {
    client = new Redis({ ...common, ...options, host, port });
  }
  client.on("error", (err: Error) => o.onError?.(err));
  return client;
}

/**
 * A connection for pub/sub. Subscribing is not on the request path, so it may
 * queue while disconnected; ioredis re-subscribes after every reconnect.
 */
export function duplicateForSubscribe(client: RedisClient): RedisClient {
  if (client instanceof Cluster) {
    return client.duplicate(undefined, { enableOfflineQueue: true });
  }
  return client.duplicate({
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    commandTimeout: undefined,
  });
}

/**
 * Closes a client within `waitMs`. A ready connection is asked to QUIT, which
 * lets replies already on their way arrive; whatever happens (no answer from
 * a paused or half-open server, a connection never made, `waitMs` spent) the
 * socket is then closed with `disconnect()`, which never waits on the server
 * and cancels pending reconnects. `quit()` alone can wait forever: on a
 * connection with an offline queue it is queued until a connect that never
 * comes, and without a command timeout a paused server never answers it.
 */
export async function closeRedisClient(client: RedisClient, waitMs: number): Promise<void> {
  if (waitMs > 0 && client.status === "ready") {
    await settlesWithin(client.quit(), waitMs);
  }
  client.disconnect();
}
