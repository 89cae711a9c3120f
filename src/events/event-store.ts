import type { Alert, AlertFilter, EventFilter, Page, SecurityEvent } from "./event.js";

/** How long and how many events and alerts are kept. */
export interface EventRetention {
  /** Events and alerts older than this are trimmed, and idempotency ids forgotten, ms. */
  maxAgeMs: number;
  /** Most events kept (Redis: split evenly over the stream shards). */
  maxEvents: number;
  /**
   * Most bytes of events kept, counted as each event's JSON plus 64 bytes, plus
   * 128 for its idempotency marker if it has one (Redis: split evenly over the
   * stream shards). Default 64 MiB.
   */
  maxBytes?: number;
  /** Most alerts kept. */
  maxAlerts: number;
}

/** Outcome of an append: every id lands in exactly one list, in input order. */
export interface AppendResult {
  /** Newly stored. */
  accepted: string[];
  /** Seen before within the retention window: accepted once, not stored again. */
  duplicates: string[];
}

/** Options of one append. */
export interface AppendOptions {
  /**
   * Remember the ids so a repeat is stored once (default true). False for
   * Tollgate's own events, whose ids are generated and never repeat: no
   * idempotency marker is written for them.
   */
  idempotent?: boolean;
}

/**
 * Security events and alerts. `append` resolves only once the events are
 * durably written (Redis acknowledged them), so a RecordEvent reply means stored.
 * Both kinds of record trim themselves by age and count (events also by bytes):
 * cleanup is automatic.
 */
export interface EventStore {
  append(events: readonly SecurityEvent[], options?: AppendOptions): Promise<AppendResult>;
  /** Newest first; `cursor` from a previous page's `next`. Examines a bounded number of records per call (5000). */
  list(filter: EventFilter, limit: number, cursor?: string): Promise<Page<SecurityEvent>>;
  appendAlert(alert: Alert): Promise<void>;
  /** Newest first. */
  listAlerts(filter: AlertFilter, limit: number, cursor?: string): Promise<Page<Alert>>;
}
