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
 *
 * Aggregation. Tollgate's own repeated events (AGGREGATED_TYPES: one per failed
 * or denied request, which anyone can cause without a valid key) are not stored
 * one record each. They are counted per (type, subject, endpoint, client IP,
 * key id, attributes other than `key_fp` / `decision_id`) per window of
 * `aggregateMs`: the first of a burst is stored at the next flush (so a lone
 * failure is listed at once), the rest of the window as one record at its end,
 * with `count`, `first_time`, `last_time` and up to FP_SAMPLE distinct `key_fps`.
 * A window with nothing in it ends the aggregate; the next failure leads again.
 * Detection is not delayed by the window: each flush evaluates what was counted
 * since the previous one, weighted by its count and with every distinct key
 * fingerprint, whether or not the record could be written.
 */
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Clock } from "../util/clock.js";
import { settlesWithin } from "../util/deadline.js";
import { newDecisionId } from "../util/ids.js";
import { MINUTE_MS } from "../util/time-buckets.js";
import type { DetectionEngine, Observation } from "./detection-engine.js";
import {
  type Alert,
  REQUEST_TYPE,
  type SecurityEvent,
  type Severity,
  type SubjectKind,
} from "./event.js";
import type { EventStore } from "./event-store.js";
import type { UsageIncrement, UsageStore } from "./usage-store.js";

/** Tollgate's own event types a caller can cause per request: stored aggregated. */
export const AGGREGATED_TYPES: ReadonlySet<string> = new Set([
  "auth_failure",
  "permission_denied",
  "rate_limited",
  "blocked",
]);

/** Distinct key fingerprints an aggregate record lists (`key_fps`). */
export const FP_SAMPLE = 16;

/** Default of EventRecorderOptions.aggregateMs. */
export const DEFAULT_AGGREGATE_MS = 10_000;

/** Attributes that vary per occurrence: sampled, never part of the aggregate's identity. */
const VARYING = new Set(["key_fp", "decision_id"]);

/** Options of EventRecorder. */
export interface EventRecorderOptions {
  store: EventStore;
  usage: UsageStore;
  engine: DetectionEngine;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /**
   * Most internal events buffered, most open aggregates, most distinct (key,
   * endpoint, IP) request entries, and most key fingerprints kept for
   * detection between two flushes — each.
   */
  maxBuffer: number;
  /** Background flush interval, ms. */
  flushIntervalMs: number;
  /** Window of the aggregate record of repeated events, ms. Default DEFAULT_AGGREGATE_MS. */
  aggregateMs?: number;
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

/** Repeated events of one identity within one window. */
interface Aggregate {
  /** The identity: everything but the id, time and varying attributes. */
  base: InternalEvent & { attributes: Record<string, string> };
  /** Start of the current window, epoch ms. */
  openedAt: number;
  /** Nothing of this burst stored yet: the next flush stores what is counted. */
  leading: boolean;
  /** Occurrences since the last stored record, with their first and last time. */
  count: number;
  first: number;
  last: number;
  /** Distinct key fingerprints since the last stored record (≤ FP_SAMPLE). */
  fps: string[];
  /** Decision id of the first occurrence since the last stored record. */
  decisionId: string | undefined;
  /** Occurrences and distinct fingerprints since the last flush, for detection. */
  pending: number;
  pendingFps: Set<string>;
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
  private aggregates = new Map<string, Aggregate>();
  /** Key fingerprints held for detection until the next flush (bounded by maxBuffer). */
  private pendingFps = 0;
  private requests = new Map<string, RequestEntry>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Taken from the buffers by a flush whose write has not settled yet (events they stand for). */
  private readonly writing: Unwritten = { events: 0, requests: 0 };
  /** Whose write failed (already counted as store_error). */
  private readonly failed: Unwritten = { events: 0, requests: 0 };
  /** Set when stop() gave up: later outcomes of abandoned writes are not counted again. */
  private abandoned = false;
  /** Set once stop() returns: nothing flushes any more. */
  private stopped = false;
  private readonly aggregateMs: number;

