/**
 * Every store call goes through a StoreGuard: an opossum circuit breaker
 * (error threshold, reset) plus latency and error metrics. A failure of any
 * kind becomes a StoreUnavailableError, which the services turn into the
 * endpoint's fail mode, never into a decision.
 *
 * On the decision connection the breaker has no timeout of its own: how long
 * a call waited says as much about this process's queue under load as about
 * Redis, and a 50 ms breaker timeout made a saturated but healthy process
 * answer UNAVAILABLE. Each command is bounded by its budget (the ioredis
 * command timeout, or the caller's shorter deadline: caller-deadline.ts), and
 * Redis health is judged by Redis — its error replies and connection state
 * through the breaker's error share, and a periodic ping (redis-health.ts)
 * that opens the gate with `setHealthy(false)` when Redis stops answering.
 *
 * Redis out of memory (an `OOM` reply: maxmemory reached) is a failure like an
 * outage — it counts toward opening the breaker — and is said as what it is:
 * kind `oom`, `tollgate_redis_oom_total`, and an error log line at most once
 * per OOM_LOG_EVERY_MS naming the settings to look at.
 */
import CircuitBreaker from "opossum";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Tracing } from "../observability/tracing.js";
import {
  StoreInternalError,
  StoreUnavailableError,
  unavailableKind,
} from "../store/store-errors.js";

/** Options of StoreGuard. */
export interface StoreGuardOptions {
  /** Name of the connection, a metric label (e.g. "redis"). */
  name: string;
  /**
   * A call slower than this counts as failed, ms; false: no timeout of the
   * breaker's own (the decision connection: see above).
   */
  timeoutMs: number | false;
  /** Share of failed calls (percent) in the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Fewest calls in the window before the breaker may open. */
  volumeThreshold: number;
  /** How long the breaker stays open before a trial call, ms. */
  resetTimeoutMs: number;
  /**
   * False on Redis Cluster: one breaker over every master would let a single
   * dead master open it and fail the healthy masters' slots too. There, each
   * command's own timeout bounds a dead slot, and only that slot fails.
   */
  breaker?: boolean;
  log: Logger;
  metrics: Metrics;
  /** A child span per call made while deciding (OpenTelemetry); undefined: off. */
  tracing?: Tracing;
}

const STATE = { closed: 0, halfOpen: 1, open: 2 } as const;

/** One "Redis is out of memory" log line per guard at most this often, ms. */
export const OOM_LOG_EVERY_MS = 10_000;

/** Guards store calls of one connection. */
export class StoreGuard {
  private readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private oomLoggedAt = Number.NEGATIVE_INFINITY;
  private oomSuppressed = 0;
  /** False while the health ping finds Redis not answering: calls fail fast. */
  private healthy = true;

  constructor(private readonly o: StoreGuardOptions) {
    this.breaker = new CircuitBreaker((fn: () => Promise<unknown>) => fn(), {
      timeout: o.timeoutMs,
      errorThresholdPercentage: o.errorThresholdPercentage,
      volumeThreshold: o.volumeThreshold,
      resetTimeout: o.resetTimeoutMs,
      rollingCountTimeout: 10_000,
      rollingCountBuckets: 10,
      // opossum would otherwise sort every latency of the window on each
      // failure (a CPU spiral exactly when Redis struggles); latency is
      // measured by our own histogram instead.
      rollingPercentilesEnabled: false,
      enabled: o.breaker !== false,
      // Only infrastructure failures count: a script bug or a WRONGTYPE key is
      // not Redis being away (opossum counts a filtered error as a success).
      errorFilter: (err: unknown) => unavailableKind(err) === undefined,
    });
    const transition = (to: keyof typeof STATE) => () => {
      o.metrics.breakerState.set({ breaker: o.name }, STATE[to]);
      o.metrics.breakerTransitions.inc({ breaker: o.name, to });
      const line = { breaker: o.name, state: to };
      if (to === "open") o.log.error(line, "circuit breaker opened: store calls fail fast");
      else
        o.log.warn(
          line,
          `circuit breaker ${to === "closed" ? "closed: store healthy again" : "half-open: trying the store"}`,
        );
    };
    this.breaker.on("open", transition("open"));
    this.breaker.on("halfOpen", transition("halfOpen"));
    this.breaker.on("close", transition("closed"));
    o.metrics.breakerState.set({ breaker: o.name }, STATE.closed);
  }

