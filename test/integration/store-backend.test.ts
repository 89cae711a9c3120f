/**
 * createBackend picks the store the settings name — embedded, standalone
 * Redis, Sentinel or Cluster — and each one it returns is a working set: a key
 * written through its key store reads back through the backup (bulk) store,
 * an invalidation published reaches a subscriber, the Redis link reports ready
 * and reads durability, and close() keeps to its budget.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, createBackend } from "../../src/app/backend.js";
import { loadSettings } from "../../src/config/settings.js";
import { eventLimitsFromSettings } from "../../src/events/events-runtime.js";
import type { Invalidation } from "../../src/keys/invalidation-bus.js";
import type { KeyRecord } from "../../src/keys/key-record.js";
import { Metrics } from "../../src/observability/metrics.js";
import { systemClock } from "../../src/util/clock.js";
import { freePort } from "../helpers/free-port.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis, waitForPing } from "../helpers/redis-server.js";

let redis: TestRedis;
let cluster: TestCluster;
let sentinel: { port: number; child: ChildProcess; dir: string };
let n = 0;

/** One sentinel (quorum 1) watching `masterPort` as "mymaster". */
async function startSentinel(masterPort: number): Promise<typeof sentinel> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-backend-sentinel-"));
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`,
      "",
    ].join("\n"),
  );
  const child = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
  await waitForPing(`redis://127.0.0.1:${port}`, 5_000);
  return { port, child, dir };
}

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  sentinel = await startSentinel(redis.port);
}, 60_000);

afterAll(async () => {
  if (sentinel) {
    const exited = new Promise((r) => sentinel.child.once("exit", r));
    sentinel.child.kill("SIGKILL");
    await exited;
    rmSync(sentinel.dir, { recursive: true, force: true });
  }
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

function backendFor(env: Record<string, string>): Backend {
  const settings = loadSettings({
    TOLLGATE_REDIS_PREFIX: `backend${++n}:`,
    // The 10 ms default is for a sidecar's local Redis, not two busy test cores.
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
    ...env,
  });
  return createBackend(settings, {
    clock: systemClock,
    log: pino({ level: "silent" }),
    metrics: new Metrics(() => 0, { processMetrics: false }),
    eventLimits: eventLimitsFromSettings(settings),
  });
}

function record(id: string): KeyRecord {
  const now = Date.now();
  return {
    id,
    owner: "backend-test",
    tier: "free",
    scopes: [],
    metadata: {},
    status: "active",
    environment: "test",
    createdAt: now,
    updatedAt: now,
    ipAllow: [],
    ipDeny: [],
    digest: `digest-${id}`,
    secretCreatedAt: now,
    version: 1,
  };
}

/** Writes a key and reads it back both ways, and sends one invalidation round. */
async function exercise(b: Backend): Promise<void> {
  const id = `key-${n}`;
  expect(await b.keys.create(record(id))).toBe(true);
  expect((await b.keys.get(id))?.owner).toBe("backend-test");
  expect((await b.backupKeys.get(id))?.id).toBe(id);
  const got = new Promise<Invalidation>((resolve) => void b.bus.subscribe(resolve));
  // A Redis subscription takes a moment to be in place: publish until heard.
  const timer = setInterval(() => void b.bus.publish({ digests: ["d"], ids: [id] }), 50);
  try {
    expect((await got).ids).toEqual([id]);
  } finally {
    clearInterval(timer);
  }
}

/** A batched limit through the backend's rate store: allotments taken, spent and given back. */
async function exerciseBatched(b: Backend): Promise<void> {
  const { BatchedRateLimitStore } = await import("../../src/ratelimit/batched-store.js");
  const { quotaLimit } = await import("../conformance/rate-limit-store-cases.js");
  const store = new BatchedRateLimitStore(b.rates, {
    clock: systemClock,
    ...(b.redis && { storeDown: b.redis.storeDown }),
  });
  // Takes of 8 (0.4 × 20).
  const limit = {
    ...quotaLimit("batched", 20, "day"),
    batch: { localShare: 0.4, flushMs: 60_000 },
  };
  const item = { tag: `s:batched-${n}`, limit };
  let admitted = 0;
  for (let i = 0; i < 30; i++) {
    const v = await store.decide({ items: [item], cost: 1, blockTags: [] });
    if (v.status === "ok") admitted++;
    expect(v.decidedLocally).toBeUndefined();
  }
  expect(admitted).toBe(20);
  expect(store.stats().takes).toBeLessThanOrEqual(4);
  await store.close();
  expect((await b.rates.peek([item]))[0]?.remaining).toBe(0);
}

describe("createBackend", () => {
  it("builds the embedded store when no Redis is named, with its memory gauges", async () => {
    const b = backendFor({});
    expect(b.kind).toBe("memory");
    expect(b.redis).toBeUndefined();
    expect(Object.keys(b.memory).sort()).toEqual([
      "alerts",
      "detection",
      "events",
      "ratelimit",
      "usage",
    ]);
    await exercise(b);
    await b.close(1000);
  });

  const modes: [string, () => Record<string, string>][] = [
    ["standalone", () => ({ REDIS_URL: redis.url })],
    [
      "sentinel",
      () => ({
        TOLLGATE_REDIS_MODE: "sentinel",
        TOLLGATE_REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
      }),
    ],
    [
      "cluster",
      () => ({
        TOLLGATE_REDIS_MODE: "cluster",
        TOLLGATE_REDIS_CLUSTER_NODES: cluster.startupNodes
          .map((s) => `${s.host}:${s.port}`)
          .join(","),
      }),
    ],
  ];
  for (const [mode, env] of modes) {
    it(`builds Redis ${mode} stores that connect, work and close`, async () => {
      const b = backendFor(env());
      expect(b.kind).toBe(mode);
      expect(b.memory).toEqual({});
      const link = b.redis;
      if (!link) throw new Error("no Redis link");
      expect(await link.waitReady(5_000)).toBe(true);
      expect(link.connected()).toBe(true);
      const report = await link.inspectDurability();
      expect(report.nodes.length).toBe(mode === "cluster" ? 3 : 1);
      await exercise(b);
      await exerciseBatched(b);
      const closing = Date.now();
      await b.close(2_000);
      expect(Date.now() - closing).toBeLessThan(2_000);
    }, 20_000);
  }

  it("waitReady answers false, not hangs, when Redis is away", async () => {
    const b = backendFor({
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      TOLLGATE_REDIS_CONNECT_TIMEOUT_MS: "200",
    });
    expect(b.kind).toBe("standalone");
    expect(await b.redis?.waitReady(1_000)).toBe(false);
    await b.close(500);
  });
});