  constructor(private readonly o: EventRecorderOptions) {
    this.aggregateMs = o.aggregateMs ?? DEFAULT_AGGREGATE_MS;
  }

  /** Queues one of Tollgate's own events. Never throws, never waits. */
  emit(e: InternalEvent): void {
    if (AGGREGATED_TYPES.has(e.type)) {
      this.aggregate(e);
      return;
    }
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

  /** Counts one occurrence of a repeated event into its aggregate. */
  private aggregate(e: InternalEvent): void {
    const attributes: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.attributes ?? {})) if (!VARYING.has(k)) attributes[k] = v;
    const fp = e.attributes?.key_fp;
    const id = JSON.stringify([
      e.type,
      e.subject,
      e.subjectKind,
      e.severity,
      e.endpoint ?? "",
      e.clientIp ?? "",
      e.keyId ?? "",
      Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ]);
    const now = this.o.clock.now();
    let a = this.aggregates.get(id);
    if (!a) {
      if (this.stopped || this.aggregates.size >= this.o.maxBuffer) {
        this.o.metrics.eventsDropped.inc({ reason: this.stopped ? "shutdown" : "buffer_full" });
        return;
      }
      a = {
        base: { ...e, attributes },
        openedAt: now,
        leading: true,
        count: 0,
        first: now,
        last: now,
        fps: [],
        decisionId: undefined,
        pending: 0,
        pendingFps: new Set(),
      };
      this.aggregates.set(id, a);
    }
    if (a.count === 0) {
      a.first = now;
      a.decisionId = e.attributes?.decision_id;
    }
    a.count++;
    a.last = now;
    a.pending++;
    if (fp !== undefined) {
      if (a.fps.length < FP_SAMPLE && !a.fps.includes(fp)) a.fps.push(fp);
      if (this.pendingFps < this.o.maxBuffer && !a.pendingFps.has(fp)) {
        a.pendingFps.add(fp);
        this.pendingFps++;
      }
    }
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
   * Stops the timer and flushes what is buffered (open aggregates included,
   * whatever their window), waiting at most `timeoutMs`. Resolves to what was
   * lost: events (as many as the records stood for) and request observations
   * whose write failed or had not finished in time. Those not finished are
   * counted as `tollgate_events_dropped_total{reason="shutdown"}` (failed ones
   * already are, as `store_error`); a non-zero loss is logged once.
   */
  async stop(timeoutMs = Number.POSITIVE_INFINITY): Promise<Unwritten> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const failedBefore = { ...this.failed };
    const done = await settlesWithin(this.flush(true), timeoutMs);
    const cut: Unwritten = { events: 0, requests: 0 };
    if (!done) {
      // Still buffered (queued behind a stuck flush) or still being written.
      let buffered = this.events.length;
      for (const a of this.aggregates.values()) buffered += a.count;
      cut.events = buffered + this.writing.events;
      cut.requests = this.requests.size + this.writing.requests;
      this.events = [];
      this.aggregates = new Map();
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

  /**
   * Writes and evaluates everything due so far (one flush at a time); `final`
   * also writes every open aggregate. Never throws.
   */
  flush(final = false): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce(final));
    return this.flushing;
  }

