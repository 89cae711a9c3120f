/**
 * What every request in flight holds, across all RPC connections and both
 * engines: a count (TOLLGATE_MAX_INFLIGHT_REQUESTS) and the request-body bytes
 * buffered for them (TOLLGATE_MAX_INFLIGHT_BODY_BYTES). Plain counters: the
 * guards of both protocols take and give back on the hot path, so this must
 * stay a few additions.
 */
export class RequestBudget {
  /** Requests in flight now. */
  inflight = 0;
  /** Request-body bytes held (HTTP/2: received so far; HTTP/1.1: reserved by content-length). */
  bodyBytes = 0;

  constructor(
    /** Most requests in flight. */
    readonly maxInflight: number,
    /** Most request-body bytes held. */
    readonly maxBodyBytes: number,
  ) {}

  /** Whether one more request may start. */
  hasRoom(): boolean {
    return this.inflight < this.maxInflight;
  }
}
