/**
 * Judges Redis health by Redis: a PING on the decision connection every
 * interval. A ping not answered within its timeout (or failing) marks the
 * connection unhealthy, which makes its guards fail fast; the next answered
 * ping marks it healthy again. Pings are skipped while the connection is not
 * ready (commands then fail at once anyway: no offline queue) and while one
 * is still out, so a paused Redis gets at most one ping at a time.
 *
 * Why a ping and not the decision calls' own latency: under load a command
 * waits in this process (event loop, auto-pipeline) as long as in Redis, so
 * timing decision calls judged the queue. A ping is one tiny command every
 * half second; only a Redis that does not answer it for the whole timeout
 * (paused, partitioned, blocked by a slow script) is called unhealthy.
 */
import type { RedisClient } from "../store/redis-client.js";
import { settlesWithin } from "../util/deadline.js";

/** Options of startRedisHealth. */
export interface RedisHealthOptions {
  client: RedisClient;
  intervalMs: number;
  /** A ping unanswered this long marks Redis unhealthy, ms. */
  timeoutMs: number;
  /** Told each change of health (first: healthy, as the guards start). */
  onChange(healthy: boolean): void;
}

/** A running health check. */
export interface RedisHealth {
  /** Stops pinging (shutdown). */
  stop(): void;
}

/** Starts pinging; the timer does not keep the process alive. */
export function startRedisHealth(o: RedisHealthOptions): RedisHealth {
  let healthy = true;
  let pinging = false;
  const set = (h: boolean) => {
    if (h === healthy) return;
    healthy = h;
    o.onChange(h);
  };
  const tick = () => {
    if (pinging || o.client.status !== "ready") return;
    pinging = true;
    const ping = o.client.ping();
    void settlesWithin(
      ping.then(() => set(true)),
      o.timeoutMs,
    ).then((settled) => {
      // A ping that failed (rejected) settled too: it is unhealthy as well.
      if (!settled) set(false);
      pinging = false;
    });
    ping.catch(() => set(false));
  };
  const timer = setInterval(tick, o.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
