/**
 * The composition root: the only place that builds live objects. It reads top
 * to bottom as a start does — settings checks → logger → backend → store
 * watches → object graph → servers — and owns shutdown (not ready → drain →
 * flush → close, within one deadline).
 */
import type { DestinationStream } from "pino";
import { createBackend } from "./app/backend.js";
import { startStoreWatches } from "./app/store-watches.js";
import { buildTollgateGraph, type TollgateGraph } from "./app/tollgate-graph.js";
import type { Settings } from "./config/settings.js";
import { checkStartup } from "./config/startup-checks.js";
import { StartupError } from "./config/startup-error.js";
import { createConsoleRoutes } from "./console/console-routes.js";
import { eventLimitsFromSettings } from "./events/events-runtime.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { DEFAULT_POLICY_YAML, loadPolicyFile, parsePolicy } from "./policy/policy.js";
import { FORWARD_AUTH_PATH } from "./services/forward-auth-handler.js";
import { startAdminServer } from "./transport/admin-server.js";
import { createHttpRoutes } from "./transport/http-routes.js";
import { createOpenApiHandler, OPENAPI_PATH } from "./transport/openapi-route.js";
import { startRpcServers } from "./transport/servers.js";
import { transportLimitsFromSettings } from "./transport/transport-limits.js";
import { createTransportObserver } from "./transport/transport-observer.js";
import { buildInfo } from "./util/build-info.js";
import { systemClock } from "./util/clock.js";
import { createDeadline, settlesWithin } from "./util/deadline.js";

// Re-exported: the CLI and callers of startTollgate catch it from here.
export { StartupError };

/** A running Tollgate. */
export interface Tollgate {
  port: number;
  httpPort?: number;
  adminPort: number;
  log: Logger;
  /**
   * Resolves if Tollgate, though started, must not go on serving: a pepper
   * check that could not run at startup (Redis away) or ran again after a
   * reconnect found keys made with another pepper. The caller stops it and
   * exits non-zero with the message. Never resolves otherwise.
   */
  failure: Promise<StartupError>;
  /** Re-reads the policy file (SIGHUP); false if refused or there is no file. */
  reloadPolicy(): Promise<boolean>;
  /**
   * Not ready → drain in-flight calls → flush events → close, all within the
   * shutdown timeout whatever Redis does; resolves, never hangs.
   */
  stop(): Promise<void>;
}

