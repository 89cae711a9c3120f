/**
 * How the client tells a failed call apart: the sidecar unreachable (the only
 * failures that are retried, counted by the breaker and decided by the fail
 * mode) versus every other error (a programming error or a server refusal).
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Node error codes of a connection that broke before an answer arrived. */
const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "EPIPE",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_STREAM_DESTROYED",
]);

function nodeCodes(err: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    e = e.cause;
  }
  return codes;
}

/**
 * Converts anything thrown by a call into a ConnectError. connect-node reports
 * a connection reset as ABORTED; for a client that is the sidecar going away,
 * so it becomes UNAVAILABLE here (the server's own ABORTED, a concurrent
 * update, carries no such cause and stays ABORTED).
 */
export function toConnectError(err: unknown): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Aborted && nodeCodes(err).some((c) => CONNECTION_LOST.has(c))) {
    return new ConnectError(
      `connection to tollgate lost: ${ce.rawMessage}`,
      Code.Unavailable,
      ce.metadata,
      undefined,
      err,
    );
  }
  return ce;
}

/** True for the failures that mean "the sidecar did not answer": UNAVAILABLE and DEADLINE_EXCEEDED. */
export function isUnreachable(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return code === Code.Unavailable || code === Code.DeadlineExceeded;
}

/** The error an open circuit breaker fails fast with. */
export function breakerOpenError(): ConnectError {
  return new ConnectError(
    "tollgate circuit breaker is open (the server failed repeatedly); failing fast",
    Code.Unavailable,
  );
}
