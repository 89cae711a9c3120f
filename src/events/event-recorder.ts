/**
 * The event flow. Two ways in:
 *
 * - `emit` / `request`, from decisions (auth failures, denials, blocks, key
 *   actions; allowed requests): they only append to bounded in-memory buffers
 *   (a full buffer drops, counted) and return at once, so recording never slows
 *   or fails a decision. A timer flushes the buffers in the background: events
 *   are written to the store (pipelined), usage counters incremented, and the
 *   batch evaluated by the detection rules. `stop()` flushes what is left,
 *   for a bounded time: what is not written by then is counted and logged as
 *   lost, never waited on (a paused Redis must not hold up a shutdown).
 * - `record`, for RecordEvent: acknowledged means durably written, so it awaits
 *   the store, then evaluates the newly stored events and returns the alerts.
 */
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { EventStore } from "../store/event-store.js";
import type { UsageIncrement, UsageStore } from "../store/usage-store.js";
import { MINUTE_MS } from "../store/usage-store.js";
import type { Clock } from "../util/clock.js";
import { settlesWithin } from "../util/deadline.js";
import { newDecisionId } from "../util/ids.js";
import type { DetectionEngine, Observation } from "./detection-engine.js";
import {
  type Alert,
  REQUEST_TYPE,
  type SecurityEvent,
  type Severity,
  type SubjectKind,
} from "./event.js";

/** Options of EventRecorder. */
export interface EventRecorderOptions {
  store: EventStore;
  usage: UsageStore;
  engine: DetectionEngine;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** Most internal events, and most distinct (key, endpoint, IP) request entries, buffered. */
  maxBuffer: number;
  /** Background flush interval, ms. */
  flushIntervalMs: number;
}

/** An internal event before it gets an id and time. */
export interface InternalEvent {
  type: string;
  subject: string;
  subjectKind: SubjectKind;
  severity: Severity;
  endpoint?: string;
  clientIp?: string;
  keyId?: string;
  attributes?: Record<string, string>;
}

interface RequestEntry {
  keyId: string;
  endpoint: string;
  clientIp: string;
  requests: number;
  at: number;
}

/** Outcome of RecordEvent. */
export interface RecordResult {
  accepted: string[];
  duplicates: string[];
  alerts: Alert[];
}

/** What `stop()` could not write: events and request observations. */
export interface Unwritten {
  events: number;
  requests: number;
}

/** Records events and feeds detection and usage. */
export class EventRecorder {
  private events: SecurityEvent[] = [];
  private requests = new Map<string, RequestEntry>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Taken from the buffers by a flush whose write has not settled yet. */
  private readonly writing: Unwritten = { events: 0, requests: 0 };
  /** Whose write failed (already counted as store_error). */
  private readonly failed: Unwritten = { events: 0, requests: 0 };
  /** Set when stop() gave up: later outcomes of abandoned writes are not counted again. */
  private abandoned = false;
  /** Set once stop() returns: nothing flushes any more. */
  private stopped = false;

  constructor(private readonly o: EventRecorderOptions) {}

  /** Queues one of Tollgate's own events. Never throws, never waits. */
  emit(e: InternalEvent): void {
    if (this.stopped || this.events.length >= this.o.maxBuffer) {
      this.o.metrics.eventsDropped.inc({ reason: this.stopped ? "shutdown" : "buffer_full" });
      return;
    }
    const now = this.o.clock.now();
    this.events.push({
      id: `tg_${newDecisionId(now)}`,
      type: e.type,
      subject: e.subject,
      subjectKind: e.subjectKind,
      severity: e.severity,
      endpoint: e.endpoint ?? "",
      clientIp: e.clientIp ?? "",
      keyId: e.keyId ?? "",
      attributes: e.attributes ?? {},
      time: now,
    });
  }

  /** Counts one allowed request of a key (usage, and `request` observations for rules). Never waits. */
  request(keyId: string, endpoint: string, clientIp: string): void {
    const k = `${keyId}\u0000${endpoint}\u0000${clientIp}`;
    const r = this.requests.get(k);
    if (r) {
      r.requests++;
      return;
    }
    if (this.stopped || this.requests.size >= this.o.maxBuffer) {
      this.o.metrics.eventsDropped.inc({ reason: this.stopped ? "shutdown" : "buffer_full" });
      return;
    }
    this.requests.set(k, { keyId, endpoint, clientIp, requests: 1, at: this.o.clock.now() });
  }

  /** Stores events (durably), then evaluates the new ones. Throws if the store fails. */
  async record(events: readonly SecurityEvent[]): Promise<RecordResult> {
    const r = await this.o.store.append(events);
    this.o.metrics.eventsRecorded.inc({ source: "api" }, r.accepted.length);
    this.o.metrics.eventsDuplicate.inc(r.duplicates.length);
    const fresh = new Set(r.accepted);
    const alerts = await this.o.engine.evaluate(events.filter((e) => fresh.delete(e.id)));
    return { ...r, alerts };
  }

