/**
 * The key-store conformance suite on every KeyStore Tollgate ships: the
 * embedded MemoryKeyStore (on a ManualClock), RedisKeyStore on a spawned
 * standalone redis-server, and RedisKeyStore on a real 3-master Redis Cluster.
 * Each Redis case writes under its own key prefix. On the Cluster, a scenario's
 * keys are then read back from every master to prove each one is hash-tagged.
 */
import { randomBytes } from "node:crypto";
import { type Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BulkRedis } from "../../src/store/bulk-redis.js";
import { MemoryForeignPrefixStore } from "../../src/store/memory-foreign-prefix-store.js";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { RedisForeignPrefixStore } from "../../src/store/redis-foreign-prefix-store.js";
import { RedisKeyStore } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { ManualClock } from "../../src/util/clock.js";
import { keyImportConformance } from "../conformance/key-import-cases.js";
import {
  createKeyDomain,
  type FixtureClock,
  type KeyStoreFixture,
  keyStoreConformance,
} from "../conformance/key-store-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Redis keeps real time (PXAT expiries), so the domain does too, and waiting means sleeping. */
const realClock: FixtureClock = { now: () => Date.now(), advance: sleep };

/** A prefix no other case (or other run sharing a REDIS_URL) uses. */
let cases = 0;
const run = randomBytes(3).toString("hex");
const uniquePrefix = (what: string) => `ksc-${what}-${run}-${++cases}:`;

let standalone: TestRedis | undefined;
let standaloneClient: Redis | undefined;
let cluster: TestCluster | undefined;
let clusterClient: Cluster | undefined;

beforeAll(async () => {
  [standalone, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  standaloneClient = new Redis(standalone.url, { maxRetriesPerRequest: 1 });
  clusterClient = cluster.client();
  await Promise.all([standaloneClient.ping(), clusterClient.ping()]);
}, 60_000);

afterAll(async () => {
  await Promise.all([standaloneClient?.quit(), clusterClient?.quit()]);
  await Promise.all([standalone?.stop(), cluster?.stop()]);
});

const memory = async (): Promise<KeyStoreFixture> => {
  const manual = new ManualClock();
  return {
    store: new MemoryKeyStore(manual),
    prefixes: new MemoryForeignPrefixStore(),
    clock: { now: () => manual.now(), advance: async (ms) => manual.advance(ms) },
    cleanup: async () => {},
  };
};

/** A RedisKeyStore and its foreign prefix set under a fresh key prefix. */
function redisFixture(client: Redis | Cluster, what: string): KeyStoreFixture {
  const names = createKeyNames(uniquePrefix(what));
  return {
    store: new RedisKeyStore(client, names),
    prefixes: new RedisForeignPrefixStore(client, names),
    clock: realClock,
    cleanup: async () => {},
  };
}
const standaloneFixture = async () => redisFixture(standaloneClient as Redis, "s");
const clusterFixture = async () => redisFixture(clusterClient as Cluster, "c");

keyStoreConformance("MemoryKeyStore", memory);
keyStoreConformance("RedisKeyStore on standalone Redis", standaloneFixture);
keyStoreConformance("RedisKeyStore on a 3-master Redis Cluster", clusterFixture);
keyImportConformance("MemoryKeyStore", memory);
keyImportConformance("RedisKeyStore on standalone Redis", standaloneFixture);
keyImportConformance("RedisKeyStore on a 3-master Redis Cluster", clusterFixture);

/** The stores on the bulk connection export and import use (bulk-redis.ts), made on first use. */
function bulkFixture(client: Redis | Cluster, what: string): KeyStoreFixture {
  const bulk = new BulkRedis(client, createKeyNames(uniquePrefix(what)), 2000);
  return {
    store: bulk.keyStore(),
    prefixes: bulk.prefixStore(),
    clock: realClock,
    cleanup: () => bulk.close(500),
  };
}
keyImportConformance("the bulk connection on standalone Redis", async () =>
  bulkFixture(standaloneClient as Redis, "bs"),
);
keyImportConformance("the bulk connection on a 3-master Redis Cluster", async () =>
  bulkFixture(clusterClient as Cluster, "bc"),
);

describe("RedisKeyStore on a 3-master Redis Cluster: key layout", () => {
  it("writes only hash-tagged keys, spread over the masters, in a full key lifecycle", async () => {
    const c = clusterClient as Cluster;
    const prefix = uniquePrefix("layout");
    const d = createKeyDomain(new RedisKeyStore(c, createKeyNames(prefix)), realClock);
    const created = [];
    for (let i = 0; i < 6; i++) created.push(await d.keys.create(d.newKey({ owner: `o${i}` })));
    const [a, b, e] = created.map((k) => k.record.id) as [string, string, string];
    expect(typeof (await d.keys.rotateById(a, 60_000))).toBe("object");
    expect(typeof (await d.keys.rotateById(a, 60_000))).toBe("object");
    expect(typeof (await d.keys.rotateById(b, 0))).toBe("object");
    expect(typeof (await d.keys.update(e, { scopes: ["*"] }))).toBe("object");
    expect(typeof (await d.keys.revoke(b, "test"))).toBe("object");
    expect((await d.keys.list({ limit: 100, includeRevoked: true })).records).toHaveLength(6);

    const masters = c.nodes("master");
    expect(masters).toHaveLength(3);
    const byMaster: string[][] = [];
    for (const node of masters) {
      const found: string[] = [];
      let cursor = "0";
      do {
        const [next, batch] = await node.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        cursor = next;
        found.push(...batch);
      } while (cursor !== "0");
      byMaster.push(found);
    }
    const all = byMaster.flat();
    // 6 records + 6 current digests + 1 grace digest of `a` + the id index.
    expect(all).toHaveLength(14);
    const shape = new RegExp(`^${prefix}(key|kd|keys):\\{[^{}]+\\}$`);
    for (const k of all) expect(k).toMatch(shape);
    expect(all.filter((k) => k.startsWith(`${prefix}keys:`))).toEqual([`${prefix}keys:{index}`]);
    // Random ids and digests land in different slots: the cluster is really used.
    expect(byMaster.filter((keys) => keys.length > 0).length).toBeGreaterThanOrEqual(2);
    // The grace-period digest is the one key here with an expiry, set from the rotation.
    const ttls = await Promise.all(all.map(async (k) => [k, await c.pttl(k)] as const));
    const expiring = ttls.filter(([, ttl]) => ttl > 0);
    expect(expiring).toHaveLength(1);
    expect(expiring[0]?.[1]).toBeLessThanOrEqual(60_000);
  });
});