  /**
   * Takes from the aggregates what detection has not seen yet (as weighted
   * observations) and the records that are due (leading ones, ended windows,
   * or all when `final`).
   */
  private takeAggregates(now: number, final: boolean) {
    const observations: Observation[] = [];
    const records: { event: SecurityEvent; count: number }[] = [];
    for (const [id, a] of this.aggregates) {
      if (a.pending > 0) {
        const [fp] = a.pendingFps;
        observations.push({
          ...this.eventOf(a, now),
          ...(fp !== undefined && { attributes: { ...a.base.attributes, key_fp: fp } }),
          weight: a.pending,
          keyFps: [...a.pendingFps],
        });
        this.pendingFps -= a.pendingFps.size;
        a.pending = 0;
        a.pendingFps = new Set();
      }
      const ended = final || now - a.openedAt >= this.aggregateMs;
      if (!a.leading && !ended) continue;
      if (a.count > 0) records.push({ event: this.recordOf(a), count: a.count });
      if (a.count === 0 || final) {
        // A quiet window ends the aggregate: the next occurrence leads again.
        this.aggregates.delete(id);
        continue;
      }
      if (!a.leading) a.openedAt = now;
      a.leading = false;
      a.count = 0;
      a.fps = [];
      a.decisionId = undefined;
    }
    return { observations, records };
  }

  private eventOf(a: Aggregate, at: number): SecurityEvent {
    const b = a.base;
    return {
      id: `tg_${newDecisionId(at)}`,
      type: b.type,
      subject: b.subject,
      subjectKind: b.subjectKind,
      severity: b.severity,
      endpoint: b.endpoint ?? "",
      clientIp: b.clientIp ?? "",
      keyId: b.keyId ?? "",
      attributes: b.attributes,
      time: at,
    };
  }

  /** The stored record of an aggregate's occurrences since its last record. */
  private recordOf(a: Aggregate): SecurityEvent {
    const e = this.eventOf(a, a.first);
    // Built by assignment in one order, not by spreading: a spread of the
    // base's attributes gave each stored record a hidden class of its own
    // (a heap snapshot after 150 000 unknown keys: 10 800 records, each with
    // its own map, descriptors and enum cache, ≈ 400 B apiece); assigned in
    // the same order, records share one chain of hidden classes.
    const attributes: Record<string, string> = {};
    for (const k in a.base.attributes) attributes[k] = a.base.attributes[k] as string;
    attributes.count = String(a.count);
    attributes.first_time = new Date(a.first).toISOString();
    attributes.last_time = new Date(a.last).toISOString();
    if (a.fps.length > 0) {
      attributes.key_fp = a.fps[0] as string;
      attributes.key_fps = a.fps.join(",");
    }
    if (a.decisionId !== undefined) attributes.decision_id = a.decisionId;
    e.attributes = attributes;
    return e;
  }

  private async flushOnce(final: boolean): Promise<void> {
    const now = this.o.clock.now();
    const own = this.events;
    const agg = this.takeAggregates(now, final);
    const requests = [...this.requests.values()];
    const work = own.length + agg.records.length + agg.observations.length + requests.length;
    if (work === 0) return;
    this.events = [];
    this.requests = new Map();
    const { metrics, log } = this.o;
    // Detection sees Tollgate's own events whether or not their records could be written.
    const observations: Observation[] = [...own, ...agg.observations];
    const writes: Promise<void>[] = [];
    const events = [...own, ...agg.records.map((r) => r.event)];
    if (events.length > 0) {
      // Occurrences the records stand for (an aggregate record stands for its count).
      const standsFor = own.length + agg.records.reduce((n, r) => n + r.count, 0);
      this.writing.events += standsFor;
      writes.push(
        this.o.store
          // Generated ids never repeat: no idempotency markers for them.
          .append(events, { idempotent: false })
          .then(
            () => {
              if (this.abandoned) return;
              metrics.eventsRecorded.inc({ source: "internal" }, standsFor);
              for (const r of agg.records)
                if (r.count > 1) metrics.eventsAggregated.inc({ type: r.event.type }, r.count - 1);
            },
            (err: Error) => {
              if (this.abandoned) return;
              this.failed.events += standsFor;
              metrics.eventsDropped.inc({ reason: "store_error" }, standsFor);
              log.warn(
                { err: { message: err.message }, events: standsFor, records: events.length },
                "events not stored",
              );
            },
          )
          .finally(() => {
            this.writing.events -= standsFor;
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
    if (this.abandoned || observations.length === 0) return;
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
