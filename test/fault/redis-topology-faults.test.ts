/**
 * Fault suite, Redis topologies: a Sentinel failover (master, replica and three
 * sentinels, all spawned) that Tollgate follows to the new master, and a Redis
 * Cluster master killed and restarted with its nodes.conf — errors only for the
 * slots it serves, while it is down.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import {
  authorizeProbe,
  type Clients,
  clientsFor,
  createFaultKeys,
  retry,
  standardProbes,
  warm,
} from "./helpers/clients.js";
import {
  Load,
  type Probe,
  sleep,
  summarize,
  violations,
  waitRecovered,
  within,
} from "./helpers/load.js";
import {
  spawnFaultRedis,
  spawnSentinel,
  startFaultTollgate,
  stopAll,
} from "./helpers/processes.js";
import { type CaseResult, writeResults } from "./helpers/report.js";

const run = promisify(execFile);
/** Longest acceptable answer, ms (see the standalone file). */
// Every answer during a fault within 2 s: no call hangs on a dead Redis (the
// command budget is the default 250 ms). The measured maxima are printed and kept in
// RESULTS.md.
const BOUND_MS = 2_000;

/** Callers of the Cluster case (1 until the autopipelining bug below is fixed). */
const CLUSTER_WORKERS = 8;

const results: CaseResult[] = [];
let cluster: TestCluster | undefined;

afterAll(async () => {
  try {
    await stopAll();
    await cluster?.stop();
  } finally {
    await writeResults(results);
  }
});

/** Polls `check` every 50 ms until true; returns the time it took, ms. */
async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await check().catch(() => false)) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const cli = async (port: number, ...args: string[]) =>
  (await run("redis-cli", ["-p", String(port), ...args])).stdout.trim();

