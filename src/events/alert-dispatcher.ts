/**
 * Where a fired alert goes: a warn log line, `tollgate_alerts_total{rule,severity}`,
 * the alerts stream of the event store, and each configured webhook whose
 * minimum severity it meets (queued, never awaited). Webhook senders follow the
 * policy: a reload that changes a webhook replaces its sender.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { WebhookConfig } from "../policy/detection-rules.js";
import type { Clock } from "../util/clock.js";
import { type Alert, SEVERITIES } from "./event.js";
import type { EventStore } from "./event-store.js";
import { WebhookSender } from "./webhook-sender.js";

/** Options of AlertDispatcher. */
export interface AlertDispatcherOptions {
  store: EventStore;
  /** The current webhooks (from the policy). */
  webhooks: () => readonly WebhookConfig[];
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** Environment used to resolve `secret_env` (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const STATE = { closed: 0, halfOpen: 1, open: 2 } as const;

/** Raises alerts. */
export class AlertDispatcher {
  private senders = new Map<string, { fingerprint: string; sender: WebhookSender }>();
  private lastConfig: readonly WebhookConfig[] | undefined;

  constructor(private readonly o: AlertDispatcherOptions) {}

  /** Logs, counts, stores and queues an alert. Never throws. */
  async raise(alert: Alert): Promise<void> {
    const { log, metrics } = this.o;
    log.warn(
      {
        alert: alert.rule,
        alertId: alert.id,
        severity: alert.severity,
        subjectKind: alert.subjectKind,
        subject: alert.subject,
        blockedUntil: alert.blockedUntil,
      },
      alert.message,
    );
    metrics.alerts.inc({ rule: alert.rule, severity: alert.severity });
    const rank = SEVERITIES.indexOf(alert.severity);
    for (const s of this.currentSenders()) {
      if (rank >= SEVERITIES.indexOf(s.config.minSeverity)) s.enqueue(alert);
    }
    try {
      await this.o.store.appendAlert(alert);
    } catch (err) {
      log.error(
        { err: { message: (err as Error).message }, alertId: alert.id },
        "alert not stored",
      );
    }
  }

  /** Senders by webhook name (for tests and shutdown). */
  sender(name: string): WebhookSender | undefined {
    this.currentSenders();
    return this.senders.get(name)?.sender;
  }

  /** Drains every webhook queue for up to `timeoutMs`, then drops the rest. */
  async close(timeoutMs: number): Promise<void> {
    await Promise.all([...this.senders.values()].map((s) => s.sender.close(timeoutMs)));
    this.senders.clear();
  }

  private currentSenders(): WebhookSender[] {
    const configs = this.o.webhooks();
    if (configs !== this.lastConfig) {
      this.lastConfig = configs;
      const next = new Map<string, { fingerprint: string; sender: WebhookSender }>();
      for (const c of configs) {
        const fingerprint = JSON.stringify(c);
        const old = this.senders.get(c.name);
        if (old && old.fingerprint === fingerprint) {
          next.set(c.name, old);
          continue;
        }
        const secret = this.secretOf(c);
        if (secret) next.set(c.name, { fingerprint, sender: this.build(c, secret) });
      }
      for (const [name, s] of this.senders) {
        if (next.get(name) !== s) void s.sender.close(5000);
      }
      this.senders = next;
    }
    return [...this.senders.values()].map((s) => s.sender);
  }

  private secretOf(c: WebhookConfig): Buffer | undefined {
    try {
      const text = c.secretFile
        ? readFileSync(c.secretFile, "utf8").trim()
        : ((this.o.env ?? process.env)[c.secretEnv ?? ""] ?? "");
      if (Buffer.byteLength(text) >= 16) return Buffer.from(text);
      this.o.log.error(
        { webhook: c.name },
        "webhook secret missing or shorter than 16 bytes: webhook disabled",
      );
    } catch (err) {
      this.o.log.error(
        { webhook: c.name, err: { code: (err as NodeJS.ErrnoException).code } },
        "webhook secret file unreadable: webhook disabled",
      );
    }
    return undefined;
  }

  private build(c: WebhookConfig, secret: Buffer): WebhookSender {
    const { metrics, log } = this.o;
    const breaker = `webhook:${c.name}`;
    return new WebhookSender(c, secret, this.o.clock, {
      attempt: (result) => metrics.webhookAttempts.inc({ webhook: c.name, result }),
      dropped: (reason) => {
        metrics.webhookDropped.inc({ webhook: c.name, reason });
      },
      breaker: (state) => {
        metrics.breakerState.set({ breaker }, STATE[state]);
        metrics.breakerTransitions.inc({ breaker, to: state });
        if (state === "open") log.warn({ webhook: c.name }, "webhook breaker opened");
      },
      failed: (message) =>
        log.warn({ webhook: c.name, err: { message } }, "webhook delivery gave up"),
    });
  }
}
