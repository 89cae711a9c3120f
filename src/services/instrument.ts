import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import {
  describeCause,
  isStoreInternal,
  isStoreUnavailable,
  unavailableKind,
} from "../store/store-errors.js";
import { apiError } from "./errors.js";

/**
 * Wraps every handler: measures its latency by RPC and code, and converts
 * anything that is not a ConnectError (a store failure, a bug) into a registry
 * error, logging the cause without request data. This is the one place where
 * thrown errors become wire codes.
 */
export function createInstrument(metrics: Metrics, log: Logger) {
  // During an outage every call fails; one warning per second is enough.
  let lastWarn = 0;
  let suppressed = 0;
  const warnUnavailable = (fields: Record<string, unknown>) => {
    const now = Date.now();
    if (now - lastWarn < 1000) {
      suppressed++;
      return;
    }
    log.warn({ ...fields, suppressed }, "store unavailable: failing closed");
    lastWarn = now;
    suppressed = 0;
  };
  // A store bug repeats on every call that meets it: loud (error level), but
  // one line per second with the count of the rest.
  let lastInternal = 0;
  let internalSuppressed = 0;
  const logInternal = (fields: Record<string, unknown>) => {
    const now = Date.now();
    if (now - lastInternal < 1000) {
      internalSuppressed++;
      return;
    }
    log.error(
      { ...fields, suppressed: internalSuppressed },
      "store call failed, not an outage (a script error, a key of the wrong type, a bug): answered INTERNAL, no fail mode applied",
    );
    lastInternal = now;
    internalSuppressed = 0;
  };
  return function instrument<A extends unknown[], R>(
    rpc: string,
    fn: (...args: A) => Promise<R>,
  ): (...args: A) => Promise<R> {
    // The success child is resolved once: label hashing on every call is waste.
    const ok = metrics.rpcDuration.child({ rpc, code: "ok" });
    return async (...args: A): Promise<R> => {
      const start = process.hrtime.bigint();
      try {
        const r = await fn(...args);
        ok(Number(process.hrtime.bigint() - start) / 1e9);
        return r;
      } catch (err) {
        const ce = toConnectError(err, rpc, log, metrics, warnUnavailable, logInternal);
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        metrics.rpcDuration.observe({ rpc, code: Code[ce.code] ?? "unknown" }, seconds);
        throw ce;
      }
    };
  };
}

/** Instrument function type. */
export type Instrument = ReturnType<typeof createInstrument>;

function toConnectError(
  err: unknown,
  rpc: string,
  log: Logger,
  metrics: Metrics,
  warnUnavailable: (fields: Record<string, unknown>) => void,
  logInternal: (fields: Record<string, unknown>) => void,
): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isStoreInternal(err)) {
    logInternal({ rpc, op: err.op, cause: describeCause(err.cause) });
    return apiError("INTERNAL");
  }
  if (isStoreUnavailable(err)) {
    // Fail closed: the call fails (Envoy's failure_mode_allow decides), never a denial.
    metrics.failClosed.inc({ rpc });
    warnUnavailable({ rpc, op: err.op, kind: err.kind });
    return apiError(err.kind === "oom" ? "STORE_OUT_OF_MEMORY" : "STORE_UNAVAILABLE");
  }
  const e = err as Error;
  // Only the error's class and message are logged: store errors carry no
  // request data, and request objects are never attached.
  log.error({ rpc, err: { name: e?.name, message: e?.message } }, "rpc failed");
  // A Redis failure that reached a handler without the guard (the bulk
  // connection's callers, the embedded store has none): the same classifier.
  return unavailableKind(err) !== undefined ? apiError("STORE_UNAVAILABLE") : apiError("INTERNAL");
}
