/**
 * Two built Tollgate processes on one private Redis, the second with its clock
 * 30 s ahead (libfaketime: Debian package `faketime`). They must agree on every
 * decision, because the clock of a decision is Redis TIME: exact admission
 * under concurrency, quotas, all-or-nothing charging, shadow limits, blocks
 * seen, listed and lifted on both, path variants, response headers — and
 * afterwards every rate-limit key in Redis carries an expiry.
 */

import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  type CheckRateLimitResponse,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { expectEveryRateLimitKeyExpires } from "../integration/rate-limit-expiry.js";

const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const PREFIX = "e2erl:";
const SKEW_MS = 30_000;

let redis: TestRedis;
let a: TollgateProcess;
let b: TollgateProcess;
let clients: ReturnType<typeof clientsOf>[];

function clientsOf(p: TollgateProcess) {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    process: p,
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
    async metrics(): Promise<string> {
      return (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
    },
  };
}

beforeAll(async () => {
  if (!existsSync(FAKETIME_LIB)) {
    throw new Error(`libfaketime is missing: apt-get install -y faketime (${FAKETIME_LIB})`);
  }
  redis = await startTestRedis();
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER: "e2e-rate-limit-pepper-0123456789",
    TOLLGATE_POLICY_FILE: "test/fixtures/policies/rate-limit-e2e.yaml",
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    // Generous on a shared 2-core machine: a slow command must not fail a decision.
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
    TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
  };
  [a, b] = await Promise.all([
    startTollgateProcess(env),
    startTollgateProcess({ ...env, LD_PRELOAD: FAKETIME_LIB, FAKETIME: `+${SKEW_MS / 1000}s` }),
  ]);
  clients = [clientsOf(a), clientsOf(b)];
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

const subject = () => `s-${randomUUID()}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const headersOf = (r: { responseHeaders: { name: string; value: string }[] }) =>
  Object.fromEntries(r.responseHeaders.map((h) => [h.name.toLowerCase(), h.value]));
const check = (i: 0 | 1, s: string, path: string, extra = {}): Promise<CheckRateLimitResponse> =>
  (clients[i] as ReturnType<typeof clientsOf>).tollgate.checkRateLimit({
    subject: s,
    path,
    method: "GET",
    ...extra,
  });

describe("two Tollgate processes, clocks 30 s apart, one Redis", () => {
  it("the second process really runs 30 s ahead", () => {
    // pino stamps each line with its own process's clock.
    const t = (p: TollgateProcess) =>
      Date.parse(String(p.logs.find((l) => l.msg === "tollgate serving")?.time));
    expect(Math.abs(t(b) - t(a) - SKEW_MS)).toBeLessThan(5_000);
  });

  it("admits exactly the burst of 100 when 2 × 200 callers decide at once", async () => {
    const s = subject();
    const all = await Promise.all(
      Array.from({ length: 400 }, (_, n) => check((n % 2) as 0 | 1, s, "/v1/hot")),
    );
    expect(all.filter((r) => r.allowed)).toHaveLength(100);
    const denied = all.filter((r) => !r.allowed);
    expect(denied).toHaveLength(300);
    expect(denied.every((r) => r.reason === Reason.RATE_LIMITED && r.httpStatus === 429)).toBe(
      true,
    );
    // Whichever process asks next, the bucket is empty for both.
    for (const i of [0, 1] as const) expect((await check(i, s, "/v1/hot")).allowed).toBe(false);
  });

  it("a quota admits exactly N across both processes under concurrency", async () => {
    const s = subject();
    const all = await Promise.all(
      Array.from({ length: 200 }, (_, n) => check((n % 2) as 0 | 1, s, "/v1/quota")),
    );
    expect(all.filter((r) => r.allowed)).toHaveLength(50);
    // Both see the same window end (UTC midnight by Redis TIME), whatever their own clocks say.
    const [ra, rb] = await Promise.all([check(0, s, "/v1/quota"), check(1, s, "/v1/quota")]);
    const resetA = Number(ra.result?.limits[0]?.reset?.seconds);
    const resetB = Number(rb.result?.limits[0]?.reset?.seconds);
    const untilMidnight = (86_400_000 - (Date.now() % 86_400_000)) / 1000;
    expect(Math.abs(resetA - untilMidnight)).toBeLessThanOrEqual(2);
    expect(Math.abs(resetA - resetB)).toBeLessThanOrEqual(1);
  });

  it("alternating between the processes, one bucket counts down and refuses the same way", async () => {
    const s = subject();
    const seen: [boolean, number, string | undefined][] = [];
    for (let n = 0; n < 6; n++) {
      const r = await check((n % 2) as 0 | 1, s, "/v1/x");
      seen.push([r.allowed, Number(r.result?.limits[0]?.remaining), headersOf(r)["retry-after"]]);
    }
    // Were the skewed clock used, its 30 s lead would refill half a request per call.
    expect(seen).toEqual([
      [true, 2, undefined],
      [true, 1, undefined],
      [true, 0, undefined],
      [false, 0, "60"],
      [false, 0, "60"],
      [false, 0, "60"],
    ]);
  });

  it("all or nothing: a denial by the ip limit charges nothing to the subject's", async () => {
    const s = subject();
    const first = await check(0, s, "/v1/pair", { clientIp: "192.0.2.10" });
    expect(first.allowed).toBe(true);
    for (const i of [1, 0] as const) {
      const r = await check(i, s, "/v1/pair", { clientIp: "192.0.2.10" });
      expect(r.allowed).toBe(false);
      expect(r.result?.deciding?.name).toBe("pair-ip");
      // Nothing was charged: the subject's limit still has the 4 left after the first.
      expect(r.result?.limits.map((l) => [l.name, Number(l.remaining)])).toEqual([
        ["pair-subject", 4],
        ["pair-ip", 0],
      ]);
    }
    const fresh = await check(1, s, "/v1/pair", { clientIp: "192.0.2.11" });
    expect(fresh.allowed).toBe(true);
    expect(fresh.result?.limits.map((l) => [l.name, Number(l.remaining)])).toEqual([
      ["pair-subject", 3],
      ["pair-ip", 0],
    ]);
  });

  it("shadow limits never deny but are reported and counted", async () => {
    const s = subject();
    const rs: CheckRateLimitResponse[] = [];
    for (let n = 0; n < 3; n++) rs.push(await check(0, s, "/v1/shadowed"));
    expect(rs.map((r) => r.allowed)).toEqual([true, true, true]);
    const shadow = rs.map((r) => r.result?.limits.find((l) => l.name === "shadow-one"));
    expect(shadow.map((l) => [l?.shadow, l?.exceeded])).toEqual([
      [true, false],
      [true, true],
      [true, true],
    ]);
    expect(
      rs.map((r) => Number(r.result?.limits.find((l) => l.name === "enforce-ten")?.remaining)),
    ).toEqual([9, 8, 7]);
    expect(await clients[0]?.metrics()).toMatch(
      /^tollgate_ratelimit_shadow_denials_total\{rule="shadow-one"\} 2$/m,
    );
  });

  it("path variants land in the same bucket; none reaches an unmetered one", async () => {
    const s = subject();
    for (let n = 0; n < 3; n++) expect((await check(0, s, "/v1/x")).allowed).toBe(true);
    const variants = [
      "//v1/x",
      "/v1//x",
      "/v1/%2e%2e/v1/x",
      "/V1/x",
      "/v1/x/",
      "/v1/./x",
      "/v1/x?y=1",
    ];
    for (const [n, path] of variants.entries()) {
      const r = await check((n % 2) as 0 | 1, s, path);
      expect({ path, allowed: r.allowed, limit: r.result?.deciding?.name }).toEqual({
        path,
        allowed: false,
        limit: "x",
      });
    }
    // Encoded slashes are refused outright rather than matched anywhere.
    await expect(check(0, s, "/v1%2fx")).rejects.toThrow(/path/);
    // A path matching no endpoint is unmetered here: the variants above were not.
    expect((await check(0, s, "/v2/x")).result?.limits).toEqual([]);
  });

  it("Authorize(apply_limits) answers 429 with RateLimit-Policy, RateLimit and Retry-After", async () => {
    const c = clients[0] as ReturnType<typeof clientsOf>;
    const created = await c.keys.createKey({ owner: "acme", scopes: ["orders:read"] });
    const authorize = (i: 0 | 1) =>
      (clients[i] as ReturnType<typeof clientsOf>).tollgate.authorize({
        apiKey: created.secret,
        method: "GET",
        path: "/v1/keyed",
        applyLimits: true,
      });
    const ok1 = await authorize(0);
    expect(ok1.allowed).toBe(true);
    expect(headersOf(ok1)).toMatchObject({
      "ratelimit-policy": '"keyed";q=2;w=60',
      ratelimit: '"keyed";r=1;t=30',
    });
    const ok2 = await authorize(1);
    expect(ok2.allowed).toBe(true);
    expect(headersOf(ok2).ratelimit).toBe('"keyed";r=0;t=60');
    const denied = await authorize(0);
    expect(denied).toMatchObject({ allowed: false, reason: Reason.RATE_LIMITED, httpStatus: 429 });
    expect(headersOf(denied)).toEqual({
      "ratelimit-policy": '"keyed";q=2;w=60',
      ratelimit: '"keyed";r=0;t=60',
      "retry-after": "30",
    });
  });

  describe("blocks (by ip: 5 denials within 1 m → 1 s, ×2 per repeat, at most 2 s)", () => {
    const fresh = () => {
      const s = subject();
      const ip = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.7`;
      const at = (i: 0 | 1) => check(i, s, "/v1/blocky", { clientIp: ip });
      /** Denied until blocked, through process `i`; resolves when the block is in place. */
      const offend = async (i: 0 | 1) => {
        for (let n = 0; n < 20; n++) if ((await at(i)).reason === Reason.BLOCKED) return Date.now();
        throw new Error("no block after 20 requests");
      };
      const listed = async (i: 0 | 1) =>
        (await (clients[i] as ReturnType<typeof clientsOf>).keys.listBlocks({})).blocks.find(
          (x) => x.subject === ip,
        );
      return { ip, at, offend, listed };
    };

    it("a block placed through one process refuses on the other, Retry-After its length", async () => {
      const f = fresh();
      await f.offend(0);
      const r = await f.at(1);
      expect(r).toMatchObject({ allowed: false, reason: Reason.BLOCKED, httpStatus: 429 });
      expect(headersOf(r)["retry-after"]).toBe("1");
    });

    it("a block ends on time on both processes", async () => {
      const f = fresh();
      const placedAt = await f.offend(0);
      // A sleep, not a wait for a condition: the block must have ended *on
      // time* (1 s, plus a margin), so the check runs at that moment.
      await sleep(Math.max(0, placedAt + 1_150 - Date.now()));
      for (const i of [0, 1] as const) {
        // No longer blocked; the limit itself (1 per minute) still denies.
        expect({ process: i, reason: (await f.at(i)).reason }).toEqual({
          process: i,
          reason: Reason.RATE_LIMITED,
        });
      }
    });

    it("a block placed through the skewed process ends on time on the other (clocks are not compared)", async () => {
      const f = fresh();
      const placedAt = await f.offend(1);
      const onA = await f.at(0);
      expect(onA.reason).toBe(Reason.BLOCKED);
      expect(headersOf(onA)["retry-after"]).toBe("1");
      // A sleep on purpose: the block must have ended on time (see above).
      await sleep(Math.max(0, placedAt + 1_150 - Date.now()));
      expect((await f.at(0)).reason).toBe(Reason.RATE_LIMITED);
    });

    it("ListBlocks on either process lists an active block, whichever placed it", async () => {
      for (const placer of [0, 1] as const) {
        const f = fresh();
        await f.offend(placer);
        // The skewed process lists first: it must not drop what the other can still see.
        for (const i of [1, 0] as const) {
          const blk = await f.listed(i);
          expect({ placer, lister: i, kind: blk?.subjectKind, level: blk?.level }).toEqual({
            placer,
            lister: i,
            kind: SubjectKind.IP,
            level: 1,
          });
        }
      }
    });

    it("repeat offences escalate ×2 up to the max, and DeleteBlock lifts a block on both processes", async () => {
      const f = fresh();
      const levels: [number | undefined, string | undefined][] = [];
      for (const via of [0, 0, 0] as const) {
        await f.offend(via);
        levels.push([(await f.listed(0))?.level, headersOf(await f.at(0))["retry-after"]]);
        const lifted = await (clients[0] as ReturnType<typeof clientsOf>).keys.deleteBlock({
          subjectKind: SubjectKind.IP,
          subject: f.ip,
        });
        expect(lifted.lifted).toBe(true);
      }
      // 1 s, then 2 s, then capped at max_duration 2 s.
      expect(levels).toEqual([
        [1, "1"],
        [2, "2"],
        [3, "2"],
      ]);
      // Lifted through process 0: process 1 had cached the block and must forget it
      // too, once the announcement crosses Redis pub/sub.
      const deadline = Date.now() + 2_000;
      while ((await f.at(1)).reason === Reason.BLOCKED && Date.now() < deadline) await sleep(20);
      expect((await f.at(1)).reason).not.toBe(Reason.BLOCKED);
      await f.offend(1);
      expect((await f.at(0)).reason).toBe(Reason.BLOCKED);
      const lifted = await (clients[1] as ReturnType<typeof clientsOf>).keys.deleteBlock({
        subjectKind: SubjectKind.IP,
        subject: f.ip,
      });
      expect(lifted.lifted).toBe(true);
      // Process 0 had cached the block: wait until the announcement crossed
      // Redis pub/sub and it forgot it.
      await pollUntil(
        () => f.at(0),
        (r) => r.reason !== Reason.BLOCKED,
        2_000,
      );
      for (const i of [0, 1] as const) {
        expect({ process: i, reason: (await f.at(i)).reason }).toEqual({
          process: i,
          reason: Reason.RATE_LIMITED,
        });
        expect(await f.listed(i)).toBeUndefined();
      }
    });
  });

  it("after the run, every rate-limit key in Redis carries an expiry (key records persist)", async () => {
    const client = new Redis(redis.url);
    try {
      const found = await expectEveryRateLimitKeyExpires([client], PREFIX);
      expect(found).toContain("rl");
      expect(found).toContain("bo");
    } finally {
      client.disconnect();
    }
  });
});
