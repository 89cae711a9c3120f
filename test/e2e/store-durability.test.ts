/**
 * Keys live only in Redis, so Tollgate checks the Redis it is given: an
 * eviction policy that can delete key records is refused at start (unless
 * TOLLGATE_ALLOW_EVICTING_REDIS), a Redis that keeps nothing (no AOF, no RDB,
 * no replica) is warned about, a managed Redis refusing CONFIG is handled,
 * and a store that loses its data while Tollgate runs (FLUSHALL, a restart
 * without persistence) is noticed within seconds on every replica: error log,
 * `store_emptied` event, alert, metric and the /readyz body. Real redis-server
 * instances configured each way.
 */

import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { EventType } from "../../src/gen/tollgate/v1/event_pb.js";
import { clientsOver, pollUntil } from "../helpers/clients.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const PEPPER = "durability-suite-pepper-0123456789";
const redises: TestRedis[] = [];
const procs: TollgateProcess[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});
afterAll(async () => {
  await Promise.all(redises.splice(0).map((r) => r.stop()));
});

async function redis(args: string[] = []): Promise<TestRedis> {
  const r = await spawnRedis(args);
  redises.push(r);
  return r;
}

async function start(r: TestRedis, env: Record<string, string> = {}) {
  const p = await startTollgateProcess({ REDIS_URL: r.url, TOLLGATE_PEPPER: PEPPER, ...env });
  procs.push(p);
  return p;
}

async function metric(p: TollgateProcess, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

const logged = (p: TollgateProcess, text: string) =>
  p.logs.some((l) => typeof l.msg === "string" && l.msg.includes(text));

describe("Redis durability checks at start", () => {
  it("refuses an evicting Redis (allkeys-lru), naming the Redis setting and the override", async () => {
    const r = await redis(["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    const err = await start(r).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/tollgate exited with 2/);
    expect(err?.message).toContain('maxmemory-policy is "allkeys-lru"');
    expect(err?.message).toContain("maxmemory-policy noeviction");
    expect(err?.message).toContain("TOLLGATE_ALLOW_EVICTING_REDIS=true");
    expect(err?.message).not.toContain(PEPPER);
  });

  it("runs on an evicting Redis with TOLLGATE_ALLOW_EVICTING_REDIS=true, warning, durable 0", async () => {
    const r = await redis(["--maxmemory-policy", "allkeys-lfu", "--appendonly", "yes"]);
    const p = await start(r, { TOLLGATE_ALLOW_EVICTING_REDIS: "true" });
    expect(logged(p, "Redis may evict key records")).toBe(true);
    expect(await metric(p, "tollgate_store_durable")).toBe(0);
  });

  it("accepts noeviction and volatile-* policies", async () => {
    for (const policy of ["noeviction", "volatile-lru"]) {
      const r = await redis(["--maxmemory-policy", policy, "--appendonly", "yes"]);
      const p = await start(r);
      expect(await metric(p, "tollgate_store_durable")).toBe(1);
      await p.stop();
    }
  });

  it("warns loudly when Redis keeps nothing (no AOF, no RDB, no replica): durable 0", async () => {
    const r = await redis(); // the test helper's default: --save "" --appendonly no
    const p = await start(r);
    expect(logged(p, "Redis keeps nothing on disk")).toBe(true);
    expect(await metric(p, "tollgate_store_durable")).toBe(0);
  });

  it("is satisfied by AOF, by RDB snapshots, or by a replica", async () => {
    const aof = await start(await redis(["--appendonly", "yes"]));
    expect(await metric(aof, "tollgate_store_durable")).toBe(1);
    expect(logged(aof, "Redis keeps nothing on disk")).toBe(false);
    const rdb = await start(await redis(["--save", "3600 1"]));
    expect(await metric(rdb, "tollgate_store_durable")).toBe(1);

    const master = await redis();
    await redis(["--replicaof", "127.0.0.1", String(master.port)]);
    const admin = new Redis(master.url);
    try {
      const { value } = await pollUntil(
        async () => String(await admin.info("replication")),
        (info) => /connected_slaves:1/.test(info),
        10_000,
        100,
      );
      expect(value).toMatch(/connected_slaves:1/);
    } finally {
      admin.disconnect();
    }
    const replicated = await start(master);
    expect(await metric(replicated, "tollgate_store_durable")).toBe(1);
  });

  it("handles a managed Redis that forbids CONFIG: warns it could not check, durable -1, serves", async () => {
    const r = await redis(["--rename-command", "CONFIG", ""]);
    const p = await start(r);
    expect(logged(p, "could not check Redis durability")).toBe(true);
    expect(await metric(p, "tollgate_store_durable")).toBe(-1);
    const { keys } = clientsOver(createGrpcTransport({ baseUrl: p.url }));
    expect((await keys.createKey({ owner: "managed" })).secret).toMatch(/^tg_/);
  });
});

describe("an emptied store is noticed while running", () => {
  it("FLUSHALL: every replica logs, records store_emptied, alerts, sets the metric and says so in /readyz", async () => {
    const r = await redis(["--appendonly", "yes"]);
    const env = { TOLLGATE_STORE_CHECK_INTERVAL_MS: "200" };
    const [a, b] = [await start(r, env), await start(r, env)];
    const ca = clientsOver(createGrpcTransport({ baseUrl: a.url }));
    const { secret } = await ca.keys.createKey({ owner: "acme" });
    expect((await ca.tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    expect(await metric(a, "tollgate_store_emptied")).toBe(0);
    // Both replicas have read the epoch by now (at start).
    const admin = new Redis(r.url);
    const flushedAt = Date.now();
    try {
      await admin.flushall();
    } finally {
      admin.disconnect();
    }
    for (const p of [a, b]) {
      const seen = await pollUntil(
        () => metric(p, "tollgate_store_emptied"),
        (v) => v === 1,
        5_000,
        50,
      );
      expect(seen.value).toBe(1);
      expect(logged(p, "the store was emptied")).toBe(true);
      const ready = await fetch(`http://127.0.0.1:${p.adminPort}/readyz`);
      expect(ready.status).toBe(200); // documented: readiness stays up, the body says why
      expect(await ready.text()).toMatch(/^ok\nstore: emptied \(noticed /);
    }
    console.log(`emptied store noticed by both replicas within ${Date.now() - flushedAt} ms`);
    const { value: alerts } = await pollUntil(
      () => ca.keys.listAlerts({ rule: "store-emptied" }),
      (x) => x.alerts.length >= 1,
      5_000,
      100,
    );
    expect(alerts.alerts[0]?.severity).toBeDefined();
    const { value: events } = await pollUntil(
      () => ca.keys.listEvents({ type: EventType.STORE_EMPTIED }),
      (x) => x.events.length >= 1,
      5_000,
      100,
    );
    expect(events.events[0]?.subject).toBe("store");
    // The key record is gone, as the message says (a cached lookup lasts its TTL).
    expect((await ca.keys.listKeys({})).keys).toEqual([]);
  });
});
