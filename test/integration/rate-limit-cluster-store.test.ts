/**
 * The Redis rate-limit store on a real 3-master Redis Cluster: the shared
 * conformance cases (whose all-or-nothing cases span two subjects, two hash
 * slots), a check that those subjects really land on different masters, and
 * the expiry of every key written on every node.
 */
import { randomUUID } from "node:crypto";
import { type Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LimitOutcome } from "../../src/ratelimit/rate-limit-store.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { RedisRateLimitStore } from "../../src/store/redis-rate-limit-store.js";
import { rateLimit, rateLimitStoreCases } from "../conformance/rate-limit-store-cases.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { rewindCreditPeriods } from "./credit-periods.js";
import { expectEveryRateLimitKeyExpires } from "./rate-limit-expiry.js";

let cluster: TestCluster;
let client: Cluster;
let n = 0;

beforeAll(async () => {
  cluster = await startTestCluster();
  client = cluster.client();
});

afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

// A sleep on purpose: the cases' `wait` lets time pass, and Redis keeps real
// time (TIME inside the scripts), so on a real store waiting means sleeping.
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

rateLimitStoreCases("redis cluster", () => {
  // Values may move by as much real time as the case has taken so far (plus
  // a little for the call in flight): exact, however loaded the machine is.
  const created = Date.now();
  const names = createKeyNames(`rlc${++n}:`);
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

describe("redis cluster: slots and housekeeping", () => {
  it("a denial in the second slot refunds the first, with the two subjects on different masters", async () => {
    const names = createKeyNames("slots:");
    const store = new RedisRateLimitStore(client, names);
    // Pick a key and an ip whose hash tags map to different masters.
    const owner = async (key: string) => {
      const slot = Number(await client.cluster("KEYSLOT", key));
      const ranges = (await client.cluster("SLOTS")) as unknown as [
        number,
        number,
        [string, number],
      ][];
      return ranges.find(([lo, hi]) => slot >= lo && slot <= hi)?.[2][1];
    };
    const perKey = rateLimit("per-key", 5, 10_000);
    const perIp = rateLimit("per-ip", 1, 10_000);
    let key = "";
    let ip = "";
    for (let i = 0; i < 50 && key === ""; i++) {
      const k = `k:key_${i}`;
      const p = `i:10.0.0.${i}`;
      if (
        (await owner(names.bucket(k, perKey.bucketId))) !==
        (await owner(names.bucket(p, perIp.bucketId)))
      ) {
        key = k;
        ip = p;
      }
    }
    expect(key).not.toBe("");
    const both = {
      items: [
        { tag: key, limit: perKey },
        { tag: ip, limit: perIp },
      ],
      cost: 1,
      blockTags: [],
    };
    expect((await store.decide(both)).status).toBe("ok");
    for (let i = 0; i < 3; i++) {
      const denied = await store.decide(both);
      expect(denied.status).toBe("limited");
      // Charged in its slot, then refunded: the key reports what it has now.
      expect((denied.outcomes[0] as LimitOutcome).remaining).toBe(4);
    }
    const alone = await store.decide({
      items: [{ tag: key, limit: perKey }],
      cost: 1,
      blockTags: [],
    });
    expect((alone.outcomes[0] as LimitOutcome).remaining).toBe(3);
  });

  it("a usage report keeps one marker per slot: a retry after a partial failure charges only the slots not charged yet", async () => {
    const names = createKeyNames("report-slots:");
    const store = new RedisRateLimitStore(client, names);
    const perKey = rateLimit("per-key", 10, 60_000);
    const perIp = rateLimit("per-ip", 10, 60_000);
    const [key, ip] = [`k:key_${randomUUID()}`, `i:${randomUUID()}`];
    const once = { id: randomUUID(), ttlMs: 60_000 };
    // As if the first slot's script ran and the connection to the second
    // slot's master failed: the report is retried with the same id.
    const partial = await store.forceCharge({
      items: [{ tag: key, limit: perKey }],
      cost: 3,
      once,
    });
    expect(partial.duplicate).toBe(false);
    const both = [
      { tag: key, limit: perKey },
      { tag: ip, limit: perIp },
    ];
    const retry = await store.forceCharge({ items: both, cost: 3, once });
    expect(retry.duplicate).toBe(false);
    // The key's slot was charged once (its marker found), the IP's slot now.
    expect(retry.outcomes.map((o) => o.remaining)).toEqual([7, 7]);
    const again = await store.forceCharge({ items: both, cost: 3, once });
    expect(again.duplicate).toBe(true);
    expect((await store.peek(both)).map((o) => o.remaining)).toEqual([7, 7]);
    expect(await client.pttl(names.reportMarker(ip, once.id))).toBeGreaterThan(59_000);
  });

  it("after the whole suite, every rate-limit key on every master carries an expiry", async () => {
    const nodes = cluster.nodes.map((node) => new Redis(node.url));
    try {
      const found = await expectEveryRateLimitKeyExpires(nodes, "");
      expect(found).toContain("rl");
      expect(found).toContain("ur");
    } finally {
      for (const node of nodes) node.disconnect();
    }
  });
});

describe("redis cluster: batched limits (sync: batched)", () => {
  it("three replicas on a real cluster admit between the limit − 3 × take and the limit, and counts converge", async () => {
    const { BatchedRateLimitStore } = await import("../../src/ratelimit/batched-store.js");
    const { quotaLimit } = await import("../conformance/rate-limit-store-cases.js");
    const names = createKeyNames("batched:");
    const clients = [0, 1, 2].map(() => cluster.client());
    const replicas = clients.map(
      (c) =>
        new BatchedRateLimitStore(new RedisRateLimitStore(c, names), {
          clock: { now: () => Date.now() },
        }),
    );
    try {
      // Takes of 20 (0.05 × 400); an exact quota on another subject (another slot) in the same decision.
      const batched = {
        ...quotaLimit("daily", 400, "day"),
        batch: { localShare: 0.05, flushMs: 200 },
      };
      const exact = quotaLimit("exact", 1000, "day");
      const a = `s:${randomUUID()}`;
      const b = `i:10.9.${n}.1`;
      let admitted = 0;
      await Promise.all(
        replicas.map(async (r) => {
          for (let i = 0; i < 200; i++) {
            const v = await r.decide({
              items: [
                { tag: a, limit: batched },
                { tag: b, limit: exact },
              ],
              cost: 1,
              blockTags: [],
            });
            if (v.status === "ok") admitted++;
          }
        }),
      );
      expect(admitted).toBeLessThanOrEqual(400);
      expect(admitted).toBeGreaterThanOrEqual(400 - 3 * 20);
      await sleep(600); // flush_interval 200 ms, sweep every 50 ms
      const plain = new RedisRateLimitStore(client, names);
      const [qa, qb] = await plain.peek([
        { tag: a, limit: batched },
        { tag: b, limit: exact },
      ]);
      // Each admitted decision charged both once; denied ones neither.
      expect(400 - (qa?.remaining ?? 0)).toBe(admitted);
      expect(1000 - (qb?.remaining ?? 0)).toBe(admitted);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
      for (const c of clients) c.disconnect();
    }
  }, 60_000);
});
