/**
 * The key conformance cases on the embedded store, a spawned standalone
 * redis-server and a real 3-master Redis Cluster; plus, on the Cluster, a scan
 * proving every key Tollgate wrote is hash-tagged (one slot per operation).
 */
import type { Cluster, Redis } from "ioredis";
import { Redis as RedisClient } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { RedisKeyStore } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { ManualClock, systemClock } from "../../src/util/clock.js";
import { keysConformance } from "../conformance/keys-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let n = 0;

keysConformance("embedded", () => {
  const clock = new ManualClock();
  return {
    store: new MemoryKeyStore(clock),
    clock,
    wait: async (ms) => clock.advance(ms),
  };
});

let redis: TestRedis;
let client: Redis;
let cluster: TestCluster;
let clusterClient: Cluster;

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  client = new RedisClient(redis.url, { enableAutoPipelining: true });
  clusterClient = cluster.client();
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  clusterClient?.disconnect();
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

keysConformance("standalone redis", () => ({
  store: new RedisKeyStore(client, createKeyNames(`kc${++n}:`)),
  clock: systemClock,
  wait: sleep,
}));

keysConformance("redis cluster", () => ({
  store: new RedisKeyStore(clusterClient, createKeyNames(`kcc${++n}:`)),
  clock: systemClock,
  wait: sleep,
}));

describe("redis cluster: layout", () => {
  it("every key written is hash-tagged, and tenants' tags cannot collide", async () => {
    const nodes = cluster.startupNodes.map((s) => new RedisClient(s.port, s.host));
    try {
      const keys: string[] = [];
      for (const node of nodes) {
        let cursor = "0";
        do {
          const [next, batch] = await node.scan(cursor, "MATCH", "kcc*", "COUNT", 1000);
          cursor = next;
          keys.push(...batch);
        } while (cursor !== "0");
      }
      expect(keys.length).toBeGreaterThan(10);
      for (const k of keys) expect(k).toMatch(/\{[^{}]+\}/);
    } finally {
      for (const node of nodes) node.disconnect();
    }
    const names = createKeyNames("t:");
    expect(names.record("a}b")).not.toBe(names.record("a%7Db"));
    expect(names.record("{x}")).toMatch(/^t:key:\{%7Bx%7D\}$/);
  });
});
