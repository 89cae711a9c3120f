/**
 * A real Redis over its maxmemory (`noeviction`) through the StoreGuard: the
 * refusal is kind `oom` (not a generic reply error), counted in
 * tollgate_redis_oom_total, logged as "Redis is out of memory" once per
 * interval however many calls fail, and counted as a breaker failure: enough
 * of them open the breaker like an outage. Reads keep working meanwhile.
 */
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SecurityEvent } from "../../src/events/event.js";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { StoreGuard } from "../../src/resilience/store-guard.js";
import { RedisDetectionStore } from "../../src/store/redis-detection-store.js";
import { RedisEventStore } from "../../src/store/redis-event-store.js";
import { isStoreUnavailable, type StoreUnavailableError } from "../../src/store/store-errors.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";

const RETENTION = { maxAgeMs: 60_000, maxEvents: 100, maxAlerts: 10 };
let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await spawnRedis(["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
  client = new Redis(redis.url);
  await client.set("readable", "yes");
  // Over the limit for sure: fill, then put maxmemory below what is used.
  for (let i = 0; i < 200; i++) {
    const refused = await client.set(`fill:${i}`, "f".repeat(64 * 1024)).then(
      () => false,
      () => true,
    );
    if (refused) break;
  }
  const used = Number(/^used_memory:(\d+)/m.exec(await client.info("memory"))?.[1]);
  await client.config("SET", "maxmemory", String(used - 1024 * 1024));
}, 30_000);

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

function guardWithLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const metrics = new Metrics(() => 0, { processMetrics: false });
  const guard = new StoreGuard({
    name: "redis",
    timeoutMs: 2000,
    errorThresholdPercentage: 50,
    volumeThreshold: 10,
    resetTimeoutMs: 60_000,
    log: createLogger("info", sink),
    metrics,
  });
  return { guard, lines, metrics };
}

describe("StoreGuard over a Redis at maxmemory", () => {
  it("classifies OOM, counts and logs it once, and opens the breaker like an outage", async () => {
    const { guard, lines, metrics } = guardWithLog();
    try {
      const kinds: string[] = [];
      for (let i = 0; i < 15; i++) {
        try {
          await guard.run("test.write", () => client.set(`more:${i}`, "x".repeat(1024)));
          kinds.push("ok");
        } catch (err) {
          expect(isStoreUnavailable(err)).toBe(true);
          kinds.push((err as StoreUnavailableError).kind);
        }
      }
      // Ten refusals (the breaker's volume), then it is open and fails fast.
      expect(kinds.slice(0, 10)).toEqual(Array(10).fill("oom"));
      expect(kinds.slice(10)).toEqual(Array(5).fill("breaker_open"));
      expect(guard.open).toBe(true);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^tollgate_redis_oom_total\{op="test\.write"\} 10$/m);
      expect(text).toMatch(/^tollgate_redis_errors_total\{op="test\.write",kind="oom"\} 10$/m);
      const oom = lines.filter((l) => String(l.msg).startsWith("Redis is out of memory"));
      expect(oom).toHaveLength(1);
      expect(oom[0]).toMatchObject({ level: "error", breaker: "redis", op: "test.write" });
      expect(String(oom[0]?.hint)).toContain("maxmemory");
      expect(lines.some((l) => String(l.msg).startsWith("circuit breaker opened"))).toBe(true);
    } finally {
      guard.shutdown();
    }
  });

  it("lets reads through, and none of the event and detection scripts slips past maxmemory", async () => {
    const { guard } = guardWithLog();
    try {
      expect(await guard.run("test.read", () => client.get("readable"))).toBe("yes");
      // Redis checks a script against maxmemory at its first write only if that
      // write may grow memory: each script writes that way first.
      const events = guard.wrap("events", new RedisEventStore(client, "oom:", RETENTION));
      const detection = guard.wrap("detection", new RedisDetectionStore(client, "oom:"));
      const event: SecurityEvent = {
        id: "oom-1",
        type: "login.failed",
        subject: "s",
        subjectKind: "caller",
        endpoint: "",
        severity: "low",
        attributes: {},
        time: Date.now(),
        clientIp: "",
        keyId: "",
      };
      const attempts: [string, () => Promise<unknown>][] = [
        ["record-event (marked)", () => events.append([event])],
        ["record-event (unmarked)", () => events.append([event], { idempotent: false })],
        [
          "detect-window",
          () =>
            detection.window({
              tag: "i:192.0.2.1",
              rule: "r",
              mode: "sum",
              members: ["1:a"],
              windowMs: 60_000,
              threshold: 5,
              cap: 5,
              cooldownMs: 60_000,
            }),
        ],
        [
          "detect-track",
          () => detection.track({ rule: "r", tags: ["i:192.0.2.1"], lifetimeMs: 60_000, cap: 10 }),
        ],
      ];
      for (const [name, call] of attempts) {
        const err = await call().then(
          () => undefined,
          (e: StoreUnavailableError) => e,
        );
        expect(err?.kind, name).toBe("oom");
      }
      expect(await client.exists("oom:ev:{ev0}", "oom:dt:{dt:r}", "oom:dw:{i:192.0.2.1}:r")).toBe(
        0,
      );
    } finally {
      guard.shutdown();
    }
  });
});
