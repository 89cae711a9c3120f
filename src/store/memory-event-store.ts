import type { Alert, AlertFilter, EventFilter, Page, SecurityEvent } from "../events/event.js";
import type { AppendResult, EventRetention, EventStore } from "../events/event-store.js";
import type { Clock } from "../util/clock.js";
import { type MemoryUsage, stringBytes } from "../util/memory-usage.js";
import { matchesAlert, matchesEvent } from "./event-filters.js";
import { Ring, type Slot } from "./memory-ring.js";

/** Byte bounds of the embedded event store. */
export interface MemoryEventBytes {
  /** Most estimated bytes of events held, with their idempotency ids. Default 16 MiB. */
  maxEventBytes: number;
  /** Most estimated bytes of alerts held. Default 4 MiB. */
  maxAlertBytes: number;
}

/** Default byte bounds (the settings' defaults). */
export const EVENT_BYTES_DEFAULTS: MemoryEventBytes = {
  maxEventBytes: 16 * 1024 * 1024,
  maxAlertBytes: 4 * 1024 * 1024,
};

/**
 * Estimated heap bytes of a stored event besides its strings: the event and
 * attributes objects, the ring slot, and the idempotency-id map entry.
 */
const EVENT_OVERHEAD = 400;
/** Per attribute: its property slot in the attributes object. */
const ATTRIBUTE_OVERHEAD = 48;
/** An alert object and its ring slot. */
const ALERT_OVERHEAD = 320;

/** Estimated heap bytes of an event as the embedded store holds it. */
export function eventBytes(e: SecurityEvent): number {
  let n = EVENT_OVERHEAD + stringBytes(e.id) + stringBytes(e.type) + stringBytes(e.subject);
  n += stringBytes(e.endpoint) + stringBytes(e.clientIp) + stringBytes(e.keyId);
  for (const k in e.attributes) {
    n += ATTRIBUTE_OVERHEAD + stringBytes(k) + stringBytes(e.attributes[k] as string);
  }
  return n;
}

/** Estimated heap bytes of an alert as the embedded store holds it. */
export function alertBytes(a: Alert): number {
  return (
    ALERT_OVERHEAD +
    stringBytes(a.id) +
    stringBytes(a.rule) +
    stringBytes(a.subject) +
    stringBytes(a.message) +
    // Notification alerts carry a key, an owner and a limit besides.
    (a.keyId === undefined ? 0 : stringBytes(a.keyId)) +
    (a.owner === undefined ? 0 : stringBytes(a.owner)) +
    (a.limit === undefined ? 0 : stringBytes(a.limit))
  );
}

/**
 * The embedded event store: bounded rings of events and alerts (each at most
 * `maxEvents` / `maxAlerts` records and `maxEventBytes` / `maxAlertBytes`
 * estimated bytes, the oldest dropped first), and the idempotency ids of the
 * events held: an id is recognised as a duplicate while its event is in the
 * ring — within the retention, unless newer events pushed it out — so the ids
 * need no bound of their own.
 */
export class MemoryEventStore implements EventStore {
  private readonly events: Ring<SecurityEvent>;
  private readonly alerts: Ring<Alert>;
  private readonly ids = new Map<string, Slot<SecurityEvent>>();

  constructor(
    private readonly clock: Clock,
    private readonly retention: EventRetention,
    bytes: Partial<MemoryEventBytes> = {},
  ) {
    const b = { ...EVENT_BYTES_DEFAULTS, ...bytes };
    this.events = new Ring({
      maxEntries: retention.maxEvents,
      maxBytes: b.maxEventBytes,
      maxAgeMs: retention.maxAgeMs,
      sizeOf: eventBytes,
      // A newer event with the same id (after the first one aged out) owns the entry.
      onDrop: (s) => {
        if (this.ids.get(s.value.id) === s) this.ids.delete(s.value.id);
      },
    });
    this.alerts = new Ring({
      maxEntries: retention.maxAlerts,
      maxBytes: b.maxAlertBytes,
      maxAgeMs: retention.maxAgeMs,
      sizeOf: alertBytes,
    });
  }

  async append(events: readonly SecurityEvent[]): Promise<AppendResult> {
    const now = this.clock.now();
    const r: AppendResult = { accepted: [], duplicates: [] };
    for (const e of events) {
      const seen = this.ids.get(e.id);
      if (seen !== undefined && seen.at > now - this.retention.maxAgeMs) {
        r.duplicates.push(e.id);
        continue;
      }
      const slot = this.events.push({ ...e, recordedAt: now }, now);
      if (slot) this.ids.set(e.id, slot);
      r.accepted.push(e.id);
    }
    return r;
  }

  async list(filter: EventFilter, limit: number, cursor?: string): Promise<Page<SecurityEvent>> {
    return this.events.page(this.clock.now(), limit, cursor, (e) => matchesEvent(e, filter));
  }

  async appendAlert(alert: Alert): Promise<void> {
    this.alerts.push(alert, this.clock.now());
  }

  async listAlerts(filter: AlertFilter, limit: number, cursor?: string): Promise<Page<Alert>> {
    return this.alerts.page(this.clock.now(), limit, cursor, (a) => matchesAlert(a, filter));
  }

  /** Sizes of the two rings, for the memory gauges. */
  usage(): { events: MemoryUsage; alerts: MemoryUsage } {
    return { events: this.events.usage(), alerts: this.alerts.usage() };
  }
}
