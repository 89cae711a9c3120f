/**
 * The stores of the events subsystem (events, alerts, detection state, usage
 * counters), embedded or on Redis. Built by the backend (backend.ts); the
 * events subsystem (events/events-runtime.ts) only receives them.
 */

import type { DetectionStore } from "../events/detection-store.js";
import type { EventRetention, EventStore } from "../events/event-store.js";
import type { NotificationMarks } from "../events/notification-marks.js";
import type { UsageStore } from "../events/usage-store.js";
import type { StoreGuard } from "../resilience/store-guard.js";
import type { Clock } from "../util/clock.js";
import type { MemoryBounds, MemoryUsage } from "../util/memory-usage.js";
import { MemoryDetectionStore } from "./memory-detection-store.js";
import { MemoryEventStore } from "./memory-event-store.js";
import { MemoryNotificationMarks } from "./memory-notification-marks.js";
import { MemoryUsageStore } from "./memory-usage-store.js";
import { RedisDetectionStore } from "./redis-detection-store.js";
import { RedisEventStore } from "./redis-event-store.js";
import type { RedisClient } from "./redis-key-store.js";
import { RedisNotificationMarks } from "./redis-notification-marks.js";
import { RedisUsageStore } from "./redis-usage-store.js";

/** The stores of the events subsystem. */
export interface EventStores {
  events: EventStore;
  usage: UsageStore;
  detection: DetectionStore;
  /** Once-only markers of notifications (threshold crossings, key notices). */
  marks: NotificationMarks;
  /** The embedded stores' sizes, for the memory gauges (none for Redis). */
  memory?: Record<"events" | "alerts" | "detection" | "usage", () => MemoryUsage>;
}

/** What the stores need to know of the subsystem's limits. */
export interface EventStoreLimits extends EventRetention {
  /** Usage counters' retention, ms. */
  usageRetentionMs: number;
  /** Bounds of the embedded stores (docs/security-bounds.md); their defaults when absent. */
  memory?: {
    eventBytes: number;
    alertBytes: number;
    detection: MemoryBounds;
    usage: MemoryBounds;
  };
}

/** Embedded stores. */
export function memoryEventStores(clock: Clock, limits: EventStoreLimits): EventStores {
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
    marks: new MemoryNotificationMarks(clock),
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
  limits: EventStoreLimits,
): EventStores {
  return {
    events: guard.wrap("events", new RedisEventStore(redis, prefix, limits)),
    usage: guard.wrap("usage", new RedisUsageStore(redis, prefix, limits.usageRetentionMs)),
    detection: guard.wrap("detection", new RedisDetectionStore(redis, prefix)),
    marks: guard.wrap("marks", new RedisNotificationMarks(redis, prefix)),
  };
}
