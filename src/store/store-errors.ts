/**
 * A store call failed: connection lost, timeout, breaker open, Redis out of
 * memory (`oom`: an `OOM command not allowed` reply, maxmemory reached with
 * `noeviction`), or another Redis error (LOADING, BUSY, READONLY, CLUSTERDOWN,
 * …). Never a decision: callers apply the endpoint's fail mode. Carries the
 * failure's kind, never request data.
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  constructor(
    readonly op: string,
    readonly kind: "breaker_open" | "timeout" | "connection" | "oom" | "reply",
    cause?: unknown,
  ) {
    super(`store unavailable during ${op} (${kind})`, { cause });
  }
}

/** True if `err` is a store failure (from the guard). */
export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return err instanceof StoreUnavailableError;
}

/**
 * True if `err` is Redis refusing a write because maxmemory is reached (with
 * `noeviction`, or nothing left to evict): the reply starts with `OOM`, also
 * when a script's write was refused (`OOM command not allowed … script: …`).
 */
export function isOutOfMemoryReply(err: unknown): boolean {
  const e = err as { name?: string; message?: string } | undefined;
  return e?.name === "ReplyError" && /^(?:ERR .*-)?OOM /.test(e.message ?? "");
}
