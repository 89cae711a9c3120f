/**
 * Only an outage is an outage. On a real redis-server, a key of the wrong type
 * planted where Tollgate expects its own (a hash where a bucket string lives,
 * a string where the block index sorted set lives) makes the store call fail
 * with WRONGTYPE: that is answered INTERNAL with an error log line, never by
 * the fail-open insurance limiter, and the breaker stays closed however often
 * it happens. A Redis that is really gone still fails open.
 */
import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { parsePolicy } from "../../src/policy/policy.js";
import { BlockBook } from "../../src/ratelimit/block-book.js";
import { BlockCache } from "../../src/ratelimit/block-cache.js";
import { RateLimiter } from "../../src/ratelimit/rate-limiter.js";
import { InsuranceLimiter } from "../../src/resilience/insurance-limiter.js";
import { StoreGuard } from "../../src/resilience/store-guard.js";
import { createInstrument } from "../../src/services/instrument.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisRateLimitStore } from "../../src/store/redis-rate-limit-store.js";
import { isStoreInternal, isStoreUnavailable } from "../../src/store/store-errors.js";
import { systemClock } from "../../src/util/clock.js";
import { freshTag, rateLimit } from "../conformance/rate-limit-store-cases.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await spawnRedis();
  client = new Redis(redis.url, { enableAutoPipelining: true, maxRetriesPerRequest: 0 });
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

function harness(prefix: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const log = createLogger("info", sink);
  const metrics = new Metrics(() => 0, { processMetrics: false });
  const guard = new StoreGuard({
    name: "redis",
    timeoutMs: 2000,
    errorThresholdPercentage: 50,
    volumeThreshold: 5,
    resetTimeoutMs: 60_000,
    log,
    metrics,
  });
  const names = createKeyNames(prefix);
  const store = guard.wrap("rate", new RedisRateLimitStore(client, names));
  const limiter = new RateLimiter({
    store,
    clock: systemClock,
    policy: () => parsePolicy("version: 1\n", "test"),
    blocks: new BlockBook({ cache: new BlockCache(systemClock), store, announce: () => {} }),
    failMode: () => "open",
    insurance: new InsuranceLimiter(systemClock, 1),
  });
  const instrument = createInstrument(metrics, log);
  return { guard, store, limiter, names, lines, metrics, instrument };
}

describe("a WRONGTYPE key where Tollgate expects its own", () => {
  it("a rate-limit decision is INTERNAL, not decided locally, and the breaker stays closed", async () => {
    const h = harness("wt-rl:");
    try {
      const tag = freshTag();
      const limit = rateLimit("wrongtype", 10, 60_000);
      await client.hset(h.names.bucket(tag, limit.bucketId), "planted", "1");
      const req = { items: [{ tag, limit }], cost: 1, blockTags: [] };
      const check = h.instrument("CheckRateLimit", () => h.limiter.decideItems(req, undefined));
      for (let i = 0; i < 12; i++) {
        const err = await check().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.Internal);
      }
      // Twelve failures over a volume threshold of five: still closed.
      expect(h.guard.open).toBe(false);
      const raw = await h.limiter.decideItems(req, undefined).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isStoreInternal(raw)).toBe(true);
      expect(isStoreUnavailable(raw)).toBe(false);
      const loud = h.lines.filter((l) => String(l.msg).startsWith("store call failed, not an"));
      expect(loud.length).toBeGreaterThanOrEqual(1);
      expect(loud[0]).toMatchObject({ level: "error", rpc: "CheckRateLimit", op: "rate.decide" });
      expect(String(loud[0]?.cause)).toContain("WRONGTYPE");
      const text = await h.metrics.registry.metrics();
      expect(text).toMatch(
        /^tollgate_redis_errors_total\{op="rate\.decide",kind="internal"\} 13$/m,
      );
      // Other subjects are decided by Redis as usual.
      const fine = await h.limiter.decideItems(
        { items: [{ tag: freshTag(), limit }], cost: 1, blockTags: [] },
        undefined,
      );
      expect(fine.local).toBe(false);
      expect(fine.verdict.status).toBe("ok");
    } finally {
      h.guard.shutdown();
    }
  });

  it("listing blocks over a block index that is a string is INTERNAL too", async () => {
    const h = harness("wt-bl:");
    try {
      await client.set(h.names.blockIndex(), "not a sorted set");
      const list = h.instrument("ListBlocks", () => h.store.listBlocks(10));
      const err = await list().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as ConnectError).code).toBe(Code.Internal);
      expect(h.guard.open).toBe(false);
    } finally {
      h.guard.shutdown();
    }
  });

  it("whereas a Redis that is gone fails open to the insurance limiter", async () => {
    const lost = await spawnRedis();
    const c = new Redis(lost.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
    c.on("error", () => {});
    await new Promise((resolve) => c.once("ready", resolve));
    await lost.stop();
    const h = harness("wt-gone:");
    try {
      const gone = h.guard.wrap("rate", new RedisRateLimitStore(c, h.names));
      const limiter = new RateLimiter({
        store: gone,
        clock: systemClock,
        policy: () => parsePolicy("version: 1\n", "test"),
        blocks: new BlockBook({
          cache: new BlockCache(systemClock),
          store: gone,
          announce: () => {},
        }),
        failMode: () => "open",
        insurance: new InsuranceLimiter(systemClock, 1),
      });
      const limit = rateLimit("gone", 10, 60_000);
      const r = await limiter.decideItems(
        { items: [{ tag: freshTag(), limit }], cost: 1, blockTags: [] },
        undefined,
      );
      expect(r.local).toBe(true);
    } finally {
      h.guard.shutdown();
      c.disconnect();
    }
  });
});
