/**
 * Credits on two built Tollgate processes sharing one private Redis: a
 * balance spent through either is one balance, a 402 on both once it is
 * empty, and a new refill period refills it exactly once however many
 * requests of both race into the new period (the refill is lazy, inside the
 * decision's script, so the replica count cannot matter). Redis TIME cannot
 * be moved (libfaketime does not load into redis-server here), so a period
 * passing is made by rewinding the balance's stored period id; the refill
 * that follows is the script's own. The CLI creates the key's plan, shows the
 * balance and tops it up; check-config shows the tiers' plans.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { creditLimit } from "../../src/policy/policy.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { cli } from "../helpers/clients.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { rewindCreditPeriods } from "../integration/credit-periods.js";

const PREFIX = "e2ecr:";
const POLICY = "test/fixtures/policies/credits-e2e.yaml";

let redis: TestRedis;
let client: Redis;
let procs: TollgateProcess[];
let doors: ReturnType<typeof clientsOf>[];

function clientsOf(p: TollgateProcess) {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}

beforeAll(async () => {
  redis = await startTestRedis();
  client = new Redis(redis.url);
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER: "e2e-credits-pepper-0123456789abcd",
    TOLLGATE_POLICY_FILE: POLICY,
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
    TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
  };
  procs = await Promise.all([startTollgateProcess(env), startTollgateProcess(env)]);
  doors = procs.map(clientsOf);
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await Promise.all((procs ?? []).map((p) => p.stop()));
  await redis?.stop();
});

/** `n` CheckRateLimit calls of cost 1 at once, alternating between the processes. */
async function race(keyId: string, n: number) {
  const all = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      (doors[i % 2] as (typeof doors)[0]).tollgate.checkRateLimit({ keyId, cost: 1 }),
    ),
  );
  return {
    allowed: all.filter((r) => r.allowed).length,
    exhausted: all.filter((r) => r.reason === Reason.CREDITS_EXHAUSTED && r.httpStatus === 402)
      .length,
  };
}

describe("credits on two processes, one Redis", () => {
  it("one balance for both, 402 on both when empty, and each new period refills it once", async () => {
    const [a, b] = procs as [TollgateProcess, TollgateProcess];
    const created = await cli(
      [
        "keys",
        "create",
        "--owner",
        "acme",
        "--credits",
        "10",
        "--refill",
        "daily",
        "--refill-mode",
        "add",
        "--refill-cap",
        "100",
        "--json",
      ],
      { TOLLGATE_SERVER: a.url },
    );
    expect(created.code, created.stderr).toBe(0);
    const keyId = JSON.parse(created.stdout).key.id as string;

    // Ten credits, spent through both processes, 40 callers at once.
    expect(await race(keyId, 40)).toEqual({ allowed: 10, exhausted: 30 });
    for (const d of doors) {
      const r = await d.tollgate.checkRateLimit({ keyId });
      expect(r).toMatchObject({
        allowed: false,
        reason: Reason.CREDITS_EXHAUSTED,
        httpStatus: 402,
      });
      expect(r.credits?.balance).toBe(0n);
      expect(r.responseHeaders.some((h) => h.name.toLowerCase() === "retry-after")).toBe(true);
    }

    // The balance's plan is the key's own: the item the processes charge.
    const item = {
      tag: `k:${keyId}`,
      limit: creditLimit({ amount: 10, refill: "daily", refillDay: 1, mode: "add", cap: 100 }),
    };
    const names = createKeyNames(PREFIX);
    // A new period: +10 once, whichever process sees it first.
    await rewindCreditPeriods(client, names, item, 1);
    expect(await race(keyId, 40)).toEqual({ allowed: 10, exhausted: 30 });
    // Three periods: +30 once (not 30 per replica, not per request).
    await rewindCreditPeriods(client, names, item, 3);
    expect(await race(keyId, 60)).toEqual({ allowed: 30, exhausted: 30 });

    // The CLI on the other process: the balance and next refill, then a top-up.
    const got = await cli(["keys", "get", keyId], { TOLLGATE_SERVER: b.url });
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toMatch(
      /credits\s+10 credits, refilled daily \(00:00 UTC\), adding 10 up to 100 \(the key's own plan\)/,
    );
    expect(got.stdout).toMatch(/balance\s+0\n/);
    expect(got.stdout).toMatch(/next refill\s+\d{4}-\d\d-\d\dT00:00:00\.000Z/);
    const topped = await cli(["keys", "credits", keyId, "--top-up", "5"], {
      TOLLGATE_SERVER: b.url,
    });
    expect(topped.code, topped.stderr).toBe(0);
    expect(topped.stdout).toMatch(/balance\s+5\n/);
    const after = await (doors[0] as (typeof doors)[0]).tollgate.checkRateLimit({ keyId });
    expect(after.allowed).toBe(true);
    expect(after.credits?.balance).toBe(4n);

    const bad = await cli(["keys", "credits", keyId, "--top-up", "5", "--set", "1"], {
      TOLLGATE_SERVER: b.url,
    });
    expect(bad.code).toBe(2);
  });

  it("check-config shows each tier's credit plan", async () => {
    const r = await cli(["check-config", POLICY]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      "    credits: 10 credits, refilled daily (00:00 UTC), adding 10 up to 100",
    );
    expect(r.stdout).toContain("    credits: 1000 credits, refilled monthly on day 15 (00:00 UTC)");
  });
});
