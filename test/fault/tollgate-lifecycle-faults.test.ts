/**
 * Fault suite, Tollgate's own lifecycle around Redis: SIGTERM under load with
 * calls in flight (readiness false, in-flight calls complete, exit 0 within the
 * shutdown deadline), then Redis down when Tollgate starts (it starts, answers
 * by fail mode, and decides from Redis once Redis appears).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clientsFor,
  createFaultKeys,
  type FaultKeys,
  standardProbes,
  warm,
} from "./helpers/clients.js";
import { Load, sleep, summarize, violations, waitRecovered, within } from "./helpers/load.js";
import {
  type FaultRedis,
  spawnFaultRedis,
  startFaultTollgate,
  stopAll,
} from "./helpers/processes.js";
import { type CaseResult, writeResults } from "./helpers/report.js";

/** Longest acceptable answer while Redis is unreachable, ms (see the standalone file). */
// Every answer during a fault within 2 s: no call hangs on a dead Redis (the
// command budget is the default 250 ms). The measured maxima are printed and kept in
// RESULTS.md.
const BOUND_MS = 2_000;
/** The shutdown deadline given to Tollgate in the SIGTERM case, ms. */
const SHUTDOWN_MS = 3_000;
/** How long Redis is paused so that calls are in flight at SIGTERM, ms. */
const PAUSE_MS = 800;

const results: CaseResult[] = [];
let redis: FaultRedis;
let keys: FaultKeys;

beforeAll(async () => {
  redis = await spawnFaultRedis({ persist: true });
});

afterAll(async () => {
  try {
    await stopAll();
  } finally {
    await writeResults(results);
  }
});

describe.sequential("Tollgate lifecycle faults", () => {
  it("SIGTERM under load: not ready, in-flight calls complete, exit 0 within the deadline", async () => {
    // Slow commands are allowed here so that calls are really in flight at SIGTERM.
    const tg = await startFaultTollgate({
      REDIS_URL: redis.url,
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "3000",
      TOLLGATE_BREAKER_TIMEOUT_MS: "4000",
      TOLLGATE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
    });
    const c = clientsFor(tg.url);
    keys = await createFaultKeys(c);
    await warm(c, keys);
    const load = new Load(standardProbes(c, keys));
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 0 });
    load.start();
    let exit: { code: number | null; ms: number } = { code: null, ms: 0 };
    const readiness: number[] = [];
    let signalAt = 0;
    try {
      await sleep(300);
      // Every call from now on waits in Redis for up to PAUSE_MS.
      await admin.call("CLIENT", "PAUSE", String(PAUSE_MS), "ALL");
      await sleep(200);
      signalAt = performance.now();
      const stopped = tg.stop("SIGTERM");
      let done = false;
      void stopped.then(() => {
        done = true;
      });
      while (!done) {
        readiness.push(await tg.readyz());
        await sleep(20);
      }
      exit = await stopped;
    } finally {
      await load.stop();
      admin.disconnect();
    }
    const inFlight = load.samples.filter((s) => s.start < signalAt);
    const after = load.samples.filter((s) => s.start >= signalAt);
    const s = summarize(inFlight.filter((x) => x.end > signalAt));
    results.push({
      name: "SIGTERM under load",
      during: s,
      maxMs: summarize(load.samples).maxMs,
      recoveryMs: exit.ms,
      note: `${s.calls} calls in flight at SIGTERM all answered; readyz 503 while draining; exit ${exit.code} after ${exit.ms} ms (deadline ${SHUTDOWN_MS}); ${after.length} later calls refused`,
    });
    expect(exit.code).toBe(0);
    expect(exit.ms).toBeLessThan(SHUTDOWN_MS);
    // Readiness turns false while draining and never comes back (then the
    // admin port closes: 0). A probe that raced the signal may still see 200.
    const firstDown = readiness.indexOf(503);
    expect(firstDown).toBeGreaterThanOrEqual(0);
    expect(readiness.slice(firstDown)).not.toContain(200);
    // Calls in flight at SIGTERM finish with their real answers (Redis resumed).
    expect(s.calls).toBeGreaterThan(0);
    for (const x of inFlight) {
      expect(x.outcome, `${x.probe.name}: ${x.reason}`).toBe(
        x.probe.key === "valid" ? "ok" : "denied",
      );
      expect(x.local).toBe(false);
    }
    // Calls after SIGTERM are refused as failed calls, never allowed wrongly.
    expect(violations(after, SHUTDOWN_MS).filter((v) => !v.includes("answered in"))).toEqual([]);
    expect(tg.stderr()).toBe("");
  });

  it("Redis down at startup: starts, answers by fail mode, then follows Redis", async () => {
    const { port, dir } = redis;
    await redis.kill("SIGKILL");
    const tg = await startFaultTollgate({ REDIS_URL: redis.url, TOLLGATE_CACHE_TTL_MS: "500" });
    const c = clientsFor(tg.url);
    const load = new Load(standardProbes(c, keys));
    load.start();
    let recoveryMs = -1;
    let start = 0;
    let end = 0;
    try {
      start = performance.now();
      await sleep(1_500);
      expect(await tg.readyz()).toBe(200);
      redis = await spawnFaultRedis({ port, dir, persist: true });
      end = performance.now();
      recoveryMs = await waitRecovered(load, end);
    } finally {
      await load.stop();
    }
    const during = within(load.samples, start, end);
    results.push({
      name: "redis down at startup",
      during: summarize(during),
      maxMs: summarize(load.samples).maxMs,
      recoveryMs,
      note: "ready at once; open: every key denied locally (none seen yet); closed: UNAVAILABLE",
    });
    expect(violations(load.samples, BOUND_MS)).toEqual([]);
    expect(during.length).toBeGreaterThan(0);
    for (const s of during) {
      // No key was ever seen: fail open cannot allow any, fail closed fails the call.
      if (s.probe.endpoint === "open")
        expect([s.outcome, s.local, s.reason]).toEqual(["denied", true, "UNKNOWN_KEY"]);
      else expect(s.outcome).toBe("unavailable");
    }
    expect(recoveryMs).toBeGreaterThanOrEqual(0);
    expect(recoveryMs).toBeLessThan(8_000);
    expect(tg.child.exitCode).toBeNull();
    expect(tg.stderr()).toBe("");
    expect((await tg.stop()).code).toBe(0);
  });
});
