/**
 * What a caller can make Tollgate write into Redis (hardening point 6). Against
 * the built server on the test's own redis-server, bounded in time and count,
 * 127.0.0.1 only:
 *
 * - a flood of failed Authorize calls with distinct made-up keys from a handful
 *   of IPs into a 20 MB `noeviction` Redis: memory and key count stay within a
 *   small bound, key management and rate limiting keep working, and the
 *   brute-force, credential-stuffing and high-count rules still fire from the
 *   aggregated counts, which add up exactly;
 * - failures from thousands of distinct IPs: detection windows stay capped per
 *   rule while the one real brute-forcer among them is still caught;
 * - maximum-size RecordEvent events, and many small ones with distinct ids and
 *   subjects: the stream is bounded by bytes, idempotency markers and detection
 *   windows by count;
 * - Redis at maxmemory: the refusal is logged and counted as "out of memory"
 *   and told to callers as such, failing event writes open only the events'
 *   own breaker and never fail a decision, and everything recovers once
 *   memory is freed.
 *
 * Each case prints what it measured (used_memory, DBSIZE) for the record.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType, SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { sleep, waitFor } from "./support.js";

const PEPPER = "redis-write-bounds-pepper-0123456789";
const MiB = 1024 * 1024;

const POLICY = `
version: 1
default_tier: free
tiers:
  free: {}
endpoints:
  - name: orders
    path: /v1/orders
    limits:
      - { name: per-subject, by: subject, rate: { requests: 1000, per: 1m } }
detection:
  rules:
    - name: brute-force
      kind: threshold
      events: [auth_failure]
      by: ip
      count: 20
      within: 60s
      severity: high
      cooldown: 5m
      action: { block: 10m }
    - name: credential-stuffing
      kind: distinct
      events: [auth_failure]
      where: { reason: [UNKNOWN_KEY] }
      by: ip
      distinct: key
      count: 10
      within: 5m
      severity: critical
      cooldown: 5m
    - name: failure-storm
      kind: threshold
      events: [auth_failure, blocked]
      by: ip
      count: 5000
      within: 5m
      severity: critical
      cooldown: 5m
    - name: app-logins
      kind: threshold
      events: [login.failed]
      by: subject
      count: 3
      within: 60s
      severity: medium
      cooldown: 5m
`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-write-bounds-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function envFor(redis: TestRedis, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: PEPPER,
    TOLLGATE_POLICY_FILE: join(dir, "policy.yaml"),
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_LOG_LEVEL: "info",
    ...extra,
  };
}

function clientsOf(p: TollgateProcess) {
  const t = createGrpcTransport({ baseUrl: p.url });
  return { tollgate: createClient(TollgateService, t), keys: createClient(KeyService, t) };
}

/** used_memory (bytes) and DBSIZE of a Redis. */
async function footprint(r: Redis): Promise<{ usedMemory: number; keys: number }> {
  const info = await r.info("memory");
  const usedMemory = Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
  return { usedMemory, keys: await r.dbsize() };
}

/** Keys matching `pattern` (SCAN, test Redis only). */
async function countKeys(r: Redis, pattern: string): Promise<number> {
  let n = 0;
  let cursor = "0";
  do {
    const [next, batch] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    n += batch.length;
    cursor = next;
  } while (cursor !== "0");
  return n;
}

async function metric(p: TollgateProcess, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => line.test(l))
    .reduce((a, l) => a + Number(l.split(" ").pop()), 0);
}

