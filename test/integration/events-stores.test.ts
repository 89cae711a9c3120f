/**
 * The event, detection and usage stores — embedded, standalone Redis and a real
 * 3-master Redis Cluster — driven through the recorder and the detection engine
 * as Tollgate uses them: duplicate ids stored once and alerting at most once,
 * retention by length and age, paged filtered listings, and each rule kind
 * (threshold with a block, credential stuffing, leaked key, new source, spike)
 * firing once per cool-down and never below its threshold.
 */
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertDispatcher } from "../../src/events/alert-dispatcher.js";
import { DetectionEngine, type Observation } from "../../src/events/detection-engine.js";
import type { Alert, SecurityEvent } from "../../src/events/event.js";
import { EventRecorder } from "../../src/events/event-recorder.js";
import type { EventLimits } from "../../src/events/events-runtime.js";
import { Metrics } from "../../src/observability/metrics.js";
import type { DetectionRule } from "../../src/policy/detection-rules.js";
import type { RateLimitStore } from "../../src/ratelimit/rate-limit-store.js";
import { type EventStores, memoryEventStores } from "../../src/store/event-stores.js";
import { MemoryRateLimitStore } from "../../src/store/memory-rate-limit-store.js";
import { RedisDetectionStore } from "../../src/store/redis-detection-store.js";
import { RedisEventStore } from "../../src/store/redis-event-store.js";
import type { RedisClient } from "../../src/store/redis-key-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisNotificationMarks } from "../../src/store/redis-notification-marks.js";
import { RedisRateLimitStore } from "../../src/store/redis-rate-limit-store.js";
import { RedisUsageStore } from "../../src/store/redis-usage-store.js";
import { systemClock } from "../../src/util/clock.js";
import { pollUntil } from "../helpers/clients.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

const LIMITS: EventLimits = {
  maxAgeMs: 60_000,
  maxEvents: 1000,
  maxAlerts: 100,
  usageRetentionMs: 3_600_000,
  bufferSize: 1000,
  flushMs: 1000,
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let redis: TestRedis;
let cluster: TestCluster;
let redisClient: Redis;
let clusterClient: RedisClient;
let n = 0;

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startTestRedis(), startTestCluster()]);
  redisClient = new Redis(redis.url);
  clusterClient = cluster.client();
}, 60_000);

