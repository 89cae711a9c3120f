import cluster from "node:cluster";
import { loadSettings, SettingsError } from "../config/settings.js";
import { mergeSettingsFile, readSettingsFile } from "../config/settings-file.js";
import { StartupError, startTollgate, type Tollgate } from "../main.js";
import { PolicyError } from "../policy/policy.js";
import { embeddedStoreRefusal, reportWorkerReady, runPrimary } from "./serve-workers.js";

/** `tollgate serve --help`. */
export const SERVE_HELP = `Usage: tollgate serve [--config FILE] [--workers N]

Runs the server: gRPC, gRPC-Web and Connect on TOLLGATE_ADDR, Connect over HTTP/1.1 on
TOLLGATE_HTTP_ADDR, health and metrics on TOLLGATE_ADMIN_ADDR. Every setting is an
environment variable; SIGTERM or SIGINT drains and exits within TOLLGATE_SHUTDOWN_TIMEOUT_MS.

Options:
  --config FILE   read settings from FILE (YAML or JSON: setting names to values,
                  e.g. TOLLGATE_POLICY_FILE: policy.yaml; default $TOLLGATE_CONFIG);
                  the environment wins over the file
  --workers N     run N processes on the same ports (1..64; overrides
                  TOLLGATE_WORKERS, default 1): for gateway-style deployments
                  that need more than one core. N > 1 needs Redis (REDIS_URL):
                  on the embedded store it is refused, as state would split

The settings, with defaults: tollgate --help (or the README's settings table);
their effective values and sources: tollgate settings [--config FILE]

Example:
  TOLLGATE_POLICY_FILE=policy.yaml TOLLGATE_MANAGEMENT_TOKEN_FILE=token tollgate serve
`;

/**
 * How long past TOLLGATE_SHUTDOWN_TIMEOUT_MS the last-resort exit waits, ms.
 * stop() is bounded by the timeout itself; this only catches what it cannot
 * bound (a startup still waiting for Redis, a wait nobody foresaw).
 */
const BACKSTOP_MARGIN_MS = 1_000;

/**
 * `tollgate serve`: validates settings, starts, and on SIGTERM/SIGINT goes not
 * ready, drains and exits 0 within TOLLGATE_SHUTDOWN_TIMEOUT_MS, whatever
 * Redis does. A signal that arrives while starting is kept and acted on once
 * started (or at the deadline, if starting takes longer). Bad configuration
 * exits 2 with a message naming the setting — also when found after starting
 * (a pepper mismatch seen once a Redis that was away answers).
 */
export async function serveCommand(args: string[] = []): Promise<number> {
  let settings: ReturnType<typeof loadSettings>;
  try {
    settings = loadSettings(serveEnvironment(args));
  } catch (err) {
    return startupFailure(err);
  }
  // Several workers: this process becomes their primary (a worker, forked
  // with the same arguments, goes on below and serves).
  if (settings.workers > 1 && cluster.isPrimary) {
    const refusal = embeddedStoreRefusal(settings);
    if (refusal) {
      process.stderr.write(`tollgate: ${refusal}\n`);
      return 2;
    }
    return runPrimary(settings);
  }
  return new Promise<number>((resolve, reject) => {
    let app: Tollgate | undefined;
    let signalled: string | undefined;
    let exitCode = 0;
    const stop = (a: Tollgate, signal: string) => {
      a.log.info({ signal }, "signal received");
      a.stop().then(
        () => resolve(exitCode),
        (err: Error) => {
          a.log.error({ err: { message: err.message } }, "shutdown failed");
          resolve(1);
        },
      );
    };
    const onSignal = (signal: string) => {
      if (signalled) return;
      signalled = signal;
      // The deadline is a promise to the orchestrator: keep it even if
      // something still waits (resolving makes the CLI exit at once).
      setTimeout(() => {
        if (app) app.log.error({ signal }, "shutdown deadline passed: exiting now");
        else process.stderr.write(`tollgate: ${signal} while starting: exiting\n`);
        resolve(exitCode);
      }, settings.shutdownTimeoutMs + BACKSTOP_MARGIN_MS).unref();
      if (app) stop(app, signal);
    };
    // Installed before starting, which can wait for Redis up to the connect
    // timeout: a signal then must not be lost nor kill the process outright.
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
    startTollgate(settings).then(
      (a) => {
        app = a;
        process.on("SIGHUP", () => {
          a.log.info({ signal: "SIGHUP" }, "signal received: reloading policy");
          void a.reloadPolicy();
        });
        if (signalled) stop(a, signalled);
        else reportWorkerReady();
        void a.failure.then((err) => {
          exitCode = 2;
          process.stderr.write(`tollgate: ${err.message}\n`);
          a.log.info("stopping: it must not serve with this configuration");
          a.stop().then(
            () => resolve(2),
            () => resolve(2),
          );
        });
      },
      (err: unknown) => {
        try {
          resolve(startupFailure(err));
        } catch (unexpected) {
          reject(unexpected);
        }
      },
    );
  });
}

/**
 * The settings' environment for `serve [--config FILE]`: the process
 * environment over the configuration file (--config, else TOLLGATE_CONFIG).
 * Settings are environment variables: `--workers N` sets TOLLGATE_WORKERS
 * (over the environment); any other flag is refused, naming it.
 */
export function serveEnvironment(args: string[]): NodeJS.ProcessEnv {
  let config = process.env.TOLLGATE_CONFIG;
  let workers: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--config" && args[i + 1] !== undefined) config = args[++i];
    else if (a.startsWith("--config=")) config = a.slice("--config=".length);
    else if (a === "--workers" && args[i + 1] !== undefined) workers = args[++i];
    else if (a.startsWith("--workers=")) workers = a.slice("--workers=".length);
    else {
      throw new SettingsError(
        `serve: unknown argument "${a}": settings are environment variables (see tollgate serve --help) or entries of a --config file`,
      );
    }
  }
  const env = config ? mergeSettingsFile(process.env, readSettingsFile(config)) : process.env;
  return workers === undefined ? env : { ...env, TOLLGATE_WORKERS: workers };
}

/** Prints a configuration error and returns exit code 2; rethrows anything else. */
function startupFailure(err: unknown): number {
  if (err instanceof SettingsError || err instanceof StartupError || err instanceof PolicyError) {
    process.stderr.write(`tollgate: ${err.message}\n`);
    return 2;
  }
  throw err;
}
