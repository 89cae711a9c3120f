/**
 * Starts the repository's built Tollgate server (`node dist/cli/main.js serve`)
 * as a real process on free loopback ports, with the embedded store and the
 * test policy, and reads the bound ports from its "tollgate serving" log line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (clients/typescript/test/helpers → ../../../..). */
export const REPO_ROOT = resolve(here, "../../../..");
export const SERVER_MAIN = join(REPO_ROOT, "dist/cli/main.js");
export const TEST_POLICY = resolve(here, "../fixtures/policy.yaml");

/** A running server. */
export interface TollgateServer {
  /** `http://127.0.0.1:<main port>`. */
  url: string;
  port: number;
  httpPort: number;
  adminPort: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
  stop(): Promise<void>;
}

/** Options of {@link startTollgate}. */
export interface StartOptions {
  /** The main port to bind (to restart on the same address); 0 (default) for a free one. */
  port?: number;
  /** Extra environment, e.g. `TOLLGATE_MANAGEMENT_TOKEN`. */
  env?: Record<string, string>;
}

/** Starts a server; fails with a clear message if the repository was not built. */
export async function startTollgate(o: StartOptions = {}): Promise<TollgateServer> {
  if (!existsSync(SERVER_MAIN)) {
    throw new Error(
      `${SERVER_MAIN} is missing: build the server first with \`npm run build\` at the repository root (${REPO_ROOT})`,
    );
  }
  // A clean environment: nothing from the developer's shell (REDIS_URL, a token) leaks in.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    TOLLGATE_ADDR: `127.0.0.1:${o.port ?? 0}`,
    TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
    TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_POLICY_FILE: TEST_POLICY,
    ...o.env,
  };
  const child = spawn(process.execPath, [SERVER_MAIN, "serve"], {
    cwd: REPO_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (s: string) => {
    out += s;
  });
  const ports = await new Promise<{ port: number; httpPort: number; adminPort: number }>(
    (resolvePorts, rejectPorts) => {
      let pending = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        rejectPorts(new Error(`tollgate did not start within 15 s:\n${out}`));
      }, 15_000);
      child.stdout.on("data", (s: string) => {
        out += s;
        pending += s;
        let nl = pending.indexOf("\n");
        while (nl >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          nl = pending.indexOf("\n");
          if (!line.includes('"tollgate serving"')) continue;
          const j = JSON.parse(line) as { port: number; httpPort: number; adminPort: number };
          clearTimeout(timer);
          resolvePorts({ port: j.port, httpPort: j.httpPort, adminPort: j.adminPort });
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        rejectPorts(new Error(`tollgate exited with ${code} before serving:\n${out}`));
      });
    },
  );
  return {
    url: `http://127.0.0.1:${ports.port}`,
    ...ports,
    output: () => out,
    stop: () => stopProcess(child),
  };
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(kill);
      done();
    });
    child.kill("SIGTERM");
  });
}
