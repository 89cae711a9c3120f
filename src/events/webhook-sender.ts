/**
 * Delivers alerts to one webhook: a bounded queue (a full queue drops the new
 * alert, counted), a small pool of workers, an opossum breaker around the HTTP
 * call, and retries with exponential backoff and full jitter until
 * `maxAttempts`, after which the alert is dropped (counted). Nothing here is
 * ever awaited by a decision.
 */
import CircuitBreaker from "opossum";
import type { WebhookConfig } from "../policy/detection-rules.js";
import type { Clock } from "../util/clock.js";
import type { Alert } from "./event.js";
import { SIGNATURE_HEADER, signWebhook } from "./webhook-signature.js";

/** Hooks for metrics and logs. */
export interface WebhookHooks {
  attempt(result: "success" | "failure"): void;
  dropped(reason: "queue_full" | "exhausted" | "shutdown"): void;
  breaker(state: "closed" | "halfOpen" | "open"): void;
  failed(message: string): void;
}

/** Concurrent deliveries per webhook. */
const WORKERS = 2;
/** Longest pause between attempts, ms. */
const MAX_BACKOFF_MS = 30_000;

/** The JSON body of a delivery. */
export function webhookBody(alert: Alert): string {
  return JSON.stringify({
    type: "tollgate.alert",
    version: 1,
    alert: {
      id: alert.id,
      rule: alert.rule,
      severity: alert.severity,
      subject: alert.subject,
      subject_kind: alert.subjectKind,
      message: alert.message,
      fire_time: new Date(alert.firedAt).toISOString(),
      ...(alert.blockedUntil !== undefined && {
        blocked_until: new Date(alert.blockedUntil).toISOString(),
      }),
      ...(alert.keyId !== undefined && { key_id: alert.keyId }),
      ...(alert.owner !== undefined && { owner: alert.owner }),
      ...(alert.limit !== undefined && { limit: alert.limit }),
      ...(alert.thresholdPercent !== undefined && { threshold_percent: alert.thresholdPercent }),
    },
  });
}

/** One webhook's delivery pipeline. */
export class WebhookSender {
  private readonly queue: Alert[] = [];
  private readonly breaker: CircuitBreaker<[string, string], void>;
  private workers = 0;
  private closed = false;
  private readonly timers = new Set<{ t: NodeJS.Timeout; done: () => void }>();
  private idle: (() => void)[] = [];

  constructor(
    readonly config: WebhookConfig,
    private readonly secret: Buffer,
    private readonly clock: Clock,
    private readonly hooks: WebhookHooks,
  ) {
    this.breaker = new CircuitBreaker((body: string, id: string) => this.post(body, id), {
      timeout: config.timeoutMs + 250,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      resetTimeout: Math.max(1000, Math.min(30_000, config.backoffMs * 8)),
      rollingCountTimeout: 30_000,
      rollingCountBuckets: 10,
    });
    this.breaker.on("open", () => hooks.breaker("open"));
    this.breaker.on("halfOpen", () => hooks.breaker("halfOpen"));
    this.breaker.on("close", () => hooks.breaker("closed"));
    hooks.breaker("closed");
  }

  /** Queues an alert; false (and counted) when the queue is full or closed. */
  enqueue(alert: Alert): boolean {
    if (this.closed || this.queue.length >= this.config.queueSize) {
      this.hooks.dropped(this.closed ? "shutdown" : "queue_full");
      return false;
    }
    this.queue.push(alert);
    if (this.workers < WORKERS) {
      this.workers++;
      void this.work();
    }
    return true;
  }

  /** Alerts waiting. */
  get pending(): number {
    return this.queue.length;
  }

  /** True while the breaker is open. */
  get open(): boolean {
    return this.breaker.opened;
  }

  /**
   * Stops taking alerts; waits up to `timeoutMs` for the queue to drain (retry
   * pauses are cut short), then drops what is left (counted).
   */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    for (const s of this.timers) {
      clearTimeout(s.t);
      s.done();
    }
    if (this.workers > 0) {
      await Promise.race([
        new Promise<void>((r) => this.idle.push(r)),
        new Promise<void>((r) => setTimeout(r, timeoutMs).unref()),
      ]);
    }
    for (const _ of this.queue.splice(0)) this.hooks.dropped("shutdown");
    this.breaker.shutdown();
  }

  private async work(): Promise<void> {
    try {
      for (let a = this.queue.shift(); a; a = this.queue.shift()) await this.deliver(a);
    } finally {
      this.workers--;
      if (this.workers === 0) for (const r of this.idle.splice(0)) r();
    }
  }

  private async deliver(alert: Alert): Promise<void> {
    const body = webhookBody(alert);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.breaker.fire(body, alert.id);
        this.hooks.attempt("success");
        return;
      } catch (err) {
        this.hooks.attempt("failure");
        if (attempt >= this.config.maxAttempts || this.closed) {
          this.hooks.failed((err as Error).message);
          this.hooks.dropped(this.closed ? "shutdown" : "exhausted");
          return;
        }
        const cap = Math.min(MAX_BACKOFF_MS, this.config.backoffMs * 2 ** (attempt - 1));
        await this.sleep(Math.random() * cap);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const s = {
        t: setTimeout(() => {
          this.timers.delete(s);
          resolve();
        }, ms),
        done: resolve,
      };
      s.t.unref();
      this.timers.add(s);
    });
  }

  private async post(body: string, id: string): Promise<void> {
    const t = Math.floor(this.clock.now() / 1000);
    const res = await fetch(this.config.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "tollgate-webhook/1",
        "tollgate-alert-id": id,
        [SIGNATURE_HEADER]: signWebhook(this.secret, body, t),
      },
      body,
      signal: AbortSignal.timeout(this.config.timeoutMs),
      redirect: "manual",
    });
    // Drain the body so the connection can be reused.
    await res.arrayBuffer().catch(() => undefined);
    if (res.status < 200 || res.status >= 300)
      throw new Error(`webhook answered HTTP ${res.status}`);
  }
}
