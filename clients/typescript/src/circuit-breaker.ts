/**
 * A consecutive-failure circuit breaker, one per client.
 *
 * closed → open after `failureThreshold` consecutive failures (UNAVAILABLE or
 * DEADLINE_EXCEEDED); open → half-open once `resetTimeoutMs` have passed; in
 * half-open exactly one call (the probe) goes through while every other call
 * fails fast; the probe's success closes the breaker, its failure opens it
 * again for another `resetTimeoutMs`. Any answer from the server, including an
 * RPC error such as INVALID_ARGUMENT, is a success: the server is reachable.
 *
 * Written here rather than taken from opossum (which the server uses for its
 * Redis calls) because opossum opens on an error *percentage* over a rolling
 * window with a volume threshold, wraps the action in its own timeout and runs
 * interval timers for its statistics; the client contract asks for a count of
 * consecutive failures and a single half-open probe, which is this small state
 * machine with an injected clock.
 */

/** Breaker settings. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. Default 5. */
  failureThreshold?: number;
  /** How long the breaker stays open before it lets one probe through, in ms. Default 1000. */
  resetTimeoutMs?: number;
  /** The clock, in ms; `performance.now` unless given (tests). */
  now?: () => number;
}

/** The breaker's state. */
export type BreakerState = "closed" | "open" | "half-open";

/** See the module comment. Not thread-safe by design: Node runs one call's bookkeeping at a time. */
export class CircuitBreaker {
  private readonly threshold: number;
  private readonly resetMs: number;
  private readonly now: () => number;
  private failures = 0;
  private openedAt: number | undefined;
  private probing = false;

  constructor(o: CircuitBreakerOptions = {}) {
    this.threshold = Math.max(1, o.failureThreshold ?? 5);
    this.resetMs = Math.max(0, o.resetTimeoutMs ?? 1000);
    this.now = o.now ?? (() => performance.now());
  }

  /** The current state (open turns half-open by itself once the reset timeout has passed). */
  state(): BreakerState {
    if (this.openedAt === undefined) return "closed";
    return this.now() - this.openedAt >= this.resetMs ? "half-open" : "open";
  }

  /**
   * Asks to make a call: true if it may go ahead (closed, or the one half-open
   * probe), false to fail fast. A caller that got true must report
   * {@link success}, {@link failure} or {@link neutral} exactly once.
   */
  tryAcquire(): boolean {
    const s = this.state();
    if (s === "closed") return true;
    if (s === "open" || this.probing) return false;
    this.probing = true;
    return true;
  }

  /** The server answered. */
  success(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.probing = false;
  }

  /** The server did not answer (UNAVAILABLE or DEADLINE_EXCEEDED). */
  failure(): void {
    this.failures++;
    if (this.probing || this.failures >= this.threshold) this.openedAt = this.now();
    this.probing = false;
  }

  /** The call ended without telling anything about the server (cancelled by the caller). */
  neutral(): void {
    this.probing = false;
  }
}
