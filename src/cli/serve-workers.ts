/**
 * `tollgate serve` with TOLLGATE_WORKERS > 1: this process becomes a
 * node:cluster primary that serves no RPC itself. It forks N workers, each
 * running the normal startTollgate on the same ports (cluster shares the
 * listening sockets, round-robin on Linux; port 0 is shared too, by listen
 * order), and holds the admin port: /metrics is the sum of every worker's
 * registry (prom-client's AggregatorRegistry, over IPC), /readyz is ready
 * while every worker says it is. Workers share state only through Redis, so
 * the embedded store is refused (see embeddedStoreRefusal).
 */
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import { listenAddresses, type Settings } from "../config/settings.js";
import { createLogger } from "../observability/logger.js";
import { PRIMARY_ADMIN_PORT_ENV, startAdminServer } from "../transport/admin-server.js";
import { unavailableAddresses } from "../util/port-probe.js";

/** IPC messages a worker sends its primary. */
export const WORKER_READY = "tollgate:worker-ready";

/**
 * How long past TOLLGATE_SHUTDOWN_TIMEOUT_MS the primary waits for workers
 * before killing them, ms: more than a worker's own backstop (1 s), so a
 * worker normally exits by itself.
 */
const PRIMARY_BACKSTOP_MARGIN_MS = 2_000;

/** Restart backoff after a crash: first delay, cap, and the uptime that resets it, ms. */
const RESTART_BACKOFF = { firstMs: 250, maxMs: 30_000, resetAfterMs: 30_000 } as const;

/** Exit code of a worker whose configuration was refused: restarting would loop. */
const CONFIG_REFUSED = 2;

/**
 * Why `settings` cannot run several workers, or undefined if they can: on the
 * embedded store each process would keep its own keys, counters and blocks.
 */
export function embeddedStoreRefusal(settings: Settings): string | undefined {
  if (settings.workers <= 1) return undefined;
  if (settings.redisUrl !== "" || settings.redisMode !== "standalone") return undefined;
  return (
    `TOLLGATE_WORKERS=${settings.workers}: refused on the embedded store, whose state would split across processes ` +
    `(each worker its own keys, counters and blocks: a limit would admit ${settings.workers} times its rate); ` +
    "set REDIS_URL (or TOLLGATE_REDIS_MODE sentinel/cluster) so that every worker shares Redis, or run one worker"
  );
}

/** Tells the primary, if this process is a cluster worker, that it serves. */
export function reportWorkerReady(): void {
  if (cluster.isWorker) process.send?.({ type: WORKER_READY });
}

/**
 * Runs the primary until it stops; resolves to the exit code: 0 after
 * SIGTERM/SIGINT once every worker exited (or was killed at the deadline),
 * 2 if a worker's configuration was refused (every worker is then stopped),
 * also before forking if a port is taken (workers skip that probe: the
 * primary holds their sockets).
 */
export async function runPrimary(settings: Settings): Promise<number> {
  // Installed first: a signal while the ports are probed must not kill the
  // primary outright; it is acted on once the workers can be stopped (a
  // SIGHUP then has no worker to reload).
  let onSignal = (_signal: NodeJS.Signals) => {};
  let early: NodeJS.Signals | undefined;
  let onHangUp = () => {};
  process.on("SIGHUP", () => onHangUp());
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      early ??= signal;
      onSignal(signal);
    });
  }
  const taken = await unavailableAddresses(listenAddresses(settings));
  if (taken.length > 0) {
    process.stderr.write(`tollgate: cannot listen: ${taken.join("; ")}\n`);
    return CONFIG_REFUSED;
  }
  const log = createLogger(settings.logLevel).child({ role: "primary" });
  const aggregator = new AggregatorRegistry();
  const ready = new Set<number>();
  let stopping = false;
  let admin: Awaited<ReturnType<typeof startAdminServer>>;
  try {
    admin = await startAdminServer({
      addr: settings.adminAddr,
      registry: { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() },
      live: () => true,
      ready: () => !stopping && ready.size === settings.workers,
      readyNotes: () => [`workers: ${ready.size} of ${settings.workers} ready`],
    });
  } catch (err) {
    process.stderr.write(
      `tollgate: TOLLGATE_ADMIN_ADDR: cannot listen (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})\n`,
    );
    return CONFIG_REFUSED;
  }

  return new Promise<number>((resolve) => {
    let exitCode = 0;
    let crashes = 0;
    const restarts = new Set<NodeJS.Timeout>();
    /** Workers not yet exited (cluster.workers keeps one until its IPC closes too). */
    const live = new Map<number, { worker: Worker; startedAt: number }>();

    const fork = (): void => {
      // Workers leave the admin port to this process (see startAdminServer).
      const w = cluster.fork({ [PRIMARY_ADMIN_PORT_ENV]: String(admin.port) });
      live.set(w.id, { worker: w, startedAt: Date.now() });
      w.on("message", (m: { type?: string } | null) => {
        if (m?.type !== WORKER_READY) return;
        ready.add(w.id);
        log.info({ worker: w.id, pid: w.process.pid }, "worker serving");
        if (ready.size === settings.workers) {
          log.info({ workers: settings.workers, adminPort: admin.port }, "all workers serving");
        }
      });
    };
    const each = (f: (w: Worker) => void) => {
      for (const { worker } of live.values()) f(worker);
    };

    let finished = false;
    const finish = () => {
      if (live.size > 0 || finished) return;
      finished = true;
      admin.server.close();
      admin.server.closeAllConnections();
      log.info({ code: exitCode }, "stopped");
      resolve(exitCode);
    };

    const stopAll = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const t of restarts) clearTimeout(t);
      restarts.clear();
      each((w) => w.process.kill(signal));
      // The deadline is a promise to the orchestrator: a worker that has not
      // exited by then is killed (its exit then finishes the stop).
      setTimeout(() => {
        each((w) => {
          log.error({ worker: w.id }, "shutdown deadline passed: killing worker");
          w.process.kill("SIGKILL");
        });
      }, settings.shutdownTimeoutMs + PRIMARY_BACKSTOP_MARGIN_MS).unref();
      finish();
    };

    cluster.on("exit", (w, code, signal) => {
      ready.delete(w.id);
      const uptimeMs = Date.now() - (live.get(w.id)?.startedAt ?? 0);
      live.delete(w.id);
      if (stopping) return finish();
      if (code === CONFIG_REFUSED) {
        log.error(
          { worker: w.id, code },
          "worker refused its configuration: stopping every worker",
        );
        exitCode = CONFIG_REFUSED;
        return stopAll("SIGTERM");
      }
      if (uptimeMs >= RESTART_BACKOFF.resetAfterMs) crashes = 0;
      const delayMs = Math.min(RESTART_BACKOFF.maxMs, RESTART_BACKOFF.firstMs * 2 ** crashes);
      crashes++;
      log.error({ worker: w.id, code, signal, restartInMs: delayMs }, "worker exited: restarting");
      const t = setTimeout(() => {
        restarts.delete(t);
        if (!stopping) fork();
      }, delayMs);
      restarts.add(t);
    });

    onSignal = (signal) => {
      log.info({ signal }, "signal received: stopping workers");
      stopAll(signal);
    };
    onHangUp = () => {
      log.info({ signal: "SIGHUP" }, "signal received: forwarding to workers");
      each((w) => w.process.kill("SIGHUP"));
    };

    if (early) return onSignal(early);
    log.info({ workers: settings.workers, adminPort: admin.port }, "starting workers");
    for (let i = 0; i < settings.workers; i++) fork();
  });
}
