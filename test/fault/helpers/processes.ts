/**
 * Processes of the fault suite: redis-server (restartable on the same port and
 * directory), Redis Sentinels, and the built Tollgate. Everything binds
 * 127.0.0.1; every process is tracked so `stopAll()` can end it even when a
 * test fails half-way.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../helpers/free-port.js";
import { waitForPing } from "../../helpers/redis-server.js";
import { CLI } from "../../helpers/tollgate-process.js";

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

/** Kills every process this module started and removes their directories. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => killAndWait(c, "SIGKILL")));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** Sends `signal` (after SIGCONT, in case it was stopped) and waits for the exit. */
export function killAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGCONT");
    child.kill(signal);
  });
}

/** A temp directory removed by stopAll(). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

/** A redis-server started by the fault suite. */
export interface FaultRedis {
  port: number;
  url: string;
  /** Its data directory (kept across restarts). */
  dir: string;
  child: ChildProcess;
  /** Stdout so far. */
  output(): string;
  /** Sends the signal and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Options of spawnFaultRedis. */
export interface FaultRedisOptions {
  /** Default: a free port. Pass the old port to "restart" a server. */
  port?: number;
  /** Default: a new temp dir. Pass the old dir to restart with the same files. */
  dir?: string;
  /** Append-only file with fsync on every write: data survives SIGKILL. Default false. */
  persist?: boolean;
  /** Extra redis-server arguments. */
  args?: string[];
  /** How long to wait for PING, ms (default 5000). */
  timeoutMs?: number;
}

/** Spawns redis-server and waits until it answers PING. */
export async function spawnFaultRedis(o: FaultRedisOptions = {}): Promise<FaultRedis> {
  const port = o.port ?? (await freePort());
  const dir = o.dir ?? tempDir("tollgate-fault-redis-");
  const persistence = o.persist
    ? ["--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  const child = track(
    spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        ...persistence,
        "--dir",
        dir,
        ...(o.args ?? []),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    ),
  );
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const url = `redis://127.0.0.1:${port}`;
  try {
    await waitForPing(url, o.timeoutMs ?? 5_000);
  } catch (err) {
    await killAndWait(child, "SIGKILL");
    throw new Error(`redis-server on ${port} did not start: ${(err as Error).message}\n${out}`);
  }
  return {
    port,
    url,
    dir,
    child,
    output: () => out,
    kill: (signal = "SIGKILL") => killAndWait(child, signal),
  };
}

/** A Redis Sentinel process. */
export interface FaultSentinel {
  port: number;
  child: ChildProcess;
  kill(): Promise<void>;
}

/**
 * Starts a sentinel monitoring `mymaster` at 127.0.0.1:`masterPort` (quorum 2),
 * with short down-after and failover timeouts, from its own config file.
 */
export async function spawnSentinel(
  masterPort: number,
  o: { downAfterMs?: number; failoverTimeoutMs?: number } = {},
): Promise<FaultSentinel> {
  const port = await freePort();
  const dir = tempDir("tollgate-fault-sentinel-");
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds mymaster ${o.downAfterMs ?? 1000}`,
      `sentinel failover-timeout mymaster ${o.failoverTimeoutMs ?? 3000}`,
      "sentinel parallel-syncs mymaster 1",
      "",
    ].join("\n"),
  );
  const child = track(
    spawn("redis-server", [conf, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  try {
    await waitForPing(`redis://127.0.0.1:${port}`, 5_000);
  } catch (err) {
    await killAndWait(child, "SIGKILL");
    throw new Error(`sentinel on ${port} did not start: ${(err as Error).message}\n${out}`);
  }
  return { port, child, kill: () => killAndWait(child, "SIGKILL") };
}

/** A running Tollgate (the built server, `dist/cli/main.js serve`). */
export interface FaultTollgate {
  port: number;
  adminPort: number;
  /** Base URL of the main port (gRPC). */
  url: string;
  child: ChildProcess;
  /** Stdout + stderr so far. */
  output(): string;
  /** Stderr so far (a crash or an unhandled rejection prints here). */
  stderr(): string;
  /** Text of /metrics. */
  metrics(): Promise<string>;
  /** Status of /readyz (0 if the admin port does not answer). */
  readyz(): Promise<number>;
  /** Sends the signal; resolves to the exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** The fault suite's policy file. */
export const FAULT_POLICY = "test/fixtures/policies/fault-resilience.yaml";
/** Pepper shared by every Tollgate of the suite. */
export const FAULT_PEPPER = "fault-suite-pepper-0123456789abcdef";

/**
 * Starts the built Tollgate with `env` added; resolves once /readyz answers 200.
 * Logs at warn (no access log), so a healthy run prints almost nothing.
 */
export async function startFaultTollgate(
  env: Record<string, string>,
  timeoutMs = 15_000,
): Promise<FaultTollgate> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const child = track(
    spawn(process.execPath, [CLI, "serve"], {
      env: {
        PATH: process.env.PATH ?? "",
        TOLLGATE_ADDR: `127.0.0.1:${port}`,
        TOLLGATE_HTTP_ADDR: "",
        TOLLGATE_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
        TOLLGATE_LOG_LEVEL: "warn",
        TOLLGATE_ACCESS_LOG: "false",
        TOLLGATE_PEPPER: FAULT_PEPPER,
        TOLLGATE_POLICY_FILE: FAULT_POLICY,
        // The production defaults of the command budget (250 ms) and the
        // health ping (every 500 ms, 250 ms to answer) are kept: the faults
        // must be answered by the fail mode as shipped. Only the breaker's
        // reset is shorter, so that recovery is seen within the cases' time.
        TOLLGATE_BREAKER_RESET_MS: "500",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  let raw = "";
  let err = "";
  child.stdout?.on("data", (b: Buffer) => {
    raw += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    raw += b.toString();
    err += b.toString();
  });
  const admin = `http://127.0.0.1:${adminPort}`;
  const readyz = async () => {
    try {
      const r = await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      return r.status;
    } catch {
      return 0;
    }
  };
  const deadline = Date.now() + timeoutMs;
  while ((await readyz()) !== 200) {
    if (child.exitCode !== null) throw new Error(`tollgate exited with ${child.exitCode}:\n${raw}`);
    if (Date.now() > deadline) {
      await killAndWait(child, "SIGKILL");
      throw new Error(`tollgate was not ready in time:\n${raw}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    child,
    output: () => raw,
    stderr: () => err,
    metrics: async () => (await fetch(`${admin}/metrics`)).text(),
    readyz,
    stop(signal = "SIGTERM") {
      const t0 = Date.now();
      if (child.exitCode !== null) return Promise.resolve({ code: child.exitCode, ms: 0 });
      return new Promise((resolve) => {
        child.once("exit", (code) => resolve({ code, ms: Date.now() - t0 }));
        child.kill(signal);
      });
    },
  };
}
