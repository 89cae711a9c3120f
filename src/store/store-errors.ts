/**
 * A store call failed: connection lost, timeout, breaker open, or a Redis error
 * (LOADING, BUSY, READONLY, CLUSTERDOWN, OOM, …). Never a decision: callers apply
 * the endpoint's fail mode. Carries the failure's kind, never request data.
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  constructor(
    readonly op: string,
    readonly kind: "breaker_open" | "timeout" | "connection" | "reply",
    cause?: unknown,
  ) {
    super(`store unavailable during ${op} (${kind})`, { cause });
  }
}

/** True if `err` is a store failure (from the guard). */
export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return err instanceof StoreUnavailableError;
}
