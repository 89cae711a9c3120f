/**
 * The caller's deadline, applied to store calls. A gRPC or Connect caller says
 * how long it waits (grpc-timeout, connect-timeout-ms; Envoy sends its 200 ms
 * ext_authz and 20 ms rate-limit budgets). A store call must give up early
 * enough that the fail mode's answer still reaches the caller in time, so it
 * gets the caller's time less a margin — when that is shorter than the
 * command budget every Redis command has anyway (TOLLGATE_REDIS_COMMAND_TIMEOUT_MS).
 * Otherwise nothing is added: no timer, no extra promise on the hot path.
 *
 * Giving up means this caller stops waiting: the command itself may still run
 * in Redis (as with any timeout), and a key lookup that completes is still
 * cached for the next caller.
 */
import { StoreUnavailableError } from "../store/store-errors.js";

/**
 * Least margin kept for answering after a store call gave up, ms. The margin
 * covers the fail mode's answer, timers firing late on a busy event loop and
 * the request's time on the wire (20 %: Envoy's 20 ms rate-limit budget
 * leaves 15 ms to Redis, its 200 ms ext_authz budget 160 ms).
 */
export const DEADLINE_MIN_MARGIN_MS = 5;
/** Share of the caller's time kept as margin, when more than the least. */
export const DEADLINE_MARGIN_SHARE = 0.2;

/**
 * The time (performance.now()) by which store calls for this request must
 * give up, or undefined when the command budget is the shorter bound (or the
 * caller sent no deadline).
 */
export function storeDeadline(
  callerTimeoutMs: number | undefined,
  budgetMs: number,
): number | undefined {
  if (callerTimeoutMs === undefined) return undefined;
  const margin = Math.max(DEADLINE_MIN_MARGIN_MS, callerTimeoutMs * DEADLINE_MARGIN_SHARE);
  const usable = callerTimeoutMs - margin;
  if (usable >= budgetMs) return undefined;
  return performance.now() + Math.max(0, usable);
}

/**
 * `p`, or a StoreUnavailableError (kind `timeout`) if `deadline` passes first.
 * Without a deadline, `p` itself.
 */
export function beforeDeadline<T>(
  p: Promise<T>,
  deadline: number | undefined,
  op: string,
): Promise<T> {
  if (deadline === undefined) return p;
  const left = deadline - performance.now();
  // The late outcome has nobody waiting for it: it must not surface as an
  // unhandled rejection.
  if (left <= 0) {
    p.catch(() => {});
    return Promise.reject(new StoreUnavailableError(op, "timeout"));
  }
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.catch(() => {});
      reject(new StoreUnavailableError(op, "timeout"));
    }, left);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
