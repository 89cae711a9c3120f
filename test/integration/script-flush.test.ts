/**
 * Every Redis store family survives an emptied script cache: between calls
 * the test runs SCRIPT FLUSH on every master (what a restart or a failover to
 * a replica that never cached the scripts does), and each next call still
 * answers, with nothing lost — a whole batch of events included. Runs on a
 * private standalone redis-server with the production client options
 * (auto-pipelining on) and on a real 3-master Cluster.
 */
import { randomUUID } from "node:crypto";
import { Cluster, type Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SecurityEvent } from "../../src/events/event.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { createRedisClient, type RedisClient } from "../../src/store/redis-client.js";
import { RedisDetectionStore } from "../../src/store/redis-detection-store.js";
import { RedisEventStore } from "../../src/store/redis-event-store.js";
import { RedisKeyStore } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisRateLimitStore } from "../../src/store/redis-rate-limit-store.js";
import { freshTag, rateLimit } from "../conformance/rate-limit-store-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";

let standalone: TestRedis;
let cluster: TestCluster;
const clients: { name: string; client: RedisClient }[] = [];

beforeAll(async () => {
  [standalone, cluster] = await Promise.all([spawnRedis(), startTestCluster()]);
  const options = { commandTimeoutMs: 2_000, connectTimeoutMs: 2_000 };
  clients.push(
    {
      name: "standalone",
      client: createRedisClient({ mode: "standalone", url: standalone.url, ...options }),
    },
    {
      name: "cluster",
      client: createRedisClient({
        mode: "cluster",
        url: `redis://127.0.0.1:${cluster.nodes[0]?.port}`,
        clusterNodes: cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(","),
        ...options,
      }),
    },
  );
  // No offline queue (as in production): wait until each client is ready.
  await Promise.all(
    clients.map(
      ({ client }) =>
        new Promise<void>((resolve) => {
          if (client.status === "ready") resolve();
          else client.once("ready", () => resolve());
        }),
    ),
  );
}, 60_000);

afterAll(async () => {
  for (const { client } of clients) client.disconnect();
  await Promise.all([standalone?.stop(), cluster?.stop()]);
});

/** Empties the script cache of every master the client talks to. */
async function flushScripts(client: RedisClient): Promise<void> {
  const masters: Redis[] = client instanceof Cluster ? client.nodes("master") : [client];
  await Promise.all(masters.map((m) => m.script("FLUSH")));
}

function client(name: string): RedisClient {
  const c = clients.find((x) => x.name === name)?.client;
  if (!c) throw new Error(`no ${name} client`);
  return c;
}

const event = (i: number): SecurityEvent => ({
  id: `flush-${randomUUID()}-${i}`,
  type: "auth.failure",
  subject: "203.0.113.9",
  subjectKind: "ip",
  endpoint: "login",
  severity: "medium",
  attributes: {},
  time: Date.now(),
  clientIp: "203.0.113.9",
  keyId: "",
});

const record = (id: string): KeyRecord => ({
  id,
  owner: "flush",
  tier: "free",
  scopes: [],
  metadata: {},
  status: "active",
  environment: "test",
  createdAt: 1,
  updatedAt: 1,
  ipAllow: [],
  ipDeny: [],
  digest: `d-${id}`,
  secretCreatedAt: 1,
  version: 1,
});