afterAll(async () => {
  redisClient?.disconnect();
  clusterClient?.disconnect();
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

interface Backend {
  stores(limits: EventLimits): EventStores;
  rate(): RateLimitStore;
}

const backends: [string, () => Backend][] = [
  [
    "memory",
    () => ({
      stores: (l) => memoryEventStores(systemClock, l),
      rate: () => new MemoryRateLimitStore(systemClock),
    }),
  ],
  ...(["redis", "cluster"] as const).map((name): [string, () => Backend] => [
    name,
    () => {
      const c = name === "redis" ? redisClient : clusterClient;
      const prefix = `ev${++n}:`;
      return {
        stores: (l) => ({
          events: new RedisEventStore(c, prefix, l),
          usage: new RedisUsageStore(c, prefix, l.usageRetentionMs),
          detection: new RedisDetectionStore(c, prefix),
          marks: new RedisNotificationMarks(c, prefix),
        }),
        rate: () => new RedisRateLimitStore(c, createKeyNames(prefix)),
      };
    },
  ]),
];

let seq = 0;
function event(over: Partial<SecurityEvent> = {}): SecurityEvent {
  return {
    id: `ev-${++seq}-${Math.random().toString(36).slice(2)}`,
    type: "auth_failure",
    subject: "203.0.113.9",
    subjectKind: "ip",
    endpoint: "",
    severity: "low",
    attributes: { reason: "UNKNOWN_KEY" },
    time: Date.now(),
    clientIp: "203.0.113.9",
    keyId: "",
    ...over,
  };
}

const request = (keyId: string, ip: string, weight = 1): Observation => ({
  ...event({
    type: "request",
    subject: keyId,
    subjectKind: "key",
    keyId,
    clientIp: ip,
    attributes: {},
  }),
  weight,
});

const base = { severity: "high" as const, cooldownMs: 60_000 };

function harness(b: Backend, rules: DetectionRule[], limits = LIMITS, maxSubjects?: number) {
  const stores = b.stores(limits);
  const rate = b.rate();
  const metrics = new Metrics(() => 0, { processMetrics: false });
  const log = pino({ level: "silent" });
  const alerts: Alert[] = [];
  const dispatcher = new AlertDispatcher({
    store: stores.events,
    webhooks: () => [],
    clock: systemClock,
    log,
    metrics,
  });
  const engine = new DetectionEngine({
    store: stores.detection,
    rules: () => rules,
    clock: systemClock,
    block: (tag, ms) => rate.placeBlock(tag, ms),
    ...(maxSubjects !== undefined && { maxSubjects }),
    raise: async (a) => {
      alerts.push(a);
      await dispatcher.raise(a);
    },
  });
  const recorder = new EventRecorder({
    ...stores,
    store: stores.events,
    engine,
    clock: systemClock,
    log,
    metrics,
    maxBuffer: 1000,
    flushIntervalMs: 1000,
  });
  return { stores, rate, engine, recorder, alerts, metrics };
}

describe.each(backends)("events on %s", (_name, make) => {
  it("stores a repeated id once (across and within batches) and alerts at most once", async () => {
    const h = harness(make(), [
      {
        ...base,
        name: "any",
        kind: "threshold",
        by: "ip",
        count: 1,
        withinMs: 60_000,
        events: new Set(["auth_failure"]),
      },
    ]);
    const e = event();
    const first = await h.recorder.record([e, { ...e }]);
    expect(first.accepted).toEqual([e.id]);
    expect(first.duplicates).toEqual([e.id]);
    expect(first.alerts).toHaveLength(1);
    const again = await h.recorder.record([{ ...e }]);
    expect(again).toMatchObject({ accepted: [], duplicates: [e.id], alerts: [] });
    const page = await h.stores.events.list({ subject: e.subject }, 100);
    expect(page.items.map((x) => x.id)).toEqual([e.id]);
    const alerts = await h.stores.events.listAlerts({ rule: "any" }, 10);
    expect(alerts.items).toHaveLength(1);
  });

  it("lists newest first, filtered, in pages that cover everything once", async () => {
    const h = harness(make(), []);
    const mine = Array.from({ length: 15 }, () =>
      event({ subject: "key_AAAAAAAAAAAAAAAA", subjectKind: "key", type: "key_updated" }),
    );
    const others = Array.from({ length: 15 }, () =>
      event({ subject: "someone-else", subjectKind: "caller", type: "login.failed" }),
    );
    for (let i = 0; i < 15; i++)
      await h.stores.events.append([mine[i] as SecurityEvent, others[i] as SecurityEvent]);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const p = await h.stores.events.list(
        { subject: "key_AAAAAAAAAAAAAAAA", type: "key_updated" },
        4,
        cursor,
      );
      seen.push(...p.items.map((e) => e.id));
      if (!p.next) break;
      cursor = p.next;
    }
    // Every matching event exactly once (entries of one millisecond in different
    // shards have no defined order between them).
    expect(seen).toHaveLength(15);
    expect(new Set(seen)).toEqual(new Set(mine.map((e) => e.id)));
    expect(seen[0]).not.toBe(mine[0]?.id);
    const custom = await h.stores.events.list({ type: "login.failed", subjectKind: "caller" }, 100);
    expect(custom.items).toHaveLength(15);
  });

  it("trims by length, and by age (ids forgotten too)", async () => {
    const h = harness(make(), [], { ...LIMITS, maxEvents: 16, maxAgeMs: 1000 });
    const many = Array.from({ length: 80 }, () => event());
    await h.stores.events.append(many);
    const kept = await h.stores.events.list({}, 1000);
    expect(kept.items.length).toBeGreaterThan(0);
    expect(kept.items.length).toBeLessThanOrEqual(16);
    // Trimmed once the events are older than maxAgeMs (1 s).
    const { value: aged } = await pollUntil(
      () => h.stores.events.list({}, 1000),
      (page) => page.items.length === 0,
      5_000,
    );
    expect(aged.items).toHaveLength(0);
    const again = await h.stores.events.append([many[0] as SecurityEvent]);
    expect(again.accepted).toHaveLength(1);
  });

  it("threshold: fires at the count, once per cool-down, and blocks the subject", async () => {
    const h = harness(make(), [
      {
        ...base,
        name: "brute",
        kind: "threshold",
        by: "ip",
        count: 5,
        withinMs: 60_000,
        blockMs: 60_000,
        events: new Set(["auth_failure"]),
      },
    ]);
    await h.recorder.record(Array.from({ length: 4 }, () => event()));
    expect(h.alerts).toHaveLength(0);
    const fired = await h.recorder.record([event()]);
    expect(fired.alerts).toHaveLength(1);
    expect(fired.alerts[0]?.blockedUntil).toBeGreaterThan(Date.now() + 50_000);
    await h.recorder.record(Array.from({ length: 10 }, () => event()));
    expect(h.alerts).toHaveLength(1);
    const blocks = await h.rate.listBlocks(10);
    expect(blocks.map((b) => b.tag)).toContain("i:203.0.113.9");
  });

  it("credential stuffing: distinct unknown keys from one IP", async () => {
    const h = harness(make(), [
      {
        ...base,
        name: "stuffing",
        kind: "distinct",
        by: "ip",
        distinct: "key",
        count: 3,
        withinMs: 60_000,
        events: new Set(["auth_failure"]),
        where: new Map([["reason", new Set(["UNKNOWN_KEY"])]]),
      },
    ]);
    const fp = (s: string) => event({ attributes: { reason: "UNKNOWN_KEY", key_fp: s } });
    await h.recorder.record([
      fp("a"),
      fp("a"),
      fp("b"),
      event({ attributes: { reason: "MALFORMED_KEY", key_fp: "z" } }),
    ]);
    expect(h.alerts).toHaveLength(0);
    await h.recorder.record([fp("c")]);
    expect(h.alerts).toHaveLength(1);
    await h.recorder.record([fp("d"), fp("e")]);
    expect(h.alerts).toHaveLength(1);
  });

  it("leaked key: one key from many IPs; new source: a key from a new network", async () => {
    const h = harness(make(), [
      {
        ...base,
        name: "leaked",
        kind: "distinct",
        by: "key",
        distinct: "ip",
        count: 3,
        withinMs: 60_000,
        events: new Set(["request"]),
      },
      {
        ...base,
        name: "new-net",
        kind: "new_source",
        by: "key",
        ipv4Prefix: 24,
        ipv6Prefix: 64,
        historyMs: 60_000,
        events: new Set(["request"]),
      },
    ]);
    const k = "key_LLLLLLLLLLLLLLLL";
    await h.engine.evaluate([request(k, "10.0.0.1", 50)]);
    await h.engine.evaluate([request(k, "10.0.0.2"), request(k, "10.0.0.1")]);
    expect(h.alerts).toHaveLength(0);
    await h.engine.evaluate([request(k, "10.0.1.9")]);
    expect(h.alerts.map((a) => a.rule).sort()).toEqual(["leaked", "new-net"]);
    await h.engine.evaluate([request(k, "10.0.2.9"), request(k, "2001:db8::1")]);
    expect(h.alerts).toHaveLength(2);
    // Another key's first use is its baseline, not a new source.
    await h.engine.evaluate([request("key_MMMMMMMMMMMMMMMM", "192.0.2.1")]);
    expect(h.alerts).toHaveLength(2);
  });

  it("spike: above factor × the key's own baseline, once per cool-down; steady traffic never", async () => {
    const bucketMs = 250;
    const h = harness(make(), [
      {
        ...base,
        name: "spike",
        kind: "spike",
        by: "key",
        factor: 4,
        bucketMs,
        alpha: 0.5,
        minHistory: 2,
        minRequests: 8,
        events: new Set(["request"]),
      },
    ]);
    const steady = "key_SSSSSSSSSSSSSSSS";
    const bursty = "key_BBBBBBBBBBBBBBBB";
    // A sleep on purpose: the engine's buckets are wall-clock windows, and
    // each batch must land in the next one.
    const nextBucket = () => sleep(bucketMs - (Date.now() % bucketMs) + 10);
    for (let i = 0; i < 3; i++) {
      await nextBucket();
      await h.engine.evaluate([request(steady, "10.0.0.1", 10), request(bursty, "10.0.0.1", 10)]);
    }
    await nextBucket();
    await h.engine.evaluate([request(steady, "10.0.0.1", 12), request(bursty, "10.0.0.1", 30)]);
    expect(h.alerts).toHaveLength(0);
    await h.engine.evaluate([request(bursty, "10.0.0.1", 20)]);
    expect(h.alerts.map((a) => a.subject)).toEqual([bursty]);
    await h.engine.evaluate([request(bursty, "10.0.0.1", 100)]);
    expect(h.alerts).toHaveLength(1);
  });

  it("stores Tollgate's own repeated failures aggregated, and detection counts every one", async () => {
    const ip = "198.51.100.33";
    const h = harness(make(), [
      {
        ...base,
        name: "many",
        kind: "threshold",
        by: "ip",
        count: 100,
        withinMs: 60_000,
        events: new Set(["auth_failure"]),
      },
      {
        ...base,
        name: "stuffing",
        kind: "distinct",
        by: "ip",
        distinct: "key",
        count: 60,
        withinMs: 60_000,
        events: new Set(["auth_failure"]),
        where: new Map([["reason", new Set(["UNKNOWN_KEY"])]]),
      },
    ]);
    const fail = (i: number) =>
      h.recorder.emit({
        type: "auth_failure",
        subject: ip,
        subjectKind: "ip",
        severity: "low",
        clientIp: ip,
        attributes: {
          reason: "UNKNOWN_KEY",
          rpc: "Authorize",
          key_fp: `fp${i}`,
          decision_id: `d${i}`,
        },
      });
    for (let i = 0; i < 40; i++) fail(i);
    await h.recorder.flush();
    // The first of the burst is stored at once, with what the flush had counted.
    const lead = await h.stores.events.list({ subject: ip }, 100);
    expect(lead.items.map((e) => e.attributes.count)).toEqual(["40"]);
    expect(h.alerts).toHaveLength(0);
    for (let i = 40; i < 120; i++) fail(i);
    await h.recorder.flush();
    // Within the window nothing more is stored, but detection saw all 120 and 120 keys.
    expect((await h.stores.events.list({ subject: ip }, 100)).items).toHaveLength(1);
    expect(h.alerts.map((a) => a.rule).sort()).toEqual(["many", "stuffing"]);
    await h.recorder.stop();
    const all = (await h.stores.events.list({ subject: ip }, 100)).items;
    expect(all).toHaveLength(2);
    expect(all.reduce((n, e) => n + Number(e.attributes.count), 0)).toBe(120);
    const rest = all[0]?.attributes ?? {};
    expect(rest).toMatchObject({ count: "80", reason: "UNKNOWN_KEY", rpc: "Authorize" });
    expect(rest.key_fp).toBe("fp40");
    expect(rest.decision_id).toBe("d40");
    expect(rest.key_fps?.split(",")).toHaveLength(16);
    expect(Date.parse(rest.first_time ?? "")).toBeLessThanOrEqual(Date.parse(rest.last_time ?? ""));
  });

  it("counts usage per key and endpoint per minute and hour", async () => {
    const h = harness(make(), []);
    const k = "key_UUUUUUUUUUUUUUUU";
    h.recorder.request(k, "orders", "10.0.0.1");
    h.recorder.request(k, "orders", "10.0.0.2");
    h.recorder.request(k, "-", "10.0.0.1");
    await h.recorder.flush();
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const [m] = await h.stores.usage.read(k, "minute", [minute]);
    expect(m).toEqual({ orders: 2, "-": 1 });
    const [hour] = await h.stores.usage.read(k, "hour", [
      Math.floor(Date.now() / 3_600_000) * 3_600_000,
    ]);
    expect(hour).toEqual({ orders: 2, "-": 1 });
  });
});

describe.each(backends.filter(([name]) => name !== "memory"))("bounds on %s", (_name, make) => {
  it("trims a shard by bytes: maximum-size events never exceed the byte budget", async () => {
    const h = harness(make(), [], { ...LIMITS, maxEvents: 100_000, maxBytes: 8 * 200_000 });
    const attributes: Record<string, string> = {};
    for (let a = 0; a < 32; a++) attributes[`a${a}`.padEnd(64, "k")] = "v".repeat(1024);
    // ~35 KB each: 200 KB per shard holds 5 of them.
    for (let i = 0; i < 10; i++)
      await h.stores.events.append(Array.from({ length: 20 }, () => event({ attributes })));
    const kept = await h.stores.events.list({}, 1000);
    expect(kept.items.length).toBeGreaterThan(8);
    expect(kept.items.length).toBeLessThanOrEqual(8 * 6);
  });

  it("keeps no more idempotency markers than marked events, none for Tollgate's own", async () => {
    const h = harness(make(), [], { ...LIMITS, maxEvents: 80 });
    await h.stores.events.append(
      Array.from({ length: 100 }, () => event()),
      { idempotent: false },
    );
    const mine = Array.from({ length: 400 }, () => event());
    await h.stores.events.append(mine);
    // The newest caller ids are still recognised; the oldest are forgotten with their events.
    const again = await h.stores.events.append(mine.slice(-5));
    expect(again.duplicates).toHaveLength(5);
    const old = await h.stores.events.append(mine.slice(0, 5));
    expect(old.accepted).toHaveLength(5);
    // Own events push caller events out of the shards, and their markers with them.
    await h.stores.events.append(
      Array.from({ length: 400 }, () => event()),
      { idempotent: false },
    );
    expect((await h.stores.events.append(mine.slice(-5))).accepted).toHaveLength(5);
  });

  it("tracks at most maxSubjects per rule, forgetting the least recently seen, never a repeat offender", async () => {
    const h = harness(
      make(),
      [
        {
          ...base,
          name: "capped",
          kind: "threshold",
          by: "ip",
          count: 3,
          withinMs: 60_000,
          events: new Set(["auth_failure"]),
        },
      ],
      LIMITS,
      5,
    );
    const offender = "203.0.113.200";
    for (let i = 0; i < 3; i++) {
      // Each batch: the offender once, and four one-off IPs.
      await h.engine.evaluate([
        event({ clientIp: offender, subject: offender }),
        ...Array.from({ length: 4 }, (_, j) => {
          const ip = `10.0.${i}.${j}`;
          return event({ clientIp: ip, subject: ip });
        }),
      ]);
    }
    expect(h.alerts.map((a) => a.subject)).toEqual([offender]);
  });
});