describe.sequential("Redis topology faults", () => {
  it("Sentinel failover: Tollgate follows the new master", async () => {
    const master = await spawnFaultRedis();
    const replica = await spawnFaultRedis({
      args: ["--replicaof", "127.0.0.1", String(master.port)],
    });
    await until(
      async () =>
        (await cli(replica.port, "INFO", "replication")).includes("master_link_status:up"),
      // Set-up, not a behaviour bound: a loaded CI machine can take a while.
      20_000,
      "the replica to sync",
    );
    const sentinels = [];
    for (let i = 0; i < 3; i++) sentinels.push(await spawnSentinel(master.port));
    const s0 = sentinels[0]?.port ?? 0;
    // Sentinels find each other and the replica through hello messages.
    await until(
      async () =>
        (await cli(s0, "SENTINEL", "SENTINELS", "mymaster")).split("\n").filter((l) => l === "name")
          .length === 2 &&
        (await cli(s0, "SENTINEL", "REPLICAS", "mymaster")).includes(String(replica.port)),
      10_000,
      "sentinels to discover each other",
    );
    const tg = await startFaultTollgate({
      TOLLGATE_REDIS_MODE: "sentinel",
      TOLLGATE_REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
      TOLLGATE_REDIS_SENTINEL_MASTER: "mymaster",
      TOLLGATE_CACHE_TTL_MS: "500",
    });
    const c = clientsFor(tg.url);
    const keys = await createFaultKeys(c);
    await warm(c, keys);
    // Keys must be on the replica before the master dies.
    await cli(master.port, "WAIT", "1", "1000");
    const load = new Load(standardProbes(c, keys));
    load.start();
    let start = 0;
    let promoted = 0;
    let writableMs = -1;
    let recoveryMs = -1;
    try {
      await sleep(300);
      await master.kill("SIGKILL");
      start = performance.now();
      await until(
        async () =>
          (await cli(s0, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")).endsWith(
            String(replica.port),
          ),
        15_000,
        "the sentinels to promote the replica",
      );
      promoted = performance.now();
      // Tollgate follows: a write through it succeeds again.
      await retry(() => c.keys.createKey({ owner: "after-failover" }), 15_000);
      writableMs = performance.now() - promoted;
      recoveryMs = await waitRecovered(load, promoted);
    } finally {
      await load.stop();
    }
    const during = within(load.samples, start, promoted);
    results.push({
      name: "sentinel failover",
      during: summarize(during),
      maxMs: summarize(load.samples).maxMs,
      recoveryMs,
      note: `promotion ${(promoted - start).toFixed(0)} ms after the kill; CreateKey works ${writableMs.toFixed(0)} ms after it`,
    });
    expect(violations(load.samples, BOUND_MS)).toEqual([]);
    for (const s of during.filter((x) => x.probe.name === "valid/open"))
      expect([s.outcome, s.local]).toEqual(["ok", true]);
    for (const s of during.filter((x) => x.probe.name === "valid/closed"))
      expect(s.outcome).toBe("unavailable");
    expect(recoveryMs).toBeGreaterThanOrEqual(0);
    expect(recoveryMs).toBeLessThan(8_000);
    // The data came along: the revoked key is still revoked on the new master.
    const r = await c.tollgate.authorize({ apiKey: keys.revoked, endpoint: "closed" });
    expect(Reason[r.reason]).toBe("REVOKED_KEY");
    expect(tg.stderr()).toBe("");
    expect((await tg.stop()).code).toBe(0);
  });

  it("Cluster master killed: only its slots fail, and only while it is down", async () => {
    cluster = await startTestCluster();
    const nodes = cluster.nodes;
    // Without this a cluster stops serving every slot once one is uncovered.
    for (const n of nodes)
      await cli(n.port, "CONFIG", "SET", "cluster-require-full-coverage", "no");
    const victim = nodes[2];
    if (!victim) throw new Error("no third node");
    const dir = await cli(victim.port, "CONFIG", "GET", "dir");
    const victimDir = dir.split("\n")[1] ?? "";
    const victimId = await cli(victim.port, "CLUSTER", "MYID");
    // Subjects of the `subject` endpoint, sorted by whether the victim serves their slot.
    const slotsOf = await clusterSlots(victim.port, victimId);
    const dead: string[] = [];
    const alive: string[] = [];
    while (dead.length < 2 || alive.length < 4) {
      const s = `sub-${randomUUID().slice(0, 8)}`;
      const slot = Number(await cli(victim.port, "CLUSTER", "KEYSLOT", `tg:rl:{s:${s}}:x`));
      const list = slotsOf(slot) ? dead : alive;
      if ((list === dead && dead.length < 2) || (list === alive && alive.length < 4)) list.push(s);
    }
    const tg = await startFaultTollgate({
      TOLLGATE_REDIS_MODE: "cluster",
      REDIS_URL: `redis://127.0.0.1:${nodes[0]?.port}`,
      TOLLGATE_REDIS_CLUSTER_NODES: nodes.map((n) => `127.0.0.1:${n.port}`).join(","),
    });
    const c = clientsFor(tg.url);
    const probes: Probe[] = [
      ...dead.map((s) => subjectProbe(c, s, "dead")),
      ...alive.map((s) => subjectProbe(c, s, "alive")),
      authorizeProbe(c, "unknown", "open", () => generateSecret("live")),
    ];
    for (const p of probes) await retry(() => p.call(2_000));
    // One caller: with concurrent callers every script call fails on Cluster
    // (see the test below); raise to 8 once that is fixed.
    const load = new Load(probes, CLUSTER_WORKERS);
    load.start();
    let start = 0;
    let end = 0;
    let recoveryMs = -1;
    try {
      await sleep(300);
      await victim.process?.kill("SIGKILL");
      await until(
        async () => victim.process?.exitCode !== null || victim.process?.signalCode !== null,
        2_000,
        "exit",
      );
      start = performance.now();
      // Longer than cluster-node-timeout (2 s): the others mark it failed.
      await sleep(2_500);
      await spawnFaultRedis({
        port: victim.port,
        dir: victimDir,
        args: [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `nodes-${victim.port}.conf`,
          "--cluster-node-timeout",
          "2000",
          "--cluster-require-full-coverage",
          "no",
        ],
      });
      end = performance.now();
      recoveryMs = await waitRecovered(load, end);
    } finally {
      await load.stop();
    }
    const during = within(load.samples, start, end);
    results.push({
      name: "cluster master killed",
      during: summarize(during),
      maxMs: summarize(load.samples).maxMs,
      recoveryMs,
      note: `subjects on the dead master: UNAVAILABLE (closed); on the others: allowed throughout (${CLUSTER_WORKERS} caller)`,
    });
    expect(violations(load.samples, BOUND_MS)).toEqual([]);
    const on = (which: string) => during.filter((s) => s.probe.name.endsWith(which));
    expect(on("/dead").length).toBeGreaterThan(0);
    for (const s of on("/dead")) expect(s.outcome).toBe("unavailable");
    // Other slots keep working, from Redis.
    expect(on("/alive").length).toBeGreaterThan(0);
    const storeErrors = (await tg.metrics())
      .split("\n")
      .filter((l) => /^tollgate_(redis_errors_total|breaker_transitions_total)/.test(l))
      .join("; ");
    for (const s of on("/alive"))
      expect([s.outcome, s.local, s.reason], storeErrors).toEqual(["ok", false, "OK"]);
    expect(recoveryMs).toBeGreaterThanOrEqual(0);
    expect(recoveryMs).toBeLessThan(8_000);
    expect(tg.stderr()).toBe("");
    expect((await tg.stop()).code).toBe(0);
  });

  // BUG (src/store/redis-client.ts): ioredis Cluster with enableAutoPipelining
  // batches concurrent EVALSHA of defineCommand scripts whose keys are in
  // different slots into one pipeline, which ioredis rejects: "All keys in the
  // pipeline should belong to the same slots allocation group". Every
  // concurrent CheckRateLimit on Cluster then fails (UNAVAILABLE) with Redis
  // healthy. Fix: no auto-pipelining for the Cluster client, or list the
  // script commands in autoPipeliningIgnoredCommands.
  it("Cluster, no fault: 8 concurrent callers on subjects in different slots are all answered", async () => {
    if (!cluster) throw new Error("the cluster case did not start a cluster");
    const tg = await startFaultTollgate({
      TOLLGATE_REDIS_MODE: "cluster",
      REDIS_URL: `redis://127.0.0.1:${cluster.nodes[0]?.port}`,
      TOLLGATE_REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(","),
    });
    const c = clientsFor(tg.url);
    const probes = Array.from({ length: 8 }, (_, i) =>
      subjectProbe(c, `spread-${i}-${randomUUID()}`, "x"),
    );
    for (const p of probes) await retry(() => p.call(2_000));
    const load = new Load(probes, 8);
    load.start();
    await sleep(1_000);
    await load.stop();
    const s = summarize(load.samples);
    expect(s.calls).toBeGreaterThan(50);
    expect({ unavailable: s.unavailable, errors: s.errors }).toEqual({ unavailable: 0, errors: 0 });
    expect((await tg.stop()).code).toBe(0);
  });
});

/** CheckRateLimit for one subject on the fail-closed `subject` endpoint. */
function subjectProbe(c: Clients, subject: string, label: string): Probe {
  return {
    name: `${subject}/${label}`,
    key: "none",
    endpoint: "subject",
    async call(timeoutMs) {
      const r = await c.tollgate.checkRateLimit({ subject, endpoint: "subject" }, { timeoutMs });
      return { allowed: r.allowed, decidedLocally: r.decidedLocally, reason: Reason[r.reason] };
    },
  };
}

/** A predicate: does the node `id` serve this slot? */
async function clusterSlots(port: number, id: string): Promise<(slot: number) => boolean> {
  const redis = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1 });
  try {
    const ranges = (await redis.call("CLUSTER", "SLOTS")) as [
      number,
      number,
      [string, number, string],
    ][];
    const mine = ranges.filter((r) => r[2][2] === id).map((r) => [r[0], r[1]] as const);
    return (slot) => mine.some(([a, b]) => slot >= a && slot <= b);
  } finally {
    redis.disconnect();
  }
}
