/**
 * The compiled `notifications` section (notification-schema.ts): threshold
 * lists by limit name, the key-lifecycle notices, their severity. Read by the
 * notifier (events/notifier.ts) on every decision, so lookups are maps.
 */
import type { NotificationFile } from "./notification-schema.js";
import type { Severity } from "./severity.js";

/** Notification settings, compiled. */
export interface Notifications {
  /** Thresholds (percent, ascending) of quota limits without their own list. */
  quotaThresholds: readonly number[];
  /** Thresholds (ascending) by quota limit name, replacing `quotaThresholds` for it. */
  quotaByLimit: ReadonlyMap<string, readonly number[]>;
  /** Thresholds (ascending) of credit balances (percent of capacity spent). */
  creditThresholds: readonly number[];
  creditsExhausted: boolean;
  /** Notify once a key expires within this many ms; undefined: never. */
  keyExpiryMs?: number;
  rotationDue: boolean;
  severity: Severity;
  /** True if anything at all is configured (else the notifier does nothing). */
  enabled: boolean;
}

/** Nothing to notify. */
export const NO_NOTIFICATIONS: Notifications = {
  quotaThresholds: [],
  quotaByLimit: new Map(),
  creditThresholds: [],
  creditsExhausted: false,
  rotationDue: false,
  severity: "medium",
  enabled: false,
};

const ascending = (l: readonly number[]) => [...l].sort((a, b) => a - b);

/** Compiles the parsed section. */
export function compileNotifications(n: NotificationFile | undefined): Notifications {
  if (!n) return NO_NOTIFICATIONS;
  const quotaByLimit = new Map(
    Object.entries(n.quota.limits).map(([k, v]) => [k, ascending(v)] as const),
  );
  const compiled = {
    quotaThresholds: ascending(n.quota.thresholds),
    quotaByLimit,
    creditThresholds: ascending(n.credits.thresholds),
    creditsExhausted: n.credits_exhausted,
    rotationDue: n.rotation_due,
    severity: n.severity,
    ...(n.key_expiry_days !== undefined && { keyExpiryMs: n.key_expiry_days * 86_400_000 }),
  };
  const enabled =
    compiled.quotaThresholds.length > 0 ||
    [...quotaByLimit.values()].some((l) => l.length > 0) ||
    compiled.creditThresholds.length > 0 ||
    compiled.creditsExhausted ||
    compiled.rotationDue ||
    compiled.keyExpiryMs !== undefined;
  return { ...compiled, enabled };
}

/** The thresholds of quota limit `name` (its own list, else the common one). */
export function quotaThresholdsOf(n: Notifications, name: string): readonly number[] {
  return n.quotaByLimit.get(name) ?? n.quotaThresholds;
}
