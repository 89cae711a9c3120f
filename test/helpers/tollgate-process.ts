/**
 * Runs the built server (`dist/cli/main.js serve`) as a real process on free
 * loopback ports, the way a user runs it. Collects its JSON log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.js";

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
  /** SIGTERM; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts Tollgate with `env` added to the settings; resolves once it is serving. */
export async function startTollgateProcess(
  env: Record<string, string> = {},
  options: { node?: string; timeoutMs?: number } = {},
): Promise<TollgateProcess> {
  const [port, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(options.node ?? process.execPath, [CLI, "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      TOLLGATE_ADDR: `127.0.0.1:${port}`,
      TOLLGATE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
      TOLLGATE_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      TOLLGATE_LOG_LEVEL: "debug",
      // Tests assert behaviour, not speed: on a loaded 2-core machine the
      // production budgets (10 ms command, 50 ms breaker) would trip on noise.
      // Tests about timeouts and breakers set their own values.
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
      TOLLGATE_BREAKER_TIMEOUT_MS: "4000",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
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
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  while (!logs.some((l) => l.msg === "tollgate serving")) {
    if (child.exitCode !== null) throw new Error(`tollgate exited with ${child.exitCode}:\n${raw}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`tollgate did not start in time:\n${raw}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    port,
    httpPort,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    child,
    logs,
    output: () => raw,
    stop(signal = "SIGTERM") {
      if (child.exitCode !== null) return Promise.resolve(child.exitCode);
      return new Promise((resolve) => {
        child.once("exit", (code) => resolve(code));
        child.kill(signal);
      });
    },
  };
}
