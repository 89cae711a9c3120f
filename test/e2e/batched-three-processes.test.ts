/**
 * `sync: batched` limits across three built Tollgate processes on one private
 * Redis (policy: test/fixtures/policies/batched-e2e.yaml), each under
 * concurrent load at once (a fourth, with the shipped ping budget, for the
 * pause): together they admit no more than the limit and no
 * fewer than the limit minus the bound check-config prints (3 × take); after
 * flush_interval the counts in Redis are exactly what was admitted. With Redis
 * paused, a process decides from the units it holds and says decided_locally;
 * resumed, nothing is counted twice.
 */

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const POLICY = "test/fixtures/policies/batched-e2e.yaml";
const PREFIX = "e2ebatch:";
let redis: TestRedis;
let procs: TollgateProcess[];
let clients: ReturnType<typeof createClient<typeof TollgateService>>[];
let raw: Redis;

beforeAll(async () => {
  redis = await startTestRedis();
  raw = new Redis(redis.url);
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER: "e2e-batched-pepper-0123456789abc",
    TOLLGATE_POLICY_FILE: POLICY,
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
  };
  procs = await Promise.all([
    ...[0, 1, 2].map(() => startTollgateProcess(env)),
    // The pause test's process: the shipped health-ping budget (250 ms), so a
    // paused Redis is noticed within the test's wait. The three flooded ones
    // keep the test helper's widened budgets: on a loaded 2-core machine a
    // slow ping must not send them to the fail-open insurance share.
    startTollgateProcess({
      ...env,
      TOLLGATE_BREAKER_TIMEOUT_MS: "250",
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "250",
    }),
  ]);
  clients = procs.map((p) =>
    createClient(TollgateService, createGrpcTransport({ baseUrl: p.url })),
  );
}, 60_000);

afterAll(async () => {
  raw?.disconnect();
  await Promise.all((procs ?? []).map((p) => p.stop()));
  await redis?.stop();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `calls` CheckRateLimit calls on each process at once, `inFlight` at a time each; admitted in all. */
async function flood(subject: string, path: string, calls: number, inFlight = 16): Promise<number> {
  let admitted = 0;
  await Promise.all(
    clients.slice(0, 3).map(async (c) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < calls) {
            next++;
            const r = await c.checkRateLimit({ subject, method: "GET", path });
            if (r.allowed) admitted++;
          }
        }),
      );
    }),
  );
  return admitted;
}

/** The bucket's value in Redis ("<window id>:<used>" for a quota, "<debt>:<time>" for a rate). */
async function bucketValue(subject: string, limit: string): Promise<string> {
  const keys = await raw.keys(`${PREFIX}rl:{*${subject}*}:${limit}.*`);
  expect(keys).toHaveLength(1);
  return (await raw.get(keys[0] as string)) ?? "";
}

/** The bound check-config prints for `limit` with 3 replicas. */
function printedBound(limit: string): number {
  const out = execFileSync(process.execPath, [CLI, "check-config", POLICY, "--replicas", "3"], {
    encoding: "utf8",
  });
  const line = out.split("\n").find((l) => l.trimStart().startsWith(`${limit} (`)) ?? "";
  const m = /R = 3: − (\d+)\)/.exec(line);
  expect(m, `check-config line for ${limit}: ${line}`).not.toBeNull();
  return Number(m?.[1]);
}

describe("batched limits, three processes on one Redis", () => {
  it("a quota: between the limit − the printed bound and the limit; Redis counts converge on what was admitted", async () => {
    const subject = `s-${randomUUID()}`;
    const bound = printedBound("daily");
    expect(bound).toBe(90);
    const admitted = await flood(subject, "/v1/daily", 400);
    console.log(
      `batched quota 600/day, 3 processes × 400 calls: admitted ${admitted}, bound [${600 - bound}, 600]`,
    );
    expect(admitted).toBeLessThanOrEqual(600);
    expect(admitted).toBeGreaterThanOrEqual(600 - bound);
    await sleep(1000); // flush_interval 300 ms, sweep every 50 ms
    expect(Number((await bucketValue(subject, "daily")).split(":")[1])).toBe(admitted);
  }, 60_000);

  it("a rate: between the limit − the printed bound and the burst plus what refills", async () => {
    const subject = `s-${randomUUID()}`;
    const bound = printedBound("hourly");
    expect(bound).toBe(45);
    const started = Date.now();
    const admitted = await flood(subject, "/v1/hourly", 200);
    // 300 per hour refills one request each 12 s of the run.
    const refilled = Math.ceil((Date.now() - started + 1000) / 12_000);
    console.log(
      `batched rate 300/1h, 3 processes × 200 calls: admitted ${admitted}, bound [${300 - bound}, ${300 + refilled}]`,
    );
    expect(admitted).toBeLessThanOrEqual(300 + refilled);
    expect(admitted).toBeGreaterThanOrEqual(300 - bound);
  }, 60_000);

  it("with an exact limit in the same decision: all or nothing, each counted once", async () => {
    const subject = `s-${randomUUID()}`;
    const admitted = await flood(subject, "/v1/mixed", 150);
    // The exact quota (200) decides first: the batched one (1000) is never short.
    expect(admitted).toBe(200);
    await sleep(1000);
    expect(Number((await bucketValue(subject, "mixed-exact")).split(":")[1])).toBe(200);
    // Denied decisions spent no batched unit: Redis holds exactly the admitted ones.
    expect(Number((await bucketValue(subject, "mixed-batched")).split(":")[1])).toBe(200);
  }, 60_000);

  it("Redis paused: decides from the units held (decided_locally); resumed, counted once", async () => {
    const subject = `s-${randomUUID()}`;
    const c = clients[3] as (typeof clients)[number];
    const call = () => c.checkRateLimit({ subject, method: "GET", path: "/v1/held" });
    const first = await call();
    expect(first.allowed).toBe(true);
    expect(first.decidedLocally).toBe(false);
    const pid = redis.process?.pid as number;
    process.kill(pid, "SIGSTOP");
    try {
      await sleep(1500); // the health ping (every 500 ms, 250 ms to answer) notices
      // 29 of the 30 units taken are held for 4 s: ten decisions spend them.
      for (let i = 0; i < 10; i++) {
        const r = await call();
        expect(r.allowed).toBe(true);
        expect(r.decidedLocally).toBe(true);
      }
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await sleep(1200);
    const after = await call();
    expect(after.allowed).toBe(true);
    expect(after.decidedLocally).toBe(false);
    // Past flush_interval the 18 units left go back: Redis counts the 12 admitted, once.
    await sleep(4500);
    expect(Number((await bucketValue(subject, "held")).split(":")[1])).toBe(12);
  }, 60_000);
});