  /** Starts the background flush timer. */
  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.o.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Stops the timer and flushes what is buffered, waiting at most `timeoutMs`.
   * Resolves to what was lost: events and request observations whose write
   * failed or had not finished in time. Those not finished are counted as
   * `tollgate_events_dropped_total{reason="shutdown"}` (failed ones already
   * are, as `store_error`); a non-zero loss is logged once.
   */
  async stop(timeoutMs = Number.POSITIVE_INFINITY): Promise<Unwritten> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const failedBefore = { ...this.failed };
    const done = await settlesWithin(this.flush(), timeoutMs);
    const cut: Unwritten = { events: 0, requests: 0 };
    if (!done) {
      // Still buffered (queued behind a stuck flush) or still being written.
      cut.events = this.events.length + this.writing.events;
      cut.requests = this.requests.size + this.writing.requests;
      this.events = [];
      this.requests = new Map();
      this.abandoned = true;
      if (cut.events + cut.requests > 0)
        this.o.metrics.eventsDropped.inc({ reason: "shutdown" }, cut.events + cut.requests);
    }
    this.stopped = true;
    const lost: Unwritten = {
      events: cut.events + this.failed.events - failedBefore.events,
      requests: cut.requests + this.failed.requests - failedBefore.requests,
    };
    if (lost.events + lost.requests > 0) {
      this.o.log.warn(
        { ...lost, notFinished: cut.events + cut.requests },
        "events lost at shutdown",
      );
    }
    return lost;
  }

  /** Writes and evaluates everything buffered so far (one flush at a time). Never throws. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce());
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const events = this.events;
    const requests = [...this.requests.values()];
    if (events.length === 0 && requests.length === 0) return;
    this.events = [];
    this.requests = new Map();
    const { metrics, log } = this.o;
    const observations: Observation[] = [];
    const writes: Promise<void>[] = [];
    if (events.length > 0) {
      this.writing.events += events.length;
      writes.push(
        this.o.store
          .append(events)
          .then(
            (r) => {
              if (this.abandoned) return;
              metrics.eventsRecorded.inc({ source: "internal" }, r.accepted.length);
              const fresh = new Set(r.accepted);
              for (const e of events) if (fresh.has(e.id)) observations.push(e);
            },
            (err: Error) => {
              if (this.abandoned) return;
              this.failed.events += events.length;
              metrics.eventsDropped.inc({ reason: "store_error" }, events.length);
              log.warn(
                { err: { message: err.message }, events: events.length },
                "events not stored",
              );
            },
          )
          .finally(() => {
            this.writing.events -= events.length;
          }),
      );
    }
    if (requests.length > 0) {
      this.writing.requests += requests.length;
      writes.push(
        this.o.usage
          .add(usageIncrements(requests))
          .catch((err: Error) => {
            if (this.abandoned) return;
            this.failed.requests += requests.length;
            metrics.eventsDropped.inc({ reason: "store_error" }, requests.length);
            log.warn({ err: { message: err.message } }, "usage counters not written");
          })
          .finally(() => {
            this.writing.requests -= requests.length;
          }),
      );
      for (const r of requests) observations.push(requestObservation(r));
    }
    await Promise.all(writes);
    if (this.abandoned) return;
    try {
      await this.o.engine.evaluate(observations);
    } catch (err) {
      metrics.detectionErrors.inc();
      log.warn({ err: { message: (err as Error).message } }, "detection batch failed");
    }
  }
}

function usageIncrements(requests: readonly RequestEntry[]): UsageIncrement[] {
  const byMinute = new Map<string, UsageIncrement>();
  for (const r of requests) {
    const minute = Math.floor(r.at / MINUTE_MS) * MINUTE_MS;
    const k = `${r.keyId}\u0000${r.endpoint}\u0000${minute}`;
    const u = byMinute.get(k);
    if (u) u.requests += r.requests;
    else
      byMinute.set(k, { keyId: r.keyId, endpoint: r.endpoint, at: minute, requests: r.requests });
  }
  return [...byMinute.values()];
}

function requestObservation(r: RequestEntry): Observation {
  return {
    id: `rq_${newDecisionId(r.at)}`,
    type: REQUEST_TYPE,
    subject: r.keyId,
    subjectKind: "key",
    severity: "info",
    endpoint: r.endpoint,
    clientIp: r.clientIp,
    keyId: r.keyId,
    attributes: {},
    time: r.at,
    weight: r.requests,
  };
}