describe.each(["standalone", "cluster"])("SCRIPT FLUSH between calls (%s)", (name) => {
  it("rate limits: every decision after a flush is charged exactly once", async () => {
    const c = client(name);
    const store = new RedisRateLimitStore(c, createKeyNames(`sf-rl-${randomUUID()}:`));
    const tag = freshTag();
    const limit = rateLimit("flush", 10, 60_000);
    const remaining: number[] = [];
    for (let i = 0; i < 4; i++) {
      await flushScripts(c);
      const v = await store.decide({ items: [{ tag, limit }], cost: 1, blockTags: [] });
      expect(v.status).toBe("ok");
      remaining.push(v.outcomes[0]?.remaining ?? -1);
    }
    expect(remaining).toEqual([9, 8, 7, 6]);
    // Concurrent decisions right after a flush (one auto-pipelined batch).
    await flushScripts(c);
    const many = await Promise.all(
      Array.from({ length: 6 }, () =>
        store.decide({ items: [{ tag, limit }], cost: 1, blockTags: [] }),
      ),
    );
    expect(many.filter((v) => v.status === "ok")).toHaveLength(6);
    const after = await store.decide({ items: [{ tag, limit }], cost: 1, blockTags: [] });
    expect(after.status).toBe("limited");
  });

  it("rate limits across subjects: a denial's refund after a flush leaves nothing charged", async () => {
    const c = client(name);
    const store = new RedisRateLimitStore(c, createKeyNames(`sf-rf-${randomUUID()}:`));
    const [a, b] = [freshTag(), freshTag("i")];
    const roomy = rateLimit("roomy", 10, 60_000);
    const tight = rateLimit("tight", 1, 60_000);
    const req = {
      items: [
        { tag: a, limit: roomy },
        { tag: b, limit: tight },
      ],
      cost: 1,
      blockTags: [],
    };
    expect((await store.decide(req)).status).toBe("ok");
    await flushScripts(c);
    const denied = await store.decide(req);
    expect(denied.status).toBe("limited");
    // Only the first (allowed) decision charged `roomy`.
    expect(denied.outcomes[0]?.remaining).toBe(9);
  });

  it("events: a batch appended right after a flush is stored whole, alerts too", async () => {
    const c = client(name);
    const store = new RedisEventStore(c, `sf-ev-${randomUUID()}:`, {
      maxAgeMs: 60_000,
      maxEvents: 10_000,
      maxAlerts: 100,
    });
    const first = Array.from({ length: 5 }, (_, i) => event(i));
    await store.append(first);
    await flushScripts(c);
    const batch = Array.from({ length: 40 }, (_, i) => event(100 + i));
    const r = await store.append(batch);
    expect(r.accepted).toHaveLength(40);
    expect(r.duplicates).toEqual([]);
    // Idempotency markers survived the flush: a repeat is still a duplicate.
    await flushScripts(c);
    const again = await store.append(first.slice(0, 2));
    expect(again.duplicates).toHaveLength(2);
    const page = await store.list({}, 100);
    expect(page.items).toHaveLength(45);
    await flushScripts(c);
    await store.appendAlert({
      id: `a-${randomUUID()}`,
      rule: "flush",
      severity: "high",
      subject: "203.0.113.9",
      subjectKind: "ip",
      message: "m",
      firedAt: Date.now(),
    });
    expect((await store.listAlerts({}, 10)).items).toHaveLength(1);
  });

  it("events: batches appended while the script cache is flushed over and over are stored whole", async () => {
    const c = client(name);
    const store = new RedisEventStore(c, `sf-evl-${randomUUID()}:`, {
      maxAgeMs: 60_000,
      maxEvents: 100_000,
      maxAlerts: 100,
    });
    let flushing = true;
    let flushes = 0;
    const flusher = (async () => {
      while (flushing) {
        await flushScripts(c);
        flushes++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    let accepted = 0;
    try {
      for (let round = 0; round < 30; round++) {
        const r = await store.append(Array.from({ length: 20 }, (_, i) => event(i)));
        accepted += r.accepted.length;
      }
    } finally {
      flushing = false;
      await flusher;
    }
    expect(flushes).toBeGreaterThan(5);
    expect(accepted).toBe(600);
    expect((await store.list({}, 1000)).items).toHaveLength(600);
  });

  it("detection: windows, spikes and tracked subjects keep counting across flushes", async () => {
    const c = client(name);
    const store = new RedisDetectionStore(c, `sf-dt-${randomUUID()}:`);
    const tag = freshTag("i");
    const op = {
      tag,
      rule: "brute",
      mode: "count" as const,
      windowMs: 60_000,
      threshold: 100,
      cap: 1000,
      cooldownMs: 60_000,
    };
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      await flushScripts(c);
      counts.push((await store.window({ ...op, members: [`m${i}`] })).count);
    }
    expect(counts).toEqual([1, 2, 3]);
    const spike = {
      tag,
      rule: "spike",
      bucketMs: 60_000,
      alpha: 0.5,
      factor: 3,
      minHistory: 3,
      minRequests: 10,
      cooldownMs: 60_000,
      ttlMs: 60_000,
    };
    await store.spike({ ...spike, requests: 2 });
    await flushScripts(c);
    expect((await store.spike({ ...spike, requests: 3 })).current).toBe(5);
    await flushScripts(c);
    expect(
      await store.track?.({ rule: "brute", tags: [tag, "i:x"], lifetimeMs: 60_000, cap: 1 }),
    ).toHaveLength(1);
  });

  it("keys: compare-and-set and import claims work right after a flush", async () => {
    const c = client(name);
    const store = new RedisKeyStore(c, createKeyNames(`sf-ks-${randomUUID()}:`));
    const id = `key_${randomUUID()}`;
    expect(await store.create(record(id))).toBe(true);
    await flushScripts(c);
    expect(await store.replace({ ...record(id), owner: "moved", version: 2 }, 1)).toBe(true);
    expect((await store.get(id))?.owner).toBe("moved");
    await flushScripts(c);
    const other = `key_${randomUUID()}`;
    const w = await store.importRecord(record(other), [{ digest: `d-${other}` }], "create");
    expect(w).toBe("written");
    expect(await store.findIdByDigest(`d-${other}`)).toBe(other);
  });
});
