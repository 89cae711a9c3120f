/**
 * The security-event domain: what an event and an alert are, independent of
 * protobuf and of the store. Types are lower-case names (`auth_failure`, or an
 * application-defined `[a-z0-9._-]{1,64}`), severities and subject kinds are
 * small enumerations, times are epoch ms.
 */

import type { Severity } from "../policy/severity.js";
import { INPUT_PATTERNS } from "../util/input-bounds.js";

/** Built-in event types (the proto's EventType, lower-cased without prefix). */
export const BUILTIN_EVENT_TYPES = [
  "auth_failure",
  "permission_denied",
  "rate_limited",
  "blocked",
  "key_created",
  "key_rotated",
  "key_updated",
  "key_revoked",
  "management_auth_failure",
  "store_emptied",
] as const;

/**
 * The observation every allowed request with a key produces. It is never stored
 * as an event (usage counters hold it); detection rules may count it.
 */
export const REQUEST_TYPE = "request";

// Severities are defined with the policy model, which detection rules use.
export { SEVERITIES, type Severity } from "../policy/severity.js";

/** What a subject is. */
export const SUBJECT_KINDS = ["key", "ip", "owner", "caller"] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

/** An application-defined event type. */
export const CUSTOM_TYPE = INPUT_PATTERNS.customType;
/** An idempotency id. */
export const EVENT_ID = INPUT_PATTERNS.eventId;

/** One security event. */
export interface SecurityEvent {
  /** Idempotency id (caller-chosen, or generated for Tollgate's own events). */
  id: string;
  /** A built-in type or an application-defined one. */
  type: string;
  subject: string;
  subjectKind: SubjectKind;
  endpoint: string;
  severity: Severity;
  attributes: Record<string, string>;
  /** When it happened, epoch ms. */
  time: number;
  clientIp: string;
  keyId: string;
  /** When the store recorded it, epoch ms (set by the store on read). */
  recordedAt?: number;
}

/** An alert raised by a detection rule. */
export interface Alert {
  id: string;
  rule: string;
  severity: Severity;
  subject: string;
  subjectKind: SubjectKind;
  message: string;
  /** Epoch ms. */
  firedAt: number;
  /** Epoch ms, when the rule's action blocked the subject. */
  blockedUntil?: number;
  /** Notifications: the key concerned (or whose request crossed a threshold). */
  keyId?: string;
  /** Notifications: that key's owner. */
  owner?: string;
  /** Notifications: the quota limit (or credit balance) concerned. */
  limit?: string;
  /** Notifications: the threshold crossed, percent of the bucket's capacity. */
  thresholdPercent?: number;
}

/** Filter of a ListEvents query. */
export interface EventFilter {
  subject?: string;
  subjectKind?: SubjectKind;
  type?: string;
  /** Recorded at or after, epoch ms. */
  from?: number;
  /** Recorded before, epoch ms. */
  to?: number;
}

/** Filter of a ListAlerts query. */
export interface AlertFilter {
  rule?: string;
  subject?: string;
  from?: number;
  to?: number;
}

/** One page of a listing. `next` is an opaque cursor, absent on the last page. */
export interface Page<T> {
  items: T[];
  next?: string;
}