/** Starts Tollgate with validated settings. */
export async function startTollgate(
  settings: Settings,
  logDestination?: DestinationStream,
): Promise<Tollgate> {
  const log = createLogger(settings.logLevel, logDestination);
  const clock = systemClock;
  const startup = await checkStartup(settings);
  for (const warning of startup.warnings) log.warn(warning);
  const initialPolicy = settings.policyFile
    ? await loadPolicyFile(settings.policyFile, "TOLLGATE_POLICY_FILE")
    : parsePolicy(DEFAULT_POLICY_YAML, "built-in policy");
  // The cache gauge is read at scrape time only, once the graph exists (the
  // admin port opens after it is built).
  const metrics = new Metrics(() => graph.cache.size);

  // Traces are off unless an OTLP endpoint is set: then nothing of them runs,
  // and the OpenTelemetry SDK is not even loaded (it costs start-up time).
  const tracing = settings.otlpTracesUrl
    ? (await import("./observability/tracing.js")).createTracing({
        url: settings.otlpTracesUrl,
        sampleRatio: settings.traceSampleRatio,
        serviceVersion: buildInfo().version,
      })
    : undefined;
  const backend = createBackend(settings, {
    clock,
    log,
    metrics,
    eventLimits: eventLimitsFromSettings(settings),
    ...(tracing && { tracing }),
  });
  let fail: (err: StartupError) => void = () => {};
  const failure = new Promise<StartupError>((r) => {
    fail = r;
  });
  // The watches start before the graph (a refused pepper must stop the start
  // before anything else connects); an emptied store noticed meanwhile is
  // reported once the events subsystem exists.
  let onStoreEmptied: (at: number) => void = () => metrics.storeEmptied.set(1);
  const watches = await startStoreWatches({
    backend,
    settings,
    pepper: startup.pepper,
    clock,
    log,
    metrics,
    onEmptied: (at) => onStoreEmptied(at),
    onMismatch: (err) => fail(err),
  });
  const graph: TollgateGraph = await buildTollgateGraph({
    settings,
    backend,
    clock,
    log,
    metrics,
    policy: initialPolicy,
    ...(settings.policyFile && { policyFile: settings.policyFile }),
    pepper: startup.pepper,
    managementTokens: startup.managementTokens,
    ...(tracing && { tracing }),
  });
  onStoreEmptied = (at) => graph.storeEmptied(at);

  const webConsole = settings.console ? createConsoleRoutes({ deps: graph.deps }) : undefined;
  let ready = false;
  const rpc = await bindOrExplain(
    startRpcServers({
      services: graph.bindings,
      addr: settings.grpcAddr,
      httpAddr: settings.httpAddr,
      maxMessageBytes: settings.maxMessageBytes,
      corsOrigins: settings.corsOrigins,
      httpRoutes: createHttpRoutes({
        routes: {
          [FORWARD_AUTH_PATH]: graph.forwardAuth,
          [OPENAPI_PATH]: createOpenApiHandler(),
          ...webConsole?.routes,
        },
        onError: (err) =>
          log.error({ err: { message: (err as Error)?.message } }, "forward-auth failed"),
      }),
      limits: transportLimitsFromSettings(settings),
      observer: createTransportObserver(metrics, log),
      ...(startup.tls && { tls: startup.tls }),
      onTlsReload: () => log.info("TLS certificates reloaded"),
      onTlsReloadError: (err) =>
        log.error(
          { err: { message: err.message } },
          "TLS certificate reload refused; the previous certificates stay",
        ),
    }),
    "TOLLGATE_ADDR or TOLLGATE_HTTP_ADDR",
  );
  const admin = await bindOrExplain(
    startAdminServer({
      addr: settings.adminAddr,
      registry: metrics.registry,
      live: () => true,
      ready: () => ready,
      // Readiness stays up: every replica shares the store, so failing it
      // would turn lost keys into a full outage; the body says what happened.
      readyNotes: () => {
        const at = watches.emptiedAt();
        return at === undefined ? [] : [`store: emptied (noticed ${new Date(at).toISOString()})`];
      },
    }),
    "TOLLGATE_ADMIN_ADDR",
  );
  graph.policy.watch();
  await graph.events.start();
  ready = true;
  rpc.setServing(true);
  metrics.ready.set(1);
  const build = buildInfo();
  metrics.buildInfo.set({ version: build.version, commit: build.commit, node: build.node }, 1);
  log.info(
    {
      port: rpc.port,
      httpPort: rpc.httpPort,
      adminPort: admin.port,
      policy: initialPolicy.source,
      version: build.version,
      commit: build.commit,
    },
    "tollgate serving",
  );

  let stopping: Promise<void> | undefined;
  return {
    port: rpc.port,
    ...(rpc.httpPort !== undefined && { httpPort: rpc.httpPort }),
    adminPort: admin.port,
    log,
    failure,
    reloadPolicy: () => graph.policy.reload(),
    stop() {
      stopping ??= (async () => {
        // One deadline for every step: each gets what the previous ones left.
        const timeoutMs = settings.shutdownTimeoutMs;
        const deadline = createDeadline(timeoutMs);
        ready = false;
        metrics.ready.set(0);
        rpc.setServing(false);
        log.info("shutting down: not ready, draining in-flight calls");
        graph.policy.close();
        webConsole?.close();
        // Calls may take all but the last tenth (at most 0.5 s), which is kept
        // for writing the events they buffered.
        await rpc.close(Math.max(0, deadline.remaining() - Math.min(500, timeoutMs / 10)));
        // Buffered events are written and webhook queues drained before Redis
        // closes; what cannot be written in time is counted as lost.
        await graph.events.stop(deadline.remaining());
        // Spans still queued are exported if the collector answers in time.
        if (tracing) await settlesWithin(tracing.shutdown(), deadline.remaining());
        const adminClosed = new Promise<void>((r) => admin.server.close(() => r()));
        admin.server.closeAllConnections();
        await adminClosed;
        await graph.close();
        watches.close();
        // Past the deadline Redis connections are dropped, not quit politely.
        await backend.close(deadline.remaining());
        log.info("stopped");
      })();
      return stopping;
    },
  };
}

/** Turns a bind failure (port taken, address unavailable) into a StartupError naming the setting. */
async function bindOrExplain<T>(p: Promise<T>, settingNames: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE" || e.code === "EADDRNOTAVAIL" || e.code === "EACCES") {
      throw new StartupError(
        `${settingNames}: cannot listen (${e.code}${e.message.includes(":") ? ` ${e.message.split(" ").pop()}` : ""})`,
      );
    }
    throw err;
  }
}
