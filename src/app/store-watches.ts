/**
 * Watches over a Redis store's keys, started before anything serves: the
 * pepper they were made with (a different one refuses the start, or stops a
 * running process after a reconnect), whether this Redis can lose them
 * (eviction policy, persistence) and whether it did (an emptied store). The
 * embedded store needs none: its pepper may be random per process, and its
 * keys die with the process anyway.
 */

import type { Settings } from "../config/settings.js";
import { StartupError } from "../config/startup-error.js";
import { pepperFingerprint } from "../keys/pepper-fingerprint.js";
import { PepperWatch } from "../keys/pepper-watch.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { DurabilityWatch } from "../resilience/durability-watch.js";
import { EmptiedStoreWatch } from "../resilience/emptied-store-watch.js";
import type { Clock } from "../util/clock.js";
import type { Backend } from "./backend.js";

/** Options of startStoreWatches. */
export interface StoreWatchesOptions {
  backend: Backend;
  settings: Settings;
  /** This process's pepper. */
  pepper: Buffer;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** The store was found emptied at `at` (ms). */
  onEmptied: (at: number) => void;
  /** A check after the start found keys made with another pepper: stop serving. */
  onMismatch: (err: StartupError) => void;
}

/** Running watches. */
export interface StoreWatches {
  /** When the store was noticed emptied, ms; undefined if it was not. */
  emptiedAt(): number | undefined;
  /** Stops every watch's timers (before the store closes). */
  close(): void;
}

/**
 * Starts the watches and waits for Redis — up to the connect timeout, so a
 * Redis outage at startup cannot keep the pod out of service (fail modes
 * apply until it appears).
 * @throws StartupError when the connected store was made with another pepper,
 *   or can evict key records (unless allowed).
 */
export async function startStoreWatches(o: StoreWatchesOptions): Promise<StoreWatches> {
  const redis = o.backend.redis;
  if (!redis) return { emptiedAt: () => undefined, close: () => {} };
  const { settings, log, metrics } = o;
  const pepperWatch = new PepperWatch({
    marker: redis.marker,
    keys: o.backend.keys,
    fingerprint: pepperFingerprint(o.pepper),
    acceptNew: settings.acceptNewPepper,
    connected: redis.connected,
    log,
    onMismatch: (message) => o.onMismatch(new StartupError(message)),
  });
  // On every ready: the first (awaited below), a Redis that was down at
  // startup appearing, and each reconnect (a Redis restarted empty).
  redis.onReady(() => void pepperWatch.verify());
  const durability = new DurabilityWatch({
    inspect: redis.inspectDurability,
    allowEvicting: settings.allowEvictingRedis,
    log,
    setDurable: (v) => metrics.storeDurable.set(v),
  });
  const emptied = new EmptiedStoreWatch({
    marker: redis.marker,
    clock: o.clock,
    log,
    intervalMs: settings.storeCheckIntervalMs,
    onEmptied: o.onEmptied,
  });
  redis.onReady(() => {
    void durability.check();
    void emptied.check();
  });
  durability.start();
  emptied.start();
  const watches: StoreWatches = {
    emptiedAt: () => emptied.emptiedAt,
    close() {
      durability.close();
      emptied.close();
      pepperWatch.close();
    },
  };
  const connected = await redis.waitReady(settings.redisConnectTimeoutMs);
  if (!connected) log.warn("redis not reachable at startup: serving by fail mode until it is");
  // A pepper the keys were not made with refuses to start. Without Redis
  // the check waits for its "ready"; one slower than the connect timeout
  // goes on in the background. Either way a mismatch then is `onMismatch`.
  const refusal = connected
    ? await pepperWatch.refusalAtStartup(settings.redisConnectTimeoutMs)
    : undefined;
  const evicting = connected && !refusal ? await durability.check() : undefined;
  if (refusal || evicting) {
    watches.close();
    redis.disconnect();
    throw new StartupError((refusal ?? evicting) as string);
  }
  return watches;
}
