/**
 * The Redis rate-limit store on a real 3-master Redis Cluster: the shared
 * conformance cases (whose all-or-nothing cases span two subjects, two hash
 * slots), a check that those subjects really land on different masters, and
 * the expiry of every key written on every node.
 */
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

  it("after the whole suite, every rate-limit key on every master carries an expiry", async () => {
    const nodes = cluster.nodes.map((node) => new Redis(node.url));
    try {
      const found = await expectEveryRateLimitKeyExpires(nodes, "");
      expect(found).toContain("rl");
    } finally {
      for (const node of nodes) node.disconnect();
    }
  });
});
