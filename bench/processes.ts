/**
 * The processes of a bench run — a private redis-server, Tollgate, the
 * baseline servers — all on 127.0.0.1 and free ports, all stopped at the end
 * (and SIGKILLed if the runner itself exits early). Also reads a process's CPU
 * time and memory from /proc.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** A process started by the bench. */
export interface Started {
  pid: number;
  child: ChildProcess;
  /** Everything it wrote so far (stdout + stderr), for error messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after 3 s; resolves once it exited. */
  stop(): Promise<void>;
}

/**
 * Spawns `cmd args` as a tracked child. With `logFile`, its stdout and stderr
 * go straight to that file (as a container runtime's log would), so a
 * chatty server's log costs the bench process nothing; else they are kept in
 * memory (the last 20 000 characters) for error messages.
 */
export function start(
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  logFile?: string,
): Started {
  const fd = logFile === undefined ? undefined : openSync(logFile, "a");
  const child = spawn(cmd, args, {
    stdio: fd === undefined ? ["ignore", "pipe", "pipe"] : ["ignore", fd, fd],
    env: env ?? process.env,
  });
  if (fd !== undefined) closeSync(fd);
  children.add(child);
  let out = "";
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("exit", () => children.delete(child));
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  return {
    pid: child.pid,
    child,
    output: () => (logFile === undefined ? out : tail(logFile, 20_000)),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill("SIGKILL"), 3_000);
        child.once("exit", () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `probe` every 50 ms until it resolves true, or throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  proc?: Started,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.child.exitCode !== null)
      throw new Error(`${what} exited with ${proc.child.exitCode}:\n${proc.output()}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms\n${proc?.output() ?? ""}`);
}

/** A private redis-server. */
export interface BenchRedis extends Started {
  url: string;
  port: number;
  /** A client for INFO and setup. */
  client: Redis;
  /** Commands executed so far (sum of INFO commandstats calls, INFO itself excluded). */
  commandCalls(): Promise<number>;
}

/** Starts `redis-server` on a free port with no persistence and its own temp dir. */
export async function startRedis(): Promise<BenchRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tollgate-bench-redis-"));
  const p = start("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
  ]);
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on("error", () => {});
  await waitFor(
    "redis-server",
    async () => {
      if (client.status === "wait") await client.connect();
      return (await client.ping()) === "PONG";
    },
    5_000,
    p,
  );
  return {
    ...p,
    url,
    port,
    client,
    async commandCalls() {
      const info = await client.info("commandstats");
      let n = 0;
      for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (m[1] !== "info") n += Number(m[2]);
      }
      return n;
    },
    async stop() {
      client.disconnect();
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A bench server from `dist/bench/bench/<script>.js` that announces its port. */
export async function startBenchServer(
  script: string,
  args: string[],
): Promise<Started & { port: number }> {
  const file = new URL(`./${script}.js`, import.meta.url).pathname;
  const p = start(process.execPath, [file, "--port", "0", ...args]);
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(
      () => reject(new Error(`${script} did not start:\n${p.output()}`)),
      10_000,
    );
    p.child.stdout?.on("data", (b: Buffer) => {
      buf += b.toString();
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    p.child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}:\n${p.output()}`));
    });
  });
  return { ...p, port };
}

/** A running Tollgate. */
export interface BenchTollgate extends Started {
  /** Main port: gRPC (grpc-js) over HTTP/2. */
  port: number;
  /** HTTP port: connect-node over h2c. */
  httpPort: number;
  adminPort: number;
  metrics(): Promise<string>;
}

/** The built CLI. */
export const CLI = new URL("../../cli/main.js", import.meta.url).pathname;

/**
 * Starts `node [nodeArgs] dist/cli/main.js serve` on free loopback ports (e.g.
 * `--cpu-prof` for profiling); resolves once /readyz says ok. Settings are
 * Tollgate's defaults (the access log included) except what `env` sets; its
 * log goes to `logFile` if given (the bench's runs: as a container runtime
 * would take it), else to a pipe this process keeps the tail of.
 */
export async function startTollgate(
  env: Record<string, string>,
  nodeArgs: string[] = [],
  cli: string = CLI,
  logFile?: string,
): Promise<BenchTollgate> {
  const [port, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const p = start(
    process.execPath,
    [...nodeArgs, cli, "serve"],
    {
      PATH: process.env.PATH ?? "",
      TOLLGATE_ADDR: `127.0.0.1:${port}`,
      TOLLGATE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      TOLLGATE_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      ...env,
    },
    logFile,
  );
  const admin = `http://127.0.0.1:${adminPort}`;
  await waitFor("tollgate", async () => (await fetch(`${admin}/readyz`)).ok, 20_000, p);
  return {
    ...p,
    port,
    httpPort,
    adminPort,
    metrics: async () => (await fetch(`${admin}/metrics`)).text(),
  };
}

/** CPU time and memory of a process, from /proc. */
export interface ProcStats {
  /** utime + stime, seconds. */
  cpuSeconds: number;
  /** Peak resident set (VmHWM), bytes. */
  peakRss: number;
  /** Current resident set (VmRSS), bytes. */
  rss: number;
}

const TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Reads /proc/<pid>/stat and /proc/<pid>/status. */
export function procStats(pid: number): ProcStats {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces), 1-based from field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS; // utime (14), stime (15)
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { cpuSeconds: cpu, peakRss: kb("VmHWM") * 1024, rss: kb("VmRSS") * 1024 };
}

/** The last `n` characters of a file ("" if it cannot be read). */
function tail(file: string, n: number): string {
  try {
    const fd = openSync(file, "r");
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(n, size));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return "";
  }
}
