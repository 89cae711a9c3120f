/**
 * Runs the built server (`dist/cli/main.js serve`) as a real process on free
 * loopback ports, the way a user runs it. Collects its JSON log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The built CLI entry point. */
export const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

/** A running Tollgate process. */
export interface TollgateProcess {
  port: number;
  httpPort: number;
  adminPort: number;
  /** Base URL of the main port. */
  url: string;
  /** Base URL of the Connect HTTP port. */
  httpUrl: string;
  child: ChildProcess;
  /** Every stdout line so far, parsed when it is JSON. */
  logs: Record<string, unknown>[];
  /** Raw stdout + stderr. */
  output(): string;
  /**
   * Sends `signal` (default SIGTERM); resolves to the exit code (null if killed
   * by a signal). If the process is still running after `timeoutMs` (default
   * 20 s) it is SIGKILLed, so a test never hangs on a stuck server.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Processes started by this test file and not yet exited. */
const running = new Set<ChildProcess>();
// Safety net: a test file that crashes must not leave servers behind.
process.once("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

/** How to run the process, besides its settings. */
export interface TollgateProcessOptions {
  /** Node binary (default: the one running the tests). */
  node?: string;
  /**
   * How long to wait for the "tollgate serving" line, ms (default 30 s: it
   * takes about a second, but CI runs this beside the memory floods, which
   * hold both cores; a harness wait, not a start-up bound of the product).
   */
  timeoutMs?: number;
  /** Extra Node arguments before the script, e.g. `--max-old-space-size=200` (a memory cap). */
  nodeArgs?: string[];
  /** Soft and hard limit of open files (RLIMIT_NOFILE), set with `prlimit`; default: inherited. */
  fdLimit?: number;
}

/** Starts Tollgate with `env` added to the settings; resolves once it is serving. */
export async function startTollgateProcess(
  env: Record<string, string> = {},
  options: TollgateProcessOptions = {},
): Promise<TollgateProcess> {
  const node = options.node ?? process.execPath;
  const args = [...(options.nodeArgs ?? []), CLI, "serve"];
  // prlimit execs the command, so the child's pid is Tollgate's own (for /proc/<pid>).
  const [file, argv] =
    options.fdLimit === undefined
      ? [node, args]
      : ["prlimit", [`--nofile=${options.fdLimit}:${options.fdLimit}`, "--", node, ...args]];
  // Port 0 everywhere: the OS picks free ports at bind time and the server
  // reports them in its "serving" line — no pick-then-bind race between
  // parallel test files.
  const child = spawn(file, argv, {
    env: {
      PATH: process.env.PATH ?? "",
      TOLLGATE_ADDR: "127.0.0.1:0",
      TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
      TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
      TOLLGATE_LOG_LEVEL: "debug",
      // Tests assert behaviour, not speed: CI runs many servers at once on
      // 2 cores, so the command budget and health ping timeout are widened
      // from the shipped 250 ms / 250 ms. Tests about timeouts, breakers and
      // the ping (store-deadlines, the fault suite) use the shipped values.
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
      TOLLGATE_BREAKER_TIMEOUT_MS: "4000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const logs: Record<string, unknown>[] = [];
  let raw = "";
  let pending = "";
  child.stdout?.on("data", (b: Buffer) => {
    raw += b.toString();
    pending += b.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        logs.push({ raw: l });
      }
    }
  });
  child.stderr?.on("data", (b: Buffer) => {
    raw += b.toString();
  });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!logs.some((l) => l.msg === "tollgate serving")) {
    if (child.exitCode !== null) throw new Error(`tollgate exited with ${child.exitCode}:\n${raw}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`tollgate did not start in time:\n${raw}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const serving = logs.find((l) => l.msg === "tollgate serving") as {
    port: number;
    httpPort?: number;
    adminPort: number;
  };
  const { port, adminPort } = serving;
  const httpPort = serving.httpPort ?? 0;
  return {
    port,
    httpPort,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    child,
    logs,
    output: () => raw,
    stop(signal = "SIGTERM", timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.resolve(child.exitCode);
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        // "close", not "exit": it fires once stdout is drained, so every log
        // line the process wrote is in `logs` when stop() resolves.
        child.once("close", (code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.kill(signal);
      });
    },
  };
}