  /** True while the breaker is open or Redis is unhealthy (calls fail fast). */
  get open(): boolean {
    return this.breaker.opened || !this.healthy;
  }

  /**
   * What the health ping found. Unhealthy, every call fails fast (kind
   * `breaker_open`, so the fail mode applies at once instead of each call
   * waiting out its budget on a Redis that does not answer); the breaker's
   * gauge shows it as open. Healthy again, calls go through the breaker as
   * before.
   */
  setHealthy(healthy: boolean): void {
    if (healthy === this.healthy) return;
    this.healthy = healthy;
    const o = this.o;
    const to = healthy
      ? this.breaker.opened
        ? "open"
        : this.breaker.halfOpen
          ? "halfOpen"
          : "closed"
      : "open";
    o.metrics.breakerState.set({ breaker: o.name }, STATE[to]);
    o.metrics.breakerTransitions.inc({ breaker: o.name, to });
    if (healthy)
      o.log.warn({ breaker: o.name }, "redis answers its health ping again: store calls resume");
    else
      o.log.error(
        { breaker: o.name },
        "redis did not answer its health ping: store calls fail fast (fail mode) until it does",
      );
  }

  /**
   * Runs one store operation (a child span of the current decision when
   * tracing is on). Throws StoreUnavailableError on an infrastructure
   * failure, StoreInternalError on any other.
   */
  run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const tracing = this.o.tracing;
    if (!tracing) return this.guarded(op, fn);
    return tracing.child(
      `${this.o.name} ${op}`,
      { "db.system.name": "redis", "db.operation.name": op },
      () => this.guarded(op, fn),
    );
  }

  private async guarded<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (!this.healthy) {
      this.o.metrics.storeErrors.inc({ op, kind: "breaker_open" });
      throw new StoreUnavailableError(op, "breaker_open");
    }
    const start = process.hrtime.bigint();
    try {
      const r = (await this.breaker.fire(fn)) as T;
      this.o.metrics.storeDuration.observe({ op }, Number(process.hrtime.bigint() - start) / 1e9);
      return r;
    } catch (err) {
      const kind = unavailableKind(err);
      if (kind === undefined) {
        this.o.metrics.storeErrors.inc({ op, kind: "internal" });
        throw new StoreInternalError(op, err);
      }
      this.o.metrics.storeErrors.inc({ op, kind });
      if (kind === "oom") this.outOfMemory(op);
      throw new StoreUnavailableError(op, kind, err);
    }
  }

  /** Counts an OOM refusal and logs it, rate-limited (every write fails alike while it lasts). */
  private outOfMemory(op: string): void {
    this.o.metrics.storeOom.inc({ op });
    const now = Date.now();
    if (now - this.oomLoggedAt < OOM_LOG_EVERY_MS) {
      this.oomSuppressed++;
      return;
    }
    this.o.log.error(
      {
        breaker: this.o.name,
        op,
        suppressed: this.oomSuppressed,
        hint: "raise the Redis server's maxmemory (INFO memory shows used_memory), or lower TOLLGATE_EVENT_MAX_BYTES, TOLLGATE_EVENT_MAX_COUNT or TOLLGATE_DETECTION_MAX_SUBJECTS; see docs/security-bounds.md",
      },
      "Redis is out of memory (maxmemory reached): it refuses writes",
    );
    this.oomLoggedAt = now;
    this.oomSuppressed = 0;
  }

  /**
   * A view of `store` whose every method runs through `run`, labelled
   * `<prefix>.<method>`. Non-function members pass through.
   */
  wrap<T extends object>(prefix: string, store: T): T {
    return new Proxy(store, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== "function" || typeof prop !== "string") return v;
        const op = `${prefix}.${prop}`;
        return (...args: unknown[]) =>
          this.run(op, () => (v as (...a: unknown[]) => Promise<unknown>).apply(target, args));
      },
    });
  }

  /** Stops the breaker's timers. */
  shutdown(): void {
    this.breaker.shutdown();
  }
}
