/**
 * The backend switch: every store the process needs, embedded or on Redis
 * (standalone, Sentinel or Cluster), built in one place from the settings.
 * The composition root (main.ts) and the service-test harness call it; the
 * domain only ever receives the stores. Nothing here imports domain code.
 *
 * On Redis, three breakers guard one decision path and two side paths:
 * `redis` (keys, rate limits, foreign prefixes), `redis-events` (background
 * event writes, whose failures — e.g. Redis out of memory — must never open
 * the decision path's breaker) and `redis_bulk` (export / import, on a
 * connection of its own: bulk-redis.ts).
 */
import { once } from "node:events";
import type { Settings } from "../config/settings.js";
import type { ForeignPrefixStore } from "../keys/foreign-prefix-store.js";
import type { InvalidationBus } from "../keys/invalidation-bus.js";
import type { KeyStore } from "../keys/key-store.js";
import type { StoreMarker } from "../keys/store-marker.js";
import type { Logger } from "../observability/logger.js";
import type { MemoryStructure, Metrics } from "../observability/metrics.js";
import type { Tracing } from "../observability/tracing.js";
import type { OverrideStore } from "../ratelimit/override-store.js";
import type { RateLimitStore } from "../ratelimit/rate-limit-store.js";
import { startRedisHealth } from "../resilience/redis-health.js";
import { StoreGuard } from "../resilience/store-guard.js";
import { BulkRedis } from "../store/bulk-redis.js";
import {
  type EventStoreLimits,
  type EventStores,
  memoryEventStores,
  redisEventStores,
} from "../store/event-stores.js";
import { MemoryInvalidationBus, RedisInvalidationBus } from "../store/invalidation-bus.js";
import { MemoryForeignPrefixStore } from "../store/memory-foreign-prefix-store.js";
import { MemoryKeyStore } from "../store/memory-key-store.js";
import { MemoryOverrideStore } from "../store/memory-override-store.js";
import { MemoryRateLimitStore } from "../store/memory-rate-limit-store.js";
import { closeRedisClient, createRedisClient } from "../store/redis-client.js";
import { type DurabilityReport, inspectDurability } from "../store/redis-durability.js";
import { RedisForeignPrefixStore } from "../store/redis-foreign-prefix-store.js";
import { RedisKeyStore } from "../store/redis-key-store.js";
import { createKeyNames } from "../store/redis-keys.js";
import { RedisOverrideStore } from "../store/redis-override-store.js";
import { RedisRateLimitStore } from "../store/redis-rate-limit-store.js";
import { RedisStoreMarker } from "../store/redis-store-marker.js";
import type { Clock } from "../util/clock.js";
import { createDeadline } from "../util/deadline.js";
import type { MemoryUsage } from "../util/memory-usage.js";

/** What createBackend needs besides the settings. */
export interface BackendDeps {
  /** The embedded stores' clock (Redis scripts use Redis `TIME`). */
  clock: Clock;
  log: Logger;
  /** The breakers' metrics. */
  metrics: Metrics;
  /** Retention and bounds of the event stores (eventLimitsFromSettings). */
  eventLimits: EventStoreLimits;
  /** Traces: decision-path Redis calls become child spans. Undefined: off. */
  tracing?: Tracing;
}

/** Every store of the process. */
export interface Backend {
  /** "memory" for the embedded store, else the Redis mode. */
  kind: "memory" | Settings["redisMode"];
  /** Key records (on Redis, through the decision path's breaker). */
  keys: KeyStore;
  /** Registered foreign key prefixes. */
  prefixes: ForeignPrefixStore;
  /** Key records for export / import (on Redis, the bulk connection and breaker). */
  backupKeys: KeyStore;
  /** Foreign prefixes for import (on Redis, the bulk connection and breaker). */
  backupPrefixes: ForeignPrefixStore;
  /** Rate-limit counters and blocks. */
  rates: RateLimitStore;
  /** Owner limit overrides and the override indexes (on Redis, through the decision path's breaker). */
  overrides: OverrideStore;
  /** Events, alerts, detection state and usage counters. */
  events: EventStores;
  /** Invalidations between replicas (the embedded one only reaches this process). */
  bus: InvalidationBus;
  /** Sizes of the embedded stores, for the memory gauges (empty on Redis). */
  memory: Partial<Record<MemoryStructure, () => MemoryUsage>>;
  /** The Redis connection's handles; undefined for the embedded store. */
  redis?: RedisLink;
  /**
   * Closes the bus, the bulk connection and the Redis connection, in that
   * order, within `waitMs` in all; past it connections are dropped, not quit.
   */
  close(waitMs: number): Promise<void>;
}

/** The Redis connection, as the startup checks and store watches use it. */
export interface RedisLink {
  /** The store marker (emptied-store and pepper checks). */
  marker: StoreMarker;
  /** Reads eviction policy and persistence of every node. */
  inspectDurability(): Promise<DurabilityReport>;
  /** True while the connection takes commands. */
  connected(): boolean;
  /** True while the decision path's breaker is open or Redis fails its health ping. */
  storeDown(): boolean;
  /** Calls `listener` on every ready: the first, and after each reconnect. */
  onReady(listener: () => void): void;
  /**
   * Resolves true once the connection is ready, false on its first error
   * (e.g. connection refused) or after `timeoutMs`.
   */
  waitReady(timeoutMs: number): Promise<boolean>;
  /** Drops the connection at once (a start refused after connecting). */
  disconnect(): void;
}

/** The embedded store, or Redis in the mode the settings name. */
export function createBackend(settings: Settings, deps: BackendDeps): Backend {
  const usingRedis = settings.redisUrl !== "" || settings.redisMode !== "standalone";
  return usingRedis ? redisBackend(settings, deps) : memoryBackend(settings, deps);
}

