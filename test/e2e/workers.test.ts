/**
 * `TOLLGATE_WORKERS=2`: the built server as a node:cluster primary with two
 * workers on one private Redis. Both workers answer on the same port; a limit
 * is exact across them and a revocation reaches both (shared Redis state and
 * invalidations); the primary's /metrics is their sum and /readyz waits for
 * both; a crashed worker is replaced; SIGTERM exits 0 promptly. On the
 * embedded store, and out of 1..64, it refuses to start.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { cli, pollUntil } from "../helpers/clients.js";
import { freePort } from "../helpers/free-port.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

/** Connections the tests spread their calls over (round-robin puts them on both workers). */
const CONNECTIONS = 8;

let redis: TestRedis;
let tg: TollgateProcess;
let conns: { tollgate: Client<typeof TollgateService>; keys: Client<typeof KeyService> }[];

const readyz = async () => {
  const r = await fetch(`http://127.0.0.1:${tg.adminPort}/readyz`);
  return { status: r.status, body: await r.text() };
};
const metrics = async () => (await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`)).text();
/** CheckRateLimit calls counted by the scrape (every result code). */
const checkCalls = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith('tollgate_rpc_duration_seconds_count{rpc="CheckRateLimit"'))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
/** Pids of the workers the primary reported serving, newest last. */
const workerPids = () =>
  tg.logs.filter((l) => l.msg === "worker serving").map((l) => Number(l.pid));
/** Pids holding an established connection on the main port (ss shows our own processes). */
const pidsWithConnections = (): Set<number> => {
  const out = execFileSync("ss", ["-tnpH", "state", "established", `( sport = :${tg.port} )`], {
    encoding: "utf8",
  });
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  redis = await startTestRedis();
  // Fixed ports, as deployed: a restarted worker must bind the primary's sockets again.
  const [main, http, admin] = [await freePort(), await freePort(), await freePort()];
  tg = await startTollgateProcess({
    TOLLGATE_ADDR: `127.0.0.1:${main}`,
    TOLLGATE_HTTP_ADDR: `127.0.0.1:${http}`,
    TOLLGATE_ADMIN_ADDR: `127.0.0.1:${admin}`,
    REDIS_URL: redis.url,
    TOLLGATE_WORKERS: "2",
    TOLLGATE_REDIS_PREFIX: "workers:",
    TOLLGATE_PEPPER: "workers-e2e-pepper-0123456789",
    TOLLGATE_POLICY_FILE: "test/fixtures/policies/rate-limit-e2e.yaml",
    // A minute: only the invalidation message can make a revocation seen in time.
    TOLLGATE_CACHE_TTL_MS: "60000",
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
  });
  // The first worker's "serving" line returns early; readiness waits for both.
  const r = await pollUntil(readyz, (x) => x.status === 200, 30_000, 50);
  expect(r.value.status).toBe(200);
  conns = Array.from({ length: CONNECTIONS }, () => {
    const t = createGrpcTransport({ baseUrl: tg.url });
    return { tollgate: createClient(TollgateService, t), keys: createClient(KeyService, t) };
  });
}, 60_000);

afterAll(async () => {
  await tg?.stop("SIGKILL");
  await redis?.stop();
});

const check = (i: number, subject: string, path: string) =>
  (conns[i % CONNECTIONS] as (typeof conns)[number]).tollgate.checkRateLimit({
    subject,
    path,
    method: "GET",
  });

describe("TOLLGATE_WORKERS=2 on Redis", () => {
  it("runs two workers, both answering on the one main port; /metrics is their sum", async () => {
    const pids = workerPids();
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(tg.child.pid);
    const before = checkCalls(await metrics());
    const calls = 80;
    const s = `s-${randomUUID()}`;
    await Promise.all(Array.from({ length: calls }, (_, n) => check(n, s, "/v1/quota")));
    // Round-robin handed the connections to both workers.
    const holders = pidsWithConnections();
    for (const pid of pids) expect(holders).toContain(pid);
    expect(holders).not.toContain(tg.child.pid);
    // One scrape of the primary: every worker's calls, summed.
    expect(checkCalls(await metrics()) - before).toBe(calls);
    expect(await readyz()).toEqual({ status: 200, body: "ok\nworkers: 2 of 2 ready\n" });
  });

  it("admits exactly the burst of 100 when 400 callers over both workers decide at once", async () => {
    const s = `s-${randomUUID()}`;
    const all = await Promise.all(Array.from({ length: 400 }, (_, n) => check(n, s, "/v1/hot")));
    expect(all.filter((r) => r.allowed)).toHaveLength(100);
    expect(all.filter((r) => !r.allowed).every((r) => r.reason === Reason.RATE_LIMITED)).toBe(true);
  });

  it("a key revoked through one worker is refused by every worker at once (invalidations)", async () => {
    const { key } = await (conns[0] as (typeof conns)[number]).keys.createKey({ owner: "acme" });
    const id = key?.id ?? "";
    // Cached as active on both workers (the cache TTL is a minute).
    const first = await Promise.all(conns.map((c) => c.tollgate.checkRateLimit({ keyId: id })));
    expect(first.every((r) => r.allowed)).toBe(true);
    await (conns[1] as (typeof conns)[number]).keys.revokeKey({ id });
    const { value, ms } = await pollUntil(
      () => Promise.all(conns.map((c) => c.tollgate.checkRateLimit({ keyId: id }))),
      (rs) => rs.every((r) => !r.allowed),
      2_000,
    );
    expect(value.map((r) => r.reason)).toEqual(conns.map(() => Reason.REVOKED_KEY));
    console.log(`revocation seen by every worker after ${ms} ms`);
  });

  it("SIGHUP to the primary reloads the policy in every worker", async () => {
    const reloads = async () =>
      Number(
        /^tollgate_policy_reloads_total\{result="success"\} (\d+)/m.exec(await metrics())?.[1],
      );
    const before = await reloads();
    process.kill(tg.child.pid as number, "SIGHUP");
    const { value } = await pollUntil(reloads, (n) => n === before + 2, 10_000, 50);
    expect(value).toBe(before + 2);
  });

  it("replaces a worker that crashes, and is ready again once it serves", async () => {
    const [victim] = workerPids();
    process.kill(victim as number, "SIGKILL");
    const replaced = await pollUntil(
      async () => workerPids().length,
      (n) => n === 3,
      20_000,
      50,
    );
    expect(replaced.value).toBe(3);
    expect(tg.logs.some((l) => l.msg === "worker exited: restarting")).toBe(true);
    const r = await pollUntil(readyz, (x) => x.status === 200, 10_000, 50);
    expect(r.value.status).toBe(200);
    const s = `s-${randomUUID()}`;
    const after = await Promise.all(Array.from({ length: 16 }, (_, n) => check(n, s, "/v1/quota")));
    expect(after.every((x) => x.allowed)).toBe(true);
  }, 40_000);

  it("SIGTERM: every worker stops and the primary exits 0 promptly", async () => {
    const pids = workerPids().filter(alive);
    expect(pids).toHaveLength(2);
    const start = Date.now();
    const code = await tg.stop("SIGTERM", 15_000);
    expect(code).toBe(0);
    expect(Date.now() - start).toBeLessThan(5_000);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(tg.logs.filter((l) => l.msg === "stopped").length).toBeGreaterThanOrEqual(3);
  }, 20_000);
});

describe("TOLLGATE_WORKERS refusals", () => {
  const ports = {
    TOLLGATE_ADDR: "127.0.0.1:0",
    TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
    TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
  };

  it("refuses 2 workers on the embedded store (exit 2): state would split; set REDIS_URL", async () => {
    for (const [args, env] of [
      [["serve"], { TOLLGATE_WORKERS: "2" }],
      [["serve", "--workers", "2"], {}],
    ] as const) {
      const r = await cli([...args], { ...ports, ...env });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("TOLLGATE_WORKERS=2");
      expect(r.stderr).toContain("state would split across processes");
      expect(r.stderr).toContain("REDIS_URL");
    }
  });

  it.each(["0", "65", "two"])("refuses TOLLGATE_WORKERS=%s, naming the setting", async (n) => {
    const r = await cli(["serve"], { ...ports, TOLLGATE_WORKERS: n });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/TOLLGATE_WORKERS: must be/);
  });

  it("a worker refusing its configuration stops every worker: exit 2, no restart loop", async () => {
    // Checked by each worker, not the primary: Redis without TOLLGATE_PEPPER.
    const r = await cli(
      ["serve", "--workers", "2"],
      { ...ports, REDIS_URL: redis.url },
      "",
      20_000,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("TOLLGATE_PEPPER");
    expect(r.stdout).toContain("worker refused its configuration: stopping every worker");
    expect(r.stdout).not.toContain("worker exited: restarting");
  });

  it("refuses a taken port before forking (exit 2), naming its setting", async () => {
    const squatter = createServer();
    const port = await new Promise<number>((r) =>
      squatter.listen(0, "127.0.0.1", () => r((squatter.address() as { port: number }).port)),
    );
    try {
      const r = await cli(["serve", "--workers", "2"], {
        ...ports,
        TOLLGATE_ADDR: `127.0.0.1:${port}`,
        REDIS_URL: redis.url,
        TOLLGATE_PEPPER: "workers-e2e-pepper-0123456789",
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`TOLLGATE_ADDR (127.0.0.1:${port}): the port is taken`);
      expect(r.stdout).not.toContain("starting workers");
    } finally {
      squatter.close();
    }
  });

  it("--workers overrides TOLLGATE_WORKERS", async () => {
    const r = await cli(["serve", "--workers", "65"], { ...ports, TOLLGATE_WORKERS: "1" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("TOLLGATE_WORKERS: must be at most 64");
  });
});
