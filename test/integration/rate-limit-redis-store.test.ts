/**
 * The Redis rate-limit store on a private standalone redis-server: the shared
 * conformance cases, then what only Redis can show — the script's clock is
 * Redis TIME, and every key it writes carries an expiry.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LimitOutcome } from "../../src/ratelimit/rate-limit-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisRateLimitStore } from "../../src/store/redis-rate-limit-store.js";
import {
  freshTag,
  quotaLimit,
  rateLimit,
  rateLimitStoreCases,
} from "../conformance/rate-limit-store-cases.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { rewindCreditPeriods } from "./credit-periods.js";
import { expectEveryRateLimitKeyExpires } from "./rate-limit-expiry.js";

let redis: TestRedis;
let client: Redis;
let n = 0;

beforeAll(async () => {
  redis = await startTestRedis();
  client = new Redis(redis.url, { enableAutoPipelining: true });
});

afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

// A sleep on purpose: the cases' `wait` lets time pass, and Redis keeps real
// time (TIME inside the scripts), so on a real store waiting means sleeping.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

rateLimitStoreCases("redis standalone", () => {
  // Values may move by as much real time as the case has taken so far (plus
  // a little for the call in flight): exact, however loaded the machine is.
  const created = Date.now();
  const names = createKeyNames(`rls${++n}:`);
  return {
    store: new RedisRateLimitStore(client, names),
    creditPeriodsPass: (item, periods) => rewindCreditPeriods(client, names, item, periods),
    wait: sleep,
    now: () => Date.now(),
    get slackMs() {
      return Date.now() - created + 50;
    },
  };
});

describe("redis standalone: clock and housekeeping", () => {
  it("the script's clock is Redis TIME: a bucket is stamped with the server's time", async () => {
    const names = createKeyNames("clock:");
    const store = new RedisRateLimitStore(client, names);
    const tag = freshTag();
    const limit = rateLimit("stamp", 10, 1_000);
    const [sec, usec] = (await client.time()) as [number | string, number | string];
    const before = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    await store.decide({ items: [{ tag, limit }], cost: 1, blockTags: [] });
    const [sec2, usec2] = (await client.time()) as [number | string, number | string];
    const after = Number(sec2) * 1000 + Math.floor(Number(usec2) / 1000);
    // Value: "<debt in ms × requests>:<Redis TIME in ms>".
    const value = (await client.get(names.bucket(tag, limit.bucketId))) as string;
    const [debt, stamp] = value.split(":").map(Number) as [number, number];
    expect(debt).toBe(1_000);
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(after);
  });

  it("a daily quota's bucket is stamped with the Redis day", async () => {
    const names = createKeyNames("day:");
    const store = new RedisRateLimitStore(client, names);
    const tag = freshTag();
    const limit = quotaLimit("daily", 5, "day");
    const v = await store.decide({ items: [{ tag, limit }], cost: 2, blockTags: [] });
    const [sec] = (await client.time()) as [number | string, number | string];
    const value = (await client.get(names.bucket(tag, limit.bucketId))) as string;
    expect(value).toBe(`${Math.floor(Number(sec) / 86_400)}:2`);
    // Its expiry is the window's end, so a stale window never outlives its day.
    const pexpireTime = Number(await client.call("PEXPIRETIME", names.bucket(tag, limit.bucketId)));
    expect(pexpireTime).toBe((Math.floor(Number(sec) / 86_400) + 1) * 86_400_000);
    expect((v.outcomes[0] as LimitOutcome).remaining).toBe(3);
  });

  it("every rate-limit key written carries an expiry; nothing else is written", async () => {
    const names = createKeyNames("exp:");
    const store = new RedisRateLimitStore(client, names);
    const key = freshTag("k");
    const ip = freshTag("i");
    const blocking = {
      by: new Set(["key", "ip"] as const),
      after: 1,
      withinMs: 10_000,
      durationMs: 5_000,
      factor: 2,
      maxDurationMs: 60_000,
      forgetAfterMs: 60_000,
    };
    const items = [
      { tag: key, limit: rateLimit("r", 1, 10_000) },
      { tag: key, limit: quotaLimit("q", 10, "month") },
      { tag: ip, limit: rateLimit("ip", 5, 1_000) },
    ];
    await store.decide({ items, cost: 1, blockTags: [key, ip], blocking });
    await store.decide({ items, cost: 1, blockTags: [key, ip], blocking });
    // A denial below `after` leaves a pending denial counter behind.
    const other = freshTag("s");
    await store.decide({
      items: [{ tag: other, limit: rateLimit("zero", 0, 1_000) }],
      cost: 1,
      blockTags: [other],
      blocking: { ...blocking, after: 5 },
    });
    const found = await expectEveryRateLimitKeyExpires([client], "exp:");
    expect(found.sort()).toEqual(["bd", "bl", "blocks", "bo", "rl"]);
  });

  it("after the whole suite, every key in this Redis carries an expiry", async () => {
    await expectEveryRateLimitKeyExpires([client], "");
  });
});
