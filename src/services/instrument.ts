import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { apiError } from "./errors.js";

/**
 * Wraps every handler: measures its latency by RPC and code, and converts
 * anything that is not a ConnectError (a store failure, a bug) into a registry
 * error, logging the cause without request data. This is the one place where
 * thrown errors become wire codes.
 */
export function createInstrument(metrics: Metrics, log: Logger) {
  return function instrument<A extends unknown[], R>(
    rpc: string,
    fn: (...args: A) => Promise<R>,
  ): (...args: A) => Promise<R> {
    const labels = { rpc };
    return async (...args: A): Promise<R> => {
      const start = process.hrtime.bigint();
      let code = "ok";
      try {
        return await fn(...args);
      } catch (err) {
        const ce = toConnectError(err, rpc, log);
        code = Code[ce.code] ?? "unknown";
        throw ce;
      } finally {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        metrics.rpcDuration.observe({ ...labels, code }, seconds);
      }
    };
  };
}

/** Instrument function type. */
export type Instrument = ReturnType<typeof createInstrument>;

function toConnectError(err: unknown, rpc: string, log: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  const e = err as Error;
  // Only the error's class and message are logged: store errors carry no
  // request data, and request objects are never attached.
  log.error({ rpc, err: { name: e?.name, message: e?.message } }, "rpc failed");
  return isStoreError(e) ? apiError("STORE_UNAVAILABLE") : apiError("INTERNAL");
}

function isStoreError(e: Error | undefined): boolean {
  if (!e) return false;
  const n = e.name ?? "";
  return (
    /Redis|Reply|MaxRetries|ClusterAllFailed|Abort/i.test(n) ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|Command timed out|Stream isn't writeable|CLUSTERDOWN|LOADING|BUSY|READONLY|OOM|NOSCRIPT/.test(
      e.message ?? "",
    )
  );
}
