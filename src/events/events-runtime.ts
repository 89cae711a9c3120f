/**
 * Builds the events subsystem (stores, detection, alerting, recorder) for the
 * composition root, so main.ts only calls `createEvents` and hands the result
 * to the services.
 */
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { Policy } from "../policy/policy.js";
import type { BlockBook } from "../ratelimit/block-book.js";
import type { StoreGuard } from "../resilience/store-guard.js";
import { MemoryDetectionStore } from "../store/memory-detection-store.js";
import { MemoryEventStore } from "../store/memory-event-store.js";
import { MemoryUsageStore } from "../store/memory-usage-store.js";
import { RedisDetectionStore } from "../store/redis-detection-store.js";
import { RedisEventStore } from "../store/redis-event-store.js";
import type { RedisClient } from "../store/redis-key-store.js";
import { RedisUsageStore } from "../store/redis-usage-store.js";
import type { Clock } from "../util/clock.js";
import { createDeadline } from "../util/deadline.js";
import type { MemoryBounds, MemoryUsage } from "../util/memory-usage.js";
import { AlertDispatcher } from "./alert-dispatcher.js";
import { DEFAULT_MAX_SUBJECTS, DetectionEngine } from "./detection-engine.js";
import type { DetectionStore } from "./detection-store.js";
import { EventRecorder } from "./event-recorder.js";
import type { EventRetention, EventStore } from "./event-store.js";
import type { UsageStore } from "./usage-store.js";

/** The events subsystem as the services see it. */
export interface Events {
  recorder: EventRecorder;
  store: EventStore;
  usage: UsageStore;
  dispatcher: AlertDispatcher;
  /** Usage counters' retention, ms (bounds GetUsage ranges). */
  usageRetentionMs: number;
  /** Loads active blocks into the local cache and starts the background flush. */
  start(): Promise<void>;
  /**
   * Flushes buffered events, then drains webhook queues, within `timeoutMs`
   * in all; what is not written or delivered by then is counted as lost.
   */
  stop(timeoutMs: number): Promise<void>;
}

/** The stores of the subsystem. */
export interface EventStores {
  events: EventStore;
  usage: UsageStore;
  detection: DetectionStore;
  /** The embedded stores' sizes, for the memory gauges (none for Redis). */
  memory?: Record<"events" | "alerts" | "detection" | "usage", () => MemoryUsage>;
}

/** Sizes and periods (from the settings). */
export interface EventLimits extends EventRetention {
  usageRetentionMs: number;
  bufferSize: number;
  flushMs: number;
  /** Bounds of the embedded stores (docs/security-bounds.md); their defaults when absent. */
  memory?: {
    eventBytes: number;
    alertBytes: number;
    detection: MemoryBounds;
    usage: MemoryBounds;
  };
  /** Window of aggregated repeated events, ms (default DEFAULT_AGGREGATE_MS). */
  aggregateMs?: number;
  /** Most subjects one detection rule tracks (default DEFAULT_MAX_SUBJECTS). */
  detectionMaxSubjects?: number;
}

/** One "rule tracks its maximum" warning per rule at most this often, ms. */
const FORGOTTEN_LOG_EVERY_MS = 60_000;

/** Embedded stores. */
export function memoryEventStores(clock: Clock, limits: EventLimits): EventStores {
  const m = limits.memory;
  const events = new MemoryEventStore(clock, limits, {
    ...(m && { maxEventBytes: m.eventBytes, maxAlertBytes: m.alertBytes }),
  });
  const usage = new MemoryUsageStore(clock, limits.usageRetentionMs, m?.usage);
  const detection = new MemoryDetectionStore(clock, m?.detection);
  return {
    events,
    usage,
    detection,
    memory: {
      events: () => events.usage().events,
      alerts: () => events.usage().alerts,
      detection: () => detection.usage(),
      usage: () => usage.usage(),
    },
  };
}

/**
 * Redis stores, every call through `guard`: the events subsystem's own breaker
 * (on the same connection as the decision path's), so failing background
 * writes of events — e.g. Redis out of memory — never open the breaker that
 * decisions go through.
 */
export function redisEventStores(
  redis: RedisClient,
  prefix: string,
  guard: StoreGuard,
  limits: EventLimits,
): EventStores {
  return {
    events: guard.wrap("events", new RedisEventStore(redis, prefix, limits)),
    usage: guard.wrap("usage", new RedisUsageStore(redis, prefix, limits.usageRetentionMs)),
    detection: guard.wrap("detection", new RedisDetectionStore(redis, prefix)),
  };
}

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
    usageRetentionMs: o.limits.usageRetentionMs,
    async start() {
      recorder.start();
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
