/**
 * Real Redis for tests, never a mock. In order of preference:
 *  1. a spawned `redis-server` on a free port with its own temp dir (so a test
 *     can kill, pause or flush it without touching anyone else);
 *  2. testcontainers, where a container runtime exists;
 *  3. otherwise the test fails with instructions.
 * `sharedRedisUrl()` honours REDIS_URL for tests that only need *a* Redis.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./free-port.js";

const HOW_TO_GET_REDIS =
  "no Redis for tests: install redis-server (apt-get install -y redis-server), or set REDIS_URL, or run a container runtime for testcontainers";

/** A Redis instance owned by one test file. */
export interface TestRedis {
  url: string;
  port: number;
  /** The spawned process, when it was spawned here (for SIGKILL / SIGSTOP). */
  process?: ChildProcess;
  /** Stops it and removes its files. */
  stop(): Promise<void>;
}

/** True if `redis-server` is on PATH. */
export function hasRedisServer(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Spawns `redis-server` with extra args on a free port and waits until it answers PING. */
export async function spawnRedis(extraArgs: string[] = [], port?: number): Promise<TestRedis> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "tollgate-redis-"));
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(p),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
      ...extraArgs,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // Both pipes are drained (an unread pipe fills up and stalls redis-server);
  // only the tail is kept, for the startup error message.
  let output = "";
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });
  const url = `redis://127.0.0.1:${p}`;
  await waitForPing(url, 5_000).catch((err: Error) => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    const why = spawnError ? `${spawnError.message}; ${err.message}` : err.message;
    throw new Error(`redis-server on ${p} did not start: ${why}\n${output.slice(-2000)}`);
  });
  return {
    url,
    port: p,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGKILL");
        await new Promise((r) => child.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Redis for one test file: REDIS_URL when set (tests keep apart by key
 * prefix), else a spawned redis-server, else testcontainers, else it fails
 * saying how to get Redis. Tests that kill, pause or flush Redis call
 * spawnRedis() for a private instance instead.
 */
export async function startTestRedis(): Promise<TestRedis> {
  const shared = process.env.REDIS_URL;
  if (shared) {
    await waitForPing(shared, 5_000);
    return { url: shared, port: Number(new URL(shared).port || 6379), stop: async () => {} };
  }
  if (hasRedisServer()) return spawnRedis();
  try {
    const { GenericContainer } = await import("testcontainers");
    const c = await new GenericContainer("redis:7-alpine").withExposedPorts(6379).start();
    const port = c.getMappedPort(6379);
    return { url: `redis://${c.getHost()}:${port}`, port, stop: async () => void (await c.stop()) };
  } catch (err) {
    throw new Error(`${HOW_TO_GET_REDIS} (testcontainers: ${(err as Error).message})`);
  }
}

/** Waits until `url` answers PING. */
export async function waitForPing(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const c = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on("error", () => {});
    try {
      await c.connect();
      if ((await c.ping()) === "PONG") {
        c.disconnect();
        return;
      }
    } catch (err) {
      last = err;
    }
    c.disconnect();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `no PING answer within ${timeoutMs} ms: ${(last as Error)?.message ?? "timeout"}`,
  );
}
