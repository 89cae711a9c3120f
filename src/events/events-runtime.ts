/**
 * Builds the events subsystem (detection, alerting, recorder) over the stores
 * the backend made (store/event-stores.ts), so the composition root only calls
 * `createEvents` and hands the result to the services.
 */
import type { KeyStore } from "../keys/key-store.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Policy } from "../policy/policy.js";
import type { BlockBook } from "../ratelimit/block-book.js";
import type { EventStoreLimits, EventStores } from "../store/event-stores.js";
import type { Clock } from "../util/clock.js";
import { createDeadline } from "../util/deadline.js";
import { AlertDispatcher } from "./alert-dispatcher.js";
import { DEFAULT_MAX_SUBJECTS, DetectionEngine } from "./detection-engine.js";
import { EventRecorder } from "./event-recorder.js";
import type { EventStore } from "./event-store.js";
import { Notifier } from "./notifier.js";
import type { UsageStore } from "./usage-store.js";

/** The events subsystem as the services see it. */
export interface Events {
  recorder: EventRecorder;
  store: EventStore;
  usage: UsageStore;
  dispatcher: AlertDispatcher;
  /** Threshold and key-lifecycle notifications (the policy's `notifications`). */
  notifier: Notifier;
  /** Usage counters' retention, ms (bounds GetUsage ranges). */
  usageRetentionMs: number;
  /** Loads active blocks into the local cache, starts the background flush and the notification sweep. */
  start(): Promise<void>;
  /**
   * Flushes buffered events, then drains webhook queues, within `timeoutMs`
   * in all; what is not written or delivered by then is counted as lost.
   */
  stop(timeoutMs: number): Promise<void>;
}

/** Sizes and periods (from the settings). */
export interface EventLimits extends EventStoreLimits {
  bufferSize: number;
  flushMs: number;
  /** Window of aggregated repeated events, ms (default DEFAULT_AGGREGATE_MS). */
  aggregateMs?: number;
  /** Most subjects one detection rule tracks (default DEFAULT_MAX_SUBJECTS). */
  detectionMaxSubjects?: number;
}

/** One "rule tracks its maximum" warning per rule at most this often, ms. */
const FORGOTTEN_LOG_EVERY_MS = 60_000;

/** Options of createEvents. */
export interface CreateEventsOptions {
  stores: EventStores;
  limits: EventLimits;
  /** The block lifecycle: detection rules place blocks through it. */
  blocks: BlockBook;
  policy: () => Policy;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** What the notifier needs besides the policy (settings); undefined: no sweep, no rotation notice. */
  notify?: {
    /** Keys swept for expiry and rotation notices. */
    keys: KeyStore;
    rotationAgeMs: number;
    sweepIntervalMs: number;
    sweepPageSize: number;
  };
}

/** Wires the subsystem. */
export function createEvents(o: CreateEventsOptions): Events {
  const dispatcher = new AlertDispatcher({
    store: o.stores.events,
    webhooks: () => o.policy().detection.webhooks,
    clock: o.clock,
    log: o.log,
    metrics: o.metrics,
  });
  const notifier = new Notifier({
    marks: o.stores.marks,
    notifications: () => o.policy().notifications,
    raise: (alert) => dispatcher.raise(alert),
    clock: o.clock,
    log: o.log,
    rotationAgeMs: o.notify?.rotationAgeMs ?? 0,
    ...(o.notify && {
      keys: o.notify.keys,
      sweepIntervalMs: o.notify.sweepIntervalMs,
      sweepPageSize: o.notify.sweepPageSize,
    }),
  });
  const forgottenLogged = new Map<string, number>();
  const engine = new DetectionEngine({
    store: o.stores.detection,
    rules: () => o.policy().detection.rules,
    clock: o.clock,
    ...(o.limits.detectionMaxSubjects !== undefined && {
      maxSubjects: o.limits.detectionMaxSubjects,
    }),
    onForgotten: (rule, count) => {
      o.metrics.detectionForgotten.inc({ rule }, count);
      const now = o.clock.now();
      if (now - (forgottenLogged.get(rule) ?? Number.NEGATIVE_INFINITY) < FORGOTTEN_LOG_EVERY_MS)
        return;
      if (forgottenLogged.size > 256) forgottenLogged.clear();
      forgottenLogged.set(rule, now);
      o.log.warn(
        { rule, forgotten: count, max: o.limits.detectionMaxSubjects ?? DEFAULT_MAX_SUBJECTS },
        "detection rule tracks its maximum of subjects: the least recently seen are forgotten (TOLLGATE_DETECTION_MAX_SUBJECTS)",
      );
    },
    // A detection block: in the store, this replica's cache and (announced) everywhere.
    block: (tag, durationMs) => o.blocks.place(tag, durationMs),
    raise: (alert) => dispatcher.raise(alert),
  });
  const recorder = new EventRecorder({
    store: o.stores.events,
    usage: o.stores.usage,
    engine,
    clock: o.clock,
    log: o.log,
    metrics: o.metrics,
    maxBuffer: o.limits.bufferSize,
    flushIntervalMs: o.limits.flushMs,
    ...(o.limits.aggregateMs !== undefined && { aggregateMs: o.limits.aggregateMs }),
  });
  return {
    recorder,
    store: o.stores.events,
    usage: o.stores.usage,
    dispatcher,
    notifier,
    usageRetentionMs: o.limits.usageRetentionMs,
    async start() {
      recorder.start();
      notifier.start();
      // Blocks placed before this replica started: refuse them locally too.
      try {
        await o.blocks.load();
      } catch (err) {
        o.log.warn({ err: { message: (err as Error).message } }, "could not load active blocks");
      }
    },
    async stop(timeoutMs) {
      // One budget for both: what the flush leaves is the webhooks' to drain.
      const deadline = createDeadline(timeoutMs);
      await notifier.stop();
      await recorder.stop(deadline.remaining());
      await dispatcher.close(deadline.remaining());
    },
  };
}

/** The subsystem's sizes from the settings. */
export function eventLimitsFromSettings(s: {
  eventRetentionS: number;
  eventMaxCount: number;
  eventMaxBytes: number;
  alertMaxCount: number;
  usageRetentionS: number;
  eventBufferSize: number;
  eventFlushMs: number;
  memoryEventMaxBytes: number;
  memoryAlertMaxBytes: number;
  memoryDetectionMaxEntries: number;
  memoryDetectionMaxBytes: number;
  memoryUsageMaxEntries: number;
  memoryUsageMaxBytes: number;
  eventAggregateMs: number;
  detectionMaxSubjects: number;
}): EventLimits {
  return {
    maxAgeMs: s.eventRetentionS * 1000,
    maxEvents: s.eventMaxCount,
    maxBytes: s.eventMaxBytes,
    aggregateMs: s.eventAggregateMs,
    detectionMaxSubjects: s.detectionMaxSubjects,
    maxAlerts: s.alertMaxCount,
    usageRetentionMs: s.usageRetentionS * 1000,
    bufferSize: s.eventBufferSize,
    flushMs: s.eventFlushMs,
    memory: {
      eventBytes: s.memoryEventMaxBytes,
      alertBytes: s.memoryAlertMaxBytes,
      detection: { maxEntries: s.memoryDetectionMaxEntries, maxBytes: s.memoryDetectionMaxBytes },
      usage: { maxEntries: s.memoryUsageMaxEntries, maxBytes: s.memoryUsageMaxBytes },
    },
  };
}
