/**
 * Which store failures mean "the store is unavailable" — and only those.
 *
 * An infrastructure failure (the connection is gone or refused, a command or
 * the breaker timed out, the breaker is open, Redis is loading, busy with a
 * script, read-only, out of memory, its cluster is down or resharding) says
 * nothing about the request: callers apply the endpoint's fail mode, and the
 * breaker counts it. Anything else — a script error (`ERR … script`), a
 * WRONGTYPE key, a NOSCRIPT that reached a caller, a TypeError — is a bug or
 * corrupt data: answering it with fail-open would hide it and let traffic
 * through unchecked, so it becomes INTERNAL, is logged loudly, and never
 * trips the breaker.
 */

/** What kind of infrastructure failure a store call met. */
export type UnavailableKind = "breaker_open" | "timeout" | "connection" | "oom" | "reply";

/**
 * A store call failed for infrastructure reasons (see UnavailableKind). Never
 * a decision: callers apply the endpoint's fail mode. Carries the failure's
 * kind, never request data.
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  constructor(
    readonly op: string,
    readonly kind: UnavailableKind,
    cause?: unknown,
  ) {
    super(`store unavailable during ${op} (${kind})`, { cause });
  }
}

/**
 * A store call failed for a reason that is not infrastructure: a script error,
 * a key of the wrong type, a bug. The service edge answers INTERNAL and logs
 * it; no fail mode applies and the breaker does not count it.
 */
export class StoreInternalError extends Error {
  override name = "StoreInternalError";
  constructor(
    readonly op: string,
    cause?: unknown,
  ) {
    super(`store call ${op} failed: ${describeCause(cause)}`, { cause });
  }
}

/** True if `err` is an infrastructure failure of a store call (from the guard). */
export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return err instanceof StoreUnavailableError;
}

/** True if `err` is a non-infrastructure failure of a store call (from the guard). */
export function isStoreInternal(err: unknown): err is StoreInternalError {
  return err instanceof StoreInternalError;
}

/**
 * Redis error replies that mean the server cannot serve now, not that the
 * command is wrong. Inside a script, Redis 7 passes a redis.call error's own
 * code through (`READONLY … script: …`); Redis 6 wraps it (`ERR Error running
 * script … -READONLY …`): both are accepted.
 */
const INFRASTRUCTURE_REPLY =
  /^(?:ERR [^\n]*-)?(?:LOADING|BUSY|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|MOVED|ASK|NOREPLICAS)\b|^ERR max number of clients reached/;

/** Node socket error codes of a connection that failed or broke. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ERR_SOCKET_CLOSED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** ioredis's own messages for a connection that is not there (no reply was ever read). */
const CONNECTION_MESSAGES =
  /^(?:Connection is closed|Stream isn't writeable|Cluster isn't ready|None of startup nodes is available|Failed to refresh slots cache|Too many Cluster redirections|Reached the max retries per request limit|the bulk Redis connection is closed)/;

/** ioredis error classes that only arise from lost connections or exhausted retries. */
const CONNECTION_NAMES = new Set(["MaxRetriesPerRequestError", "ClusterAllFailedError"]);

/**
 * The infrastructure kind of `err`, or undefined if it is not an
 * infrastructure failure (then it is a bug, a script error or bad data).
 */
export function unavailableKind(err: unknown): UnavailableKind | undefined {
  if (err instanceof StoreUnavailableError) return err.kind;
  if (err instanceof StoreInternalError) return undefined;
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  if (e === null || typeof e !== "object") return undefined;
  const code = typeof e.code === "string" ? e.code : "";
  const name = typeof e.name === "string" ? e.name : "";
  const message = typeof e.message === "string" ? e.message : "";
  if (code === "EOPENBREAKER") return "breaker_open";
  // ioredis "Command timed out", opossum "Timed out after N ms" (code ETIMEDOUT).
  if (code === "ETIMEDOUT" || /^(?:Command timed out|Timed out after)/.test(message)) {
    return "timeout";
  }
  if (isOutOfMemoryReply(err)) return "oom";
  if (name === "ReplyError") return INFRASTRUCTURE_REPLY.test(message) ? "reply" : undefined;
  if (CONNECTION_CODES.has(code) || CONNECTION_NAMES.has(name)) return "connection";
  if (CONNECTION_MESSAGES.test(message)) return "connection";
  return undefined;
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

/** The class and first line of an error, bounded: Redis replies carry no request data. */
export function describeCause(cause: unknown): string {
  const e = cause as { name?: unknown; message?: unknown } | undefined;
  const name = typeof e?.name === "string" ? e.name : typeof cause;
  const message = typeof e?.message === "string" ? e.message.split("\n")[0] : String(cause);
  return `${name}: ${(message ?? "").slice(0, 300)}`;
}
