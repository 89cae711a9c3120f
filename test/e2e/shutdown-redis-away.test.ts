/**
 * SIGTERM whatever Redis does: the built server, started against a Redis that
 * is not there (a closed port), frozen (SIGSTOP, with events buffered and a
 * RecordEvent in flight) or half-open (a TCP server that accepts and never
 * answers), exits 0 within TOLLGATE_SHUTDOWN_TIMEOUT_MS plus a small margin,
 * and says how many buffered events it could not write. A signal that arrives
 * while the server is still starting is honoured the same way.
 */

import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import { clientsOver, pollUntil } from "../helpers/clients.js";
import { freePort } from "../helpers/free-port.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

/** The shutdown deadline given to Tollgate here, ms (short, so the tests are). */
const SHUTDOWN_MS = 1_500;
/** What "in time" allows beyond the deadline: process exit, a loaded 2-core machine. */
const MARGIN_MS = 3_000;
/** The harness SIGKILLs a server still running after this; a hang shows as exit `null`. */
const KILL_AFTER_MS = 12_000;
const PEPPER = "shutdown-suite-pepper-0123456789";

const started: TollgateProcess[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
});
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function start(redisUrl: string, env: Record<string, string> = {}) {
  const p = await startTollgateProcess({
    REDIS_URL: redisUrl,
    TOLLGATE_PEPPER: PEPPER,
    TOLLGATE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
    ...env,
  });
  started.push(p);
  return p;
}

/** SIGTERM; resolves to the exit code and how long the exit took, ms. */
async function sigterm(p: TollgateProcess): Promise<{ code: number | null; ms: number }> {
  const began = performance.now();
  const code = await p.stop("SIGTERM", KILL_AFTER_MS);
  return { code, ms: Math.round(performance.now() - began) };
}

/** A TCP server that accepts connections and never answers: a half-open Redis. */
async function blackHole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("data", () => {}); // swallow every byte
    s.on("error", () => {});
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe("SIGTERM with Redis away", () => {
  it("exits 0 within the shutdown timeout when REDIS_URL points at a closed port", async () => {
    const closed = await freePort();
    const p = await start(`redis://127.0.0.1:${closed}`);
    const exit = await sigterm(p);
    expect(exit.code, p.output()).toBe(0);
    expect(exit.ms).toBeLessThan(SHUTDOWN_MS + MARGIN_MS);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("exits 0 within the shutdown timeout when Redis accepts connections and never answers (half-open)", async () => {
    const hole = await blackHole();
    cleanups.push(hole.close);
    const p = await start(hole.url);
    const exit = await sigterm(p);
    expect(exit.code, p.output()).toBe(0);
    expect(exit.ms).toBeLessThan(SHUTDOWN_MS + MARGIN_MS);
    expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("exits 0 in time while Redis is frozen, counting the buffered events it could not write as lost", async () => {
    const redis: TestRedis = await spawnRedis();
    cleanups.push(() => redis.stop());
    // A long flush interval keeps Tollgate's own events in the buffer until shutdown.
    const p = await start(redis.url, { TOLLGATE_EVENT_FLUSH_MS: "10000" });
    const { tollgate } = clientsOver(
      createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" }),
    );
    // Acknowledged RecordEvent calls are durable before the freeze.
    const ok = await tollgate.recordEvent({
      events: [1, 2, 3].map((i) => ({
        id: `before-freeze-${i}`,
        customType: "login.failed",
        subject: "s",
        severity: Severity.LOW,
      })),
    });
    expect(ok.acceptedIds).toHaveLength(3);

    redis.process?.kill("SIGSTOP");
    try {
      // Malformed keys are denied without a store call; each denial is an
      // auth_failure event waiting in the buffer.
      const BUFFERED = 12;
      for (let i = 0; i < BUFFERED; i++) {
        const r = await tollgate.authorize({ apiKey: `tg_live_malformed${i}` });
        expect(r.allowed).toBe(false);
      }
      // A RecordEvent now waits on the frozen Redis: in flight at SIGTERM.
      const inFlight = tollgate
        .recordEvent({
          events: [
            {
              id: "during-freeze",
              customType: "login.failed",
              subject: "s",
              severity: Severity.LOW,
            },
          ],
        })
        .then(
          () => "acknowledged",
          () => "failed",
        );
      // SIGTERM once the server holds the call (its in-flight gauge says so).
      const held = await pollUntil(
        async () => {
          const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
          return Number(/^tollgate_transport_inflight_requests (\d+)/m.exec(text)?.[1] ?? 0);
        },
        (n) => n >= 1,
        5_000,
      );
      expect(held.value).toBeGreaterThanOrEqual(1);
      const exit = await sigterm(p);
      expect(exit.code, p.output()).toBe(0);
      expect(exit.ms).toBeLessThan(SHUTDOWN_MS + MARGIN_MS);
      expect(p.logs.some((l) => l.msg === "stopped")).toBe(true);
      // The caller of the unfinished RecordEvent was not told it was stored.
      expect(await inFlight).toBe("failed");
      const lost = p.logs.find((l) => l.msg === "events lost at shutdown");
      expect(lost?.level).toBe("warn");
      expect(Number(lost?.events)).toBeGreaterThanOrEqual(BUFFERED);
    } finally {
      redis.process?.kill("SIGCONT");
    }
  });

  it("honours a SIGTERM that arrives while it is still starting (Redis half-open), exiting 0 in time", async () => {
    const hole = await blackHole();
    cleanups.push(hole.close);
    // Startup waits for Redis to answer its first command, up to the connect
    // timeout (here long, and so is the command timeout): the signal lands in that wait.
    const child = spawn(process.execPath, [CLI, "serve"], {
      env: {
        PATH: process.env.PATH ?? "",
        REDIS_URL: hole.url,
        TOLLGATE_PEPPER: PEPPER,
        TOLLGATE_ADDR: "127.0.0.1:0",
        TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
        TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
        TOLLGATE_REDIS_CONNECT_TIMEOUT_MS: "20000",
        TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "20000",
        TOLLGATE_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
      child.once("close", (code, signal) => r({ code, signal })),
    );
    const killer = setTimeout(() => child.kill("SIGKILL"), KILL_AFTER_MS);
    try {
      await pollUntil(
        async () => out.includes('"store: redis"'),
        (seen) => seen,
        10_000,
      );
      const began = performance.now();
      child.kill("SIGTERM");
      const exit = await exited;
      const ms = performance.now() - began;
      expect({ ...exit, out }).toMatchObject({ code: 0, signal: null });
      expect(ms).toBeLessThan(SHUTDOWN_MS + MARGIN_MS);
      expect(out).not.toContain("tollgate serving");
    } finally {
      clearTimeout(killer);
      child.kill("SIGKILL");
    }
  });
});
