/**
 * What the transport guards report: a metric for every refusal, cut-off and
 * timeout, and a warning when a bound is reached — at most one line per kind
 * every 10 s, saying how many were refused since the last one, so a flood
 * cannot flood the log too. The guards call this off the hot path only (on
 * refusals and timeouts, once per connection otherwise).
 */
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";

/** Which RPC port a connection came in on. */
export type PortName = "main" | "http";
/** Why a request was refused before its handler ran. */
export type RefusalReason = "inflight" | "body_budget";
/** Which timeout ended a connection or request. */
export type TimeoutKind = "header" | "body" | "idle" | "ping";

/** Receives the guards' events. */
export interface TransportObserver {
  connectionOpened(port: PortName): void;
  connectionClosed(port: PortName): void;
  /** A connection was closed on arrival: `max` connections were open. */
  connectionRefused(port: PortName, max: number): void;
  /** The connection cap was lowered below the setting to fit the open-file limit. */
  connectionCapLowered(configured: number, applied: number, fileLimit: number): void;
  requestRefused(port: PortName, reason: RefusalReason): void;
  headerListRefused(port: PortName, protocol: "http1" | "http2"): void;
  rapidResetCutoff(port: PortName): void;
  timedOut(port: PortName, kind: TimeoutKind): void;
  /** Where the requests in flight and their body bytes can be read (for gauges). */
  watchBudget(read: () => { inflight: number; bodyBytes: number }): void;
}

/** An observer that reports nothing (tests, tools). */
export const silentTransportObserver: TransportObserver = {
  connectionOpened() {},
  connectionClosed() {},
  connectionRefused() {},
  connectionCapLowered() {},
  requestRefused() {},
  headerListRefused() {},
  rapidResetCutoff() {},
  timedOut() {},
  watchBudget() {},
};

/** How often a warning of one kind may be logged, ms. */
const WARN_EVERY_MS = 10_000;

/** Reports to the process's metrics and log. */
export function createTransportObserver(metrics: Metrics, log: Logger): TransportObserver {
  const warn = rateLimitedWarn(log);
  return {
    connectionOpened: (port) => metrics.transportConnections.inc({ port }),
    connectionClosed: (port) => metrics.transportConnections.dec({ port }),
    connectionRefused(port, max) {
      metrics.transportConnectionsRefused.inc({ port });
      warn(
        "connections",
        `TOLLGATE_MAX_CONNECTIONS (${max}) connections are open: new connections are closed on arrival`,
      );
    },
    connectionCapLowered(configured, applied, fileLimit) {
      log.warn(
        { configured, applied, fileLimit },
        `TOLLGATE_MAX_CONNECTIONS lowered from ${configured} to ${applied}: the process may open only ${fileLimit} files, and the admin port and Redis need some`,
      );
    },
    requestRefused(port, reason) {
      metrics.transportRequestsRefused.inc({ port, reason });
      warn(
        reason,
        reason === "inflight"
          ? "TOLLGATE_MAX_INFLIGHT_REQUESTS requests are in flight: new requests are refused"
          : "TOLLGATE_MAX_INFLIGHT_BODY_BYTES of request bodies are held: requests growing past it are refused",
      );
    },
    headerListRefused: (port, protocol) =>
      metrics.transportHeaderListRefusals.inc({ port, protocol }),
    rapidResetCutoff(port) {
      metrics.transportRapidResetCutoffs.inc({ port });
      warn(
        "rapid-reset",
        "HTTP/2 rapid reset: a connection resetting its streams before their answer was sent GOAWAY and closed",
      );
    },
    timedOut: (port, kind) => metrics.transportTimeouts.inc({ port, kind }),
    watchBudget: (read) => metrics.observeRequestBudget(read),
  };
}

/**
 * A warn(kind, message) that logs a kind at most once per WARN_EVERY_MS,
 * with how many times it happened since its last line (`count`).
 */
function rateLimitedWarn(log: Logger): (kind: string, message: string) => void {
  const last = new Map<string, { at: number; count: number }>();
  return (kind, message) => {
    const now = Date.now();
    const seen = last.get(kind);
    if (seen && now - seen.at < WARN_EVERY_MS) {
      seen.count++;
      return;
    }
    log.warn({ count: (seen?.count ?? 0) + 1 }, message);
    last.set(kind, { at: now, count: 0 });
  };
}