/** Runs `total` calls of `call(i)` from `concurrency` loops; never longer than `deadlineMs`. */
async function flood(
  total: number,
  concurrency: number,
  deadlineMs: number,
  call: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const stopAt = Date.now() + deadlineMs;
  const worker = async () => {
    while (next < total && Date.now() < stopAt) await call(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return next;
}

const mb = (b: number) => `${(b / MiB).toFixed(2)} MiB`;

describe("a flood of failed Authorize calls from a handful of IPs", () => {
  const ATTACKERS = ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"];
  const CALLS = 50_000;
  let redis: TestRedis;
  let admin: Redis;
  let proc: TollgateProcess;

  beforeAll(async () => {
    redis = await spawnRedis(["--maxmemory", "20mb", "--maxmemory-policy", "noeviction"]);
    admin = new Redis(redis.url);
    proc = await startTollgateProcess(envFor(redis));
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it("writes a bounded amount, keeps keys and limits working, and still detects", async () => {
    const { tollgate, keys } = clientsOf(proc);
    const { secret } = await keys.createKey({ owner: "victim" });
    await sleep(500);
    const before = await footprint(admin);
    const sent = new Map<string, number>(ATTACKERS.map((ip) => [ip, 0]));
    const started = Date.now();
    const done = await flood(CALLS, 32, 150_000, async (i) => {
      const ip = ATTACKERS[i % ATTACKERS.length] as string;
      const r = await tollgate.authorize({
        apiKey: generateSecret("live"),
        clientIp: ip,
        method: "GET",
        path: "/v1/orders",
      });
      expect([Reason.UNKNOWN_KEY, Reason.BLOCKED]).toContain(r.reason);
      sent.set(ip, (sent.get(ip) ?? 0) + 1);
    });
    const seconds = (Date.now() - started) / 1000;
    expect(done).toBe(CALLS);
    // The trailing aggregates of the last window are written within it plus a flush.
    await sleep(1500);
    const after = await footprint(admin);
    console.log(
      `${CALLS} failed Authorize in ${seconds.toFixed(1)} s: used_memory ${mb(before.usedMemory)} → ${mb(after.usedMemory)} (+${mb(after.usedMemory - before.usedMemory)}), DBSIZE ${before.keys} → ${after.keys}`,
    );
    expect(after.usedMemory - before.usedMemory).toBeLessThan(2 * MiB);
    expect(after.keys).toBeLessThan(80);

    // The store still takes writes: key management and rate limiting work.
    const created = await keys.createKey({ owner: "after-the-flood" });
    expect(created.secret).not.toBe("");
    const rl = await tollgate.checkRateLimit({ subject: "after-the-flood", endpoint: "orders" });
    expect(rl.allowed).toBe(true);
    expect((await tollgate.authorize({ apiKey: secret, clientIp: "198.51.100.9" })).allowed).toBe(
      true,
    );

    // Every rule fired once per attacking IP, from aggregated counts.
    for (const rule of ["brute-force", "credential-stuffing", "failure-storm"]) {
      const alerts = await keys.listAlerts({ rule, pageSize: 100 });
      expect(new Set(alerts.alerts.map((a) => a.subject)), rule).toEqual(new Set(ATTACKERS));
    }

    // The aggregated records add up to exactly what was sent, per IP.
    for (const ip of ATTACKERS) {
      const counted = await waitFor(async () => {
        let total = 0;
        for (const type of [EventType.AUTH_FAILURE, EventType.BLOCKED]) {
          const page = await keys.listEvents({ subject: ip, type, pageSize: 1000 });
          for (const e of page.events) total += Number(e.attributes.count ?? "1");
        }
        return total === sent.get(ip);
      }, 15_000);
      expect(counted, `events of ${ip} add up to ${sent.get(ip)}`).toBe(true);
    }
    const page = await keys.listEvents({
      subject: ATTACKERS[0],
      type: EventType.AUTH_FAILURE,
      pageSize: 1000,
    });
    console.log(`${ATTACKERS[0]}: ${page.events.length} auth_failure records`);
    expect(page.events.length).toBeLessThan(20);
    const first = page.events.at(-1);
    expect(first?.attributes.reason).toBe("UNKNOWN_KEY");
    expect(first?.attributes.key_fp).toMatch(/^[0-9a-f]{16}$/);
  }, 240_000);
});

describe("failed Authorize calls from thousands of distinct IPs", () => {
  const DISTINCT = 6000;
  const BRUTE = "192.0.2.200";
  let redis: TestRedis;
  let admin: Redis;
  let proc: TollgateProcess;

  beforeAll(async () => {
    redis = await spawnRedis();
    admin = new Redis(redis.url);
    proc = await startTollgateProcess(envFor(redis, { TOLLGATE_DETECTION_MAX_SUBJECTS: "1000" }));
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it("caps the detection windows per rule and still catches the brute-forcer among them", async () => {
    const { tollgate, keys } = clientsOf(proc);
    const before = await footprint(admin);
    await flood(DISTINCT + DISTINCT / 20, 16, 120_000, async (i) => {
      // One in 21 calls is the brute-forcer's; the others each come from a new IP.
      const ip = i % 21 === 20 ? BRUTE : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      await tollgate.authorize({ apiKey: generateSecret("live"), clientIp: ip });
    });
    await sleep(1500);
    const after = await footprint(admin);
    const windows = await countKeys(admin, "tg:dw:*");
    console.log(
      `${DISTINCT} distinct IPs: ${windows} detection windows, used_memory +${mb(after.usedMemory - before.usedMemory)}, DBSIZE ${before.keys} → ${after.keys}`,
    );
    // Three rules count auth failures by IP; each tracks at most 1000 subjects.
    expect(windows).toBeLessThanOrEqual(3 * 1000);
    expect(after.keys).toBeLessThan(3 * 1000 + 100);
    const alerts = await keys.listAlerts({ rule: "brute-force" });
    expect(alerts.alerts.map((a) => a.subject)).toEqual([BRUTE]);
    const blocked = await tollgate.authorize({ apiKey: generateSecret("live"), clientIp: BRUTE });
    expect(blocked.reason).toBe(Reason.BLOCKED);
  }, 180_000);
});

describe("RecordEvent: maximum-size events, distinct ids and distinct subjects", () => {
  const MAX_BYTES = 4 * MiB;
  let redis: TestRedis;
  let admin: Redis;
  let proc: TollgateProcess;

  beforeAll(async () => {
    redis = await spawnRedis(["--maxmemory", "256mb", "--maxmemory-policy", "noeviction"]);
    admin = new Redis(redis.url);
    proc = await startTollgateProcess(
      envFor(redis, {
        TOLLGATE_EVENT_MAX_BYTES: String(MAX_BYTES),
        TOLLGATE_EVENT_MAX_COUNT: "800",
        TOLLGATE_DETECTION_MAX_SUBJECTS: "500",
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it("keeps maximum-size events within the byte bound", async () => {
    const { tollgate, keys } = clientsOf(proc);
    const before = await footprint(admin);
    const attributes: Record<string, string> = {};
    for (let a = 0; a < 32; a++)
      attributes[`${String(a).padStart(2, "0")}${"k".repeat(62)}`] = "v".repeat(1024);
    const big = (i: number) => ({
      id: `big-${i}-`.padEnd(128, "x"),
      customType: "bulk.max".padEnd(64, "z"),
      subject: `s${i % 7}`.padEnd(256, "s"),
      subjectKind: SubjectKind.CALLER,
      endpoint: "/".padEnd(2048, "e"),
      attributes,
    });
    const EVENTS = 800;
    const PER_CALL = 25; // 25 × ~37 KB stays under the 1 MiB message bound
    for (let i = 0; i < EVENTS; i += PER_CALL) {
      const r = await tollgate.recordEvent({
        events: Array.from({ length: PER_CALL }, (_, j) => big(i + j)),
      });
      expect(r.acceptedIds).toHaveLength(PER_CALL);
    }
    const after = await footprint(admin);
    const growth = after.usedMemory - before.usedMemory;
    console.log(
      `${EVENTS} maximum-size events (~${mb(EVENTS * 37_500)} of JSON): used_memory +${mb(growth)} with TOLLGATE_EVENT_MAX_BYTES=${mb(MAX_BYTES)}, DBSIZE ${before.keys} → ${after.keys}`,
    );
    expect(growth).toBeLessThan(MAX_BYTES * 1.25 + MiB);
    // The newest are kept and listed whole.
    const newest = await keys.listEvents({ customType: "bulk.max".padEnd(64, "z"), pageSize: 10 });
    expect(newest.events).toHaveLength(10);
    expect(newest.events.map((e) => e.id)).toContain(`big-${EVENTS - 1}-`.padEnd(128, "x"));
    expect(Object.keys(newest.events[0]?.attributes ?? {})).toHaveLength(32);
  }, 120_000);

  it("bounds idempotency markers and detection windows, and still deduplicates recent ids", async () => {
    const { tollgate } = clientsOf(proc);
    const before = await footprint(admin);
    const EVENTS = 4000;
    let last: { id: string; customType: string; subject: string }[] = [];
    for (let i = 0; i < EVENTS; i += 100) {
      last = Array.from({ length: 100 }, (_, j) => ({
        id: `small-${i + j}`,
        customType: "login.failed",
        subject: `user-${i + j}`,
      }));
      const r = await tollgate.recordEvent({ events: last });
      expect(r.acceptedIds).toHaveLength(100);
    }
    const after = await footprint(admin);
    const windows = await countKeys(admin, "tg:dw:*");
    console.log(
      `${EVENTS} events with distinct ids and subjects: DBSIZE ${before.keys} → ${after.keys}, ${windows} detection windows, used_memory +${mb(after.usedMemory - before.usedMemory)}`,
    );
    expect(after.keys).toBeLessThan(500 + 60);
    expect(windows).toBeLessThanOrEqual(500);
    // The latest batch is remembered: sent again, every id is a duplicate.
    const again = await tollgate.recordEvent({ events: last });
    expect(again.acceptedIds).toEqual([]);
    expect(again.duplicateIds).toHaveLength(100);
  }, 120_000);
});

describe("Redis at maxmemory (noeviction)", () => {
  let redis: TestRedis;
  let admin: Redis;
  let proc: TollgateProcess;

  beforeAll(async () => {
    redis = await spawnRedis(["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"]);
    admin = new Redis(redis.url);
    proc = await startTollgateProcess(envFor(redis));
  }, 60_000);
  afterAll(async () => {
    await proc?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  it("reports OOM as such, never fails a decision for an event write, and recovers", async () => {
    const { tollgate, keys } = clientsOf(proc);
    const { secret } = await keys.createKey({ owner: "before-oom" });
    expect((await tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    // Fill Redis with someone else's data until it refuses writes, then put
    // maxmemory below what it uses, so it stays over (not hovering at) the limit.
    let junk = 0;
    for (; junk < 1000; junk++) {
      const refused = await admin.set(`junk:${junk}`, "j".repeat(64 * 1024)).then(
        () => false,
        (err) => String(err).includes("OOM"),
      );
      if (refused) break;
    }
    await admin.config("SET", "maxmemory", String((await footprint(admin)).usedMemory - MiB));
    console.log(`Redis filled: ${JSON.stringify(await footprint(admin))}`);

    // Failed Authorize calls go on being decided while their events cannot be written.
    const answers = new Set<Reason>();
    await flood(2000, 16, 60_000, async () => {
      const r = await tollgate.authorize({
        apiKey: generateSecret("live"),
        clientIp: "203.0.113.77",
      });
      answers.add(r.reason);
    });
    expect(answers).toEqual(new Set([Reason.UNKNOWN_KEY]));
    await sleep(1500); // background flushes meet OOM
    expect((await tollgate.authorize({ apiKey: secret, clientIp: "198.51.100.1" })).allowed).toBe(
      true,
    );
    expect(await metric(proc, /^tollgate_redis_oom_total\{/)).toBeGreaterThan(0);
    // Failing event writes open the events subsystem's breaker (an outage for
    // them: they fail fast), never the decision path's, which stays closed.
    expect(
      await metric(proc, /^tollgate_breaker_transitions_total\{breaker="redis-events",to="open"\}/),
    ).toBeGreaterThan(0);
    expect(await metric(proc, /^tollgate_breaker_state\{breaker="redis"\}/)).toBe(0);

    // A decision-path write is refused with a reason an operator can act on.
    const err = await keys.createKey({ owner: "during-oom" }).catch((e) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toMatch(/out of memory/);
    // Rate-limit charges fail too, by the fail mode (closed: UNAVAILABLE), saying why.
    for (let i = 0; i < 20; i++) {
      const e = await tollgate
        .checkRateLimit({ subject: `oom-${i}`, endpoint: "orders" })
        .catch((x) => ConnectError.from(x));
      expect(e).toBeInstanceOf(ConnectError);
      expect((e as ConnectError).code).toBe(Code.Unavailable);
    }
    expect(
      await metric(proc, /^tollgate_redis_errors_total\{op="ratelimit\.decide",kind="oom"\}/),
    ).toBe(20);
    const oomLines = proc.logs.filter((l) =>
      String(l.msg).startsWith("Redis is out of memory (maxmemory reached)"),
    );
    console.log(`OOM log lines: ${oomLines.length}; first: ${JSON.stringify(oomLines[0])}`);
    expect(oomLines.length).toBeGreaterThanOrEqual(1);
    expect(oomLines.length).toBeLessThanOrEqual(4);

    // Memory freed: writes work again once the breaker lets a trial call through.
    await admin.del(...Array.from({ length: junk + 1 }, (_, i) => `junk:${i}`));
    const recovered = await waitFor(
      () =>
        keys.createKey({ owner: "after-oom" }).then(
          () => true,
          () => false,
        ),
      10_000,
    );
    expect(recovered).toBe(true);
  }, 120_000);
});
