/**
 * The notification markers on every store: the shared conformance cases on
 * the embedded store (manual clock), Redis standalone and a real 3-master
 * Redis Cluster, and on Redis every marker written carries an expiry.
 */
import { type Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryNotificationMarks } from "../../src/store/memory-notification-marks.js";
import { RedisNotificationMarks } from "../../src/store/redis-notification-marks.js";
import { ManualClock } from "../../src/util/clock.js";
import { notificationMarksCases } from "../conformance/notification-marks-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let cluster: TestCluster;
let standalone: Redis;
let clustered: Cluster;
let n = 0;

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  standalone = new Redis(redis.url);
  clustered = cluster.client();
}, 60_000);

afterAll(async () => {
  standalone?.disconnect();
  clustered?.disconnect();
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

notificationMarksCases("memory", () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  return {
    marks: new MemoryNotificationMarks(clock),
    wait: async (ms) => clock.advance(ms),
    now: () => clock.now(),
  };
});

notificationMarksCases("redis", () => ({
  marks: new RedisNotificationMarks(standalone, `nm${++n}:`),
  wait: sleep,
  now: () => Date.now(),
}));

notificationMarksCases("redis cluster", () => ({
  marks: new RedisNotificationMarks(clustered, `nmc${++n}:`),
  wait: sleep,
  now: () => Date.now(),
}));

describe("notification markers: housekeeping", () => {
  it("every marker written on Redis expires at its period's end", async () => {
    const prefix = `nmx${++n}:`;
    const marks = new RedisNotificationMarks(standalone, prefix);
    await marks.claim("k:key_a", "q:daily:day1:80", Date.now() + 3_600_000);
    await marks.claim("o:acme", "ke:1", Date.now() + 86_400_000);
    const keys = await standalone.keys(`${prefix}*`);
    expect(keys.sort()).toEqual([
      `${prefix}nm:{k:key_a}:q:daily:day1:80`,
      `${prefix}nm:{o:acme}:ke:1`,
    ]);
    for (const k of keys) {
      const ttl = await standalone.pttl(k);
      expect(ttl).toBeGreaterThan(3_500_000);
      expect(ttl).toBeLessThanOrEqual(86_400_000);
    }
  });

  it("the embedded store stays within its bound, dropping the oldest claims", async () => {
    const clock = new ManualClock(0);
    const marks = new MemoryNotificationMarks(clock, 100);
    for (let i = 0; i < 250; i++) await marks.claim(`k:${i}`, "m", 1e12);
    expect(marks.size()).toBeLessThanOrEqual(100);
    // The newest claim is still held; the oldest was let go.
    expect(await marks.claim("k:249", "m", 1e12)).toBe(false);
    expect(await marks.claim("k:0", "m", 1e12)).toBe(true);
  });
});
