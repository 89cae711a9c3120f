/**
 * The override-store conformance suite on every OverrideStore Tollgate ships:
 * the embedded MemoryOverrideStore, RedisOverrideStore on a spawned
 * standalone redis-server and on a real 3-master Redis Cluster, each Redis
 * case under its own key prefix. Also: a key record holding overrides round
 * trips through RedisKeyStore (they live in the record), and an owner's hash
 * sits in the owner's rate-limit slot on the Cluster.
 */
import { randomBytes } from "node:crypto";
import { type Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { MemoryOverrideStore } from "../../src/store/memory-override-store.js";
import { RedisKeyStore } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisOverrideStore } from "../../src/store/redis-override-store.js";
import { overrideStoreConformance } from "../conformance/override-store-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

let cases = 0;
const run = randomBytes(3).toString("hex");
const uniquePrefix = (what: string) => `osc-${what}-${run}-${++cases}:`;

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

overrideStoreConformance("MemoryOverrideStore", async () => new MemoryOverrideStore());
overrideStoreConformance(
  "RedisOverrideStore on standalone Redis",
  async () => new RedisOverrideStore(standaloneClient as Redis, createKeyNames(uniquePrefix("s"))),
);
overrideStoreConformance(
  "RedisOverrideStore on a 3-master Redis Cluster",
  async () => new RedisOverrideStore(clusterClient as Cluster, createKeyNames(uniquePrefix("c"))),
);

describe("overrides in Redis", () => {
  it("a key record's overrides round trip through RedisKeyStore (standalone and Cluster)", async () => {
    for (const client of [standaloneClient as Redis, clusterClient as Cluster]) {
      const store = new RedisKeyStore(client, createKeyNames(uniquePrefix("k")));
      const record: KeyRecord = {
        id: "key_0123456789abcdef",
        owner: "acme",
        tier: "free",
        scopes: [],
        metadata: {},
        status: "active",
        environment: "live",
        createdAt: 1,
        updatedAt: 1,
        ipAllow: [],
        ipDeny: [],
        digest: "d",
        secretCreatedAt: 1,
        version: 1,
        overrides: [{ limit: "per-key", exempt: false, requests: 5, burst: 9, createdAt: 2 }],
      };
      expect(await store.create(record)).toBe(true);
      expect((await store.get(record.id))?.overrides).toEqual(record.overrides);
    }
  });

  it("an owner's hash is in the owner's rate-limit slot ({o:<owner>}) on the Cluster", async () => {
    const names = createKeyNames(uniquePrefix("slot"));
    const s = new RedisOverrideStore(clusterClient as Cluster, names);
    await s.setOwnerOverride("acme", { limit: "x", exempt: true, requests: 0, createdAt: 1 });
    const c = clusterClient as Cluster;
    const slotOf = async (key: string) => Number(await c.call("CLUSTER", "KEYSLOT", key));
    expect(await slotOf(names.ownerOverrides("acme"))).toBe(
      await slotOf(names.bucket("o:acme", "b")),
    );
    expect(await c.exists(names.ownerOverrides("acme"))).toBe(1);
  });
});
