/**
 * The store marker (the pepper fingerprint kept with the keys) on every
 * implementation: MemoryStoreMarker, RedisStoreMarker on a spawned standalone
 * redis-server and on a real 3-master Redis Cluster; then the pepper check
 * built on it. Each Redis case writes under its own key prefix.
 */
import { randomBytes } from "node:crypto";
import { type Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPepper, pepperFingerprint } from "../../src/keys/pepper-fingerprint.js";
import type { StoreMarker } from "../../src/keys/store-marker.js";
import { MemoryKeyStore } from "../../src/store/memory-key-store.js";
import { MemoryStoreMarker } from "../../src/store/memory-store-marker.js";
import { RedisKeyStore } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisStoreMarker } from "../../src/store/redis-store-marker.js";
import { ManualClock } from "../../src/util/clock.js";
import { createKeyDomain } from "../conformance/key-store-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

let cases = 0;
const run = randomBytes(3).toString("hex");
const uniquePrefix = (what: string) => `smk-${what}-${run}-${++cases}:`;

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

const FP_A = pepperFingerprint(Buffer.from("marker-suite-pepper-A-0123456789"));
const FP_B = pepperFingerprint(Buffer.from("marker-suite-pepper-B-0123456789"));

const implementations: [string, () => StoreMarker][] = [
  ["MemoryStoreMarker", () => new MemoryStoreMarker()],
  [
    "RedisStoreMarker on standalone Redis",
    () => new RedisStoreMarker(standaloneClient as Redis, createKeyNames(uniquePrefix("s"))),
  ],
  [
    "RedisStoreMarker on a 3-master Redis Cluster",
    () => new RedisStoreMarker(clusterClient as Cluster, createKeyNames(uniquePrefix("c"))),
  ],
];

for (const [name, make] of implementations) {
  describe(name, () => {
    it("the first claim writes, later ones read the stored fingerprint", async () => {
      const m = make();
      expect(await m.claim(FP_A)).toEqual({ fingerprint: FP_A, created: true });
      expect(await m.claim(FP_B)).toEqual({ fingerprint: FP_A, created: false });
      expect(await m.claim(FP_A)).toEqual({ fingerprint: FP_A, created: false });
    });

    it("of concurrent claims exactly one writes, and all see the winner", async () => {
      const m = make();
      const claims = await Promise.all(
        Array.from({ length: 8 }, (_, i) => m.claim(i % 2 ? FP_A : FP_B)),
      );
      expect(claims.filter((c) => c.created)).toHaveLength(1);
      const winner = claims.find((c) => c.created)?.fingerprint;
      for (const c of claims) expect(c.fingerprint).toBe(winner);
    });

    it("replace overwrites the stored fingerprint", async () => {
      const m = make();
      await m.claim(FP_A);
      await m.replace(FP_B);
      expect(await m.claim(FP_A)).toEqual({ fingerprint: FP_B, created: false });
    });
  });
}

describe("RedisStoreMarker layout", () => {
  it("is one hash-tagged key without expiry under the prefix, on standalone and Cluster", async () => {
    for (const client of [standaloneClient as Redis, clusterClient as Cluster]) {
      const prefix = uniquePrefix("layout");
      await new RedisStoreMarker(client, createKeyNames(prefix)).claim(FP_A);
      const key = `${prefix}marker:{marker}`;
      expect(await client.get(key)).toBe(FP_A);
      expect(await client.pttl(key)).toBe(-1);
    }
  });
});

describe("checkPepper", () => {
  const clock = new ManualClock();
  it("records on a new store, matches the same pepper, and refuses another", async () => {
    const marker = new MemoryStoreMarker();
    const keys = new MemoryKeyStore(clock);
    const o = { marker, keys, acceptNew: false };
    expect(await checkPepper({ ...o, fingerprint: FP_A })).toEqual({
      outcome: "recorded",
      adopted: false,
    });
    expect(await checkPepper({ ...o, fingerprint: FP_A })).toEqual({ outcome: "matched" });
    expect(await checkPepper({ ...o, fingerprint: FP_B })).toEqual({
      outcome: "mismatch",
      stored: FP_A,
    });
  });

  it("adopts a store holding keys but no fingerprint, and replaces one only when asked", async () => {
    const marker = new RedisStoreMarker(
      standaloneClient as Redis,
      createKeyNames(uniquePrefix("chk")),
    );
    const names = createKeyNames(uniquePrefix("chk-keys"));
    const keys = new RedisKeyStore(standaloneClient as Redis, names);
    const d = createKeyDomain(keys, { now: () => Date.now() });
    await d.keys.create(d.newKey({ owner: "older-version" }));
    expect(await checkPepper({ marker, keys, fingerprint: FP_A, acceptNew: false })).toEqual({
      outcome: "recorded",
      adopted: true,
    });
    expect(await checkPepper({ marker, keys, fingerprint: FP_B, acceptNew: true })).toEqual({
      outcome: "replaced",
      previous: FP_A,
    });
    expect(await checkPepper({ marker, keys, fingerprint: FP_A, acceptNew: false })).toEqual({
      outcome: "mismatch",
      stored: FP_B,
    });
  });
});