/** Single replica; state is lost on exit. */
export function memoryBackend(settings: Settings, deps: BackendDeps): Backend {
  const keys = new MemoryKeyStore(deps.clock);
  const prefixes = new MemoryForeignPrefixStore();
  // The embedded rate-limit store and the insurance limiter share one pair of
  // bounds, each held separately (docs/security-bounds.md).
  const rates = new MemoryRateLimitStore(deps.clock, {
    maxEntries: settings.memoryRateMaxEntries,
    maxBytes: settings.memoryRateMaxBytes,
  });
  const events = memoryEventStores(deps.clock, deps.eventLimits);
  const bus = new MemoryInvalidationBus();
  deps.log.info("store: embedded in-memory (single replica; state is lost on exit)");
  return {
    kind: "memory",
    keys,
    prefixes,
    backupKeys: keys,
    backupPrefixes: prefixes,
    rates,
    overrides: new MemoryOverrideStore(),
    events,
    bus,
    memory: { ratelimit: () => rates.usage(), ...events.memory },
    close: () => bus.close(),
  };
}

function redisBackend(settings: Settings, deps: BackendDeps): Backend {
  const { log, metrics } = deps;
  let lastError = "";
  const redis = createRedisClient({
    mode: settings.redisMode,
    url:
      settings.redisUrl ||
      `redis://${settings.redisClusterNodes.split(",")[0] || "127.0.0.1:6379"}`,
    sentinels: settings.redisSentinels,
    sentinelMaster: settings.redisSentinelMaster,
    sentinelPassword: settings.redisSentinelPassword,
    clusterNodes: settings.redisClusterNodes,
    commandTimeoutMs: settings.redisCommandTimeoutMs,
    connectTimeoutMs: settings.redisConnectTimeoutMs,
    onError: (err) => {
      // ioredis repeats errors on every reconnect attempt; log each kind once.
      if (err.message !== lastError)
        log.error({ err: { message: err.message } }, "redis connection error");
      lastError = err.message;
    },
  });
  redis.on("ready", () => {
    lastError = "";
    log.info({ mode: settings.redisMode }, "redis ready");
  });
  const names = createKeyNames(settings.redisPrefix);
  const guardOf = (name: string, timeoutMs: number | false, tracing?: Tracing) =>
    new StoreGuard({
      name,
      timeoutMs,
      errorThresholdPercentage: settings.breakerErrorPercent,
      volumeThreshold: settings.breakerVolume,
      resetTimeoutMs: settings.breakerResetMs,
      // Off on Cluster: one dead master must not fail every slot (store-guard.ts).
      breaker: settings.redisMode !== "cluster",
      log,
      metrics,
      ...(tracing && { tracing }),
    });
  // Only the decision path's calls are traced (background writes have no decision to belong to).
  // No breaker timeout on the decision connection: each command has its
  // budget, and health is judged by the ping below (store-guard.ts).
  const guard = guardOf("redis", false, deps.tracing);
  const eventsGuard = guardOf("redis-events", false);
  // Not on Cluster: a ping reaches one node, and one dead master must not
  // fail every slot; there each command's budget bounds a dead slot.
  const health =
    settings.redisMode === "cluster"
      ? undefined
      : startRedisHealth({
          client: redis,
          intervalMs: settings.redisPingIntervalMs,
          timeoutMs: settings.breakerTimeoutMs,
          // The decision path only: background writes may wait out their
          // budget, and their own breaker opens on their own failures (its
          // alert means "background writes failing", not "Redis paused").
          onChange: (healthy) => guard.setHealthy(healthy),
        });
  const bulkGuard = guardOf("redis_bulk", settings.redisBulkTimeoutMs);
  const bulk = new BulkRedis(redis, names, settings.redisBulkTimeoutMs);
  const bus = new RedisInvalidationBus(redis, names.invalidationChannel(), () =>
    log.warn("ignored a malformed invalidation message"),
  );
  log.info({ mode: settings.redisMode }, "store: redis");
  return {
    kind: settings.redisMode,
    keys: guard.wrap("keys", new RedisKeyStore(redis, names)),
    prefixes: guard.wrap("foreign_prefixes", new RedisForeignPrefixStore(redis, names)),
    backupKeys: bulkGuard.wrap("bulk_keys", bulk.keyStore()),
    backupPrefixes: bulkGuard.wrap("bulk_foreign_prefixes", bulk.prefixStore()),
    rates: guard.wrap("ratelimit", new RedisRateLimitStore(redis, names)),
    overrides: guard.wrap("overrides", new RedisOverrideStore(redis, names)),
    events: redisEventStores(redis, settings.redisPrefix, eventsGuard, deps.eventLimits),
    bus,
    memory: {},
    redis: {
      marker: new RedisStoreMarker(redis, names),
      inspectDurability: () => inspectDurability(redis),
      connected: () => redis.status === "ready",
      storeDown: () => guard.open,
      onReady: (listener) => void redis.on("ready", listener),
      waitReady: (timeoutMs) =>
        Promise.race([
          // once() rejects on the client's first "error" (e.g. connection refused).
          once(redis, "ready").then(
            () => true,
            () => false,
          ),
          new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref()),
        ]),
      disconnect: () => redis.disconnect(),
    },
    async close(waitMs) {
      const deadline = createDeadline(waitMs);
      health?.stop();
      await bus.close();
      bulkGuard.shutdown();
      await bulk.close(deadline.remaining());
      guard.shutdown();
      eventsGuard.shutdown();
      await closeRedisClient(redis, deadline.remaining());
    },
  };
}
