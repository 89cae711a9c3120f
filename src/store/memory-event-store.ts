import {
  type Alert,
  type AlertFilter,
  type EventFilter,
  matchesAlert,
  matchesEvent,
  type Page,
  type SecurityEvent,
} from "../events/event.js";
import type { Clock } from "../util/clock.js";
import {
  type AppendResult,
  type EventRetention,
  type EventStore,
  LIST_SCAN_LIMIT,
} from "./event-store.js";

interface Slot<T> {
  seq: number;
  at: number;
  value: T;
}

/**
 * A bounded ring of records, oldest first, trimmed by count on write and by
 * age on every access. Cursors are sequence numbers.
 */
class Ring<T> {
  private readonly items: Slot<T>[] = [];
  private seq = 0;

  constructor(
    private readonly max: number,
    private readonly maxAgeMs: number,
  ) {}

  push(value: T, now: number): void {
    this.trim(now);
    this.items.push({ seq: ++this.seq, at: now, value });
    // Dropping from the front of an array is O(n); splice in chunks so the
    // amortised cost stays small.
    if (this.items.length > this.max + Math.max(16, this.max >> 4)) {
      this.items.splice(0, this.items.length - this.max);
    }
  }

  page(
    now: number,
    limit: number,
    cursor: string | undefined,
    keep: (v: T, at: number) => boolean,
  ): Page<T> {
    this.trim(now);
    const before = cursor === undefined ? Number.POSITIVE_INFINITY : Number(cursor);
    const floor = Math.max(0, this.items.length - this.max);
    const out: T[] = [];
    let examined = 0;
    for (let i = this.items.length - 1; i >= floor; i--) {
      const s = this.items[i] as Slot<T>;
      if (s.seq >= before) continue;
      if (++examined > LIST_SCAN_LIMIT) return { items: out, next: String(s.seq + 1) };
      if (!keep(s.value, s.at)) continue;
      out.push(s.value);
      if (out.length === limit)
        return i > floor ? { items: out, next: String(s.seq) } : { items: out };
    }
    return { items: out };
  }

  private trim(now: number): void {
    let n = 0;
    while (n < this.items.length && (this.items[n] as Slot<T>).at <= now - this.maxAgeMs) n++;
    if (n > 0) this.items.splice(0, n);
  }
}

/**
 * The embedded event store: bounded rings of events and alerts, and a bounded
 * memory of idempotency ids (an id is forgotten after the retention window, or
 * earlier when more than 2 × maxEvents ids are remembered).
 */
export class MemoryEventStore implements EventStore {
  private readonly events: Ring<SecurityEvent>;
  private readonly alerts: Ring<Alert>;
  private readonly ids = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly retention: EventRetention,
  ) {
    this.events = new Ring(retention.maxEvents, retention.maxAgeMs);
    this.alerts = new Ring(retention.maxAlerts, retention.maxAgeMs);
  }

  async append(events: readonly SecurityEvent[]): Promise<AppendResult> {
    const now = this.clock.now();
    const r: AppendResult = { accepted: [], duplicates: [] };
    for (const e of events) {
      const seen = this.ids.get(e.id);
      if (seen !== undefined && seen > now) {
        r.duplicates.push(e.id);
        continue;
      }
      this.ids.delete(e.id);
      this.ids.set(e.id, now + this.retention.maxAgeMs);
      this.events.push({ ...e, recordedAt: now }, now);
      r.accepted.push(e.id);
    }
    // Maps iterate in insertion order: the oldest ids go first.
    for (const [id, until] of this.ids) {
      if (this.ids.size <= 2 * this.retention.maxEvents && until > now) break;
      this.ids.delete(id);
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
}
