/**
 * How the event stores apply the filters of ListEvents and ListAlerts (the
 * contract is documented on EventFilter and AlertFilter in events/event.ts).
 */
import type { Alert, AlertFilter, EventFilter, SecurityEvent } from "../events/event.js";

/** True if `e` passes `f` (time bounds on `recordedAt`, else `time`). */
export function matchesEvent(e: SecurityEvent, f: EventFilter): boolean {
  const t = e.recordedAt ?? e.time;
  return (
    (f.subject === undefined || e.subject === f.subject) &&
    (f.subjectKind === undefined || e.subjectKind === f.subjectKind) &&
    (f.type === undefined || e.type === f.type) &&
    (f.from === undefined || t >= f.from) &&
    (f.to === undefined || t < f.to)
  );
}

/** True if `a` passes `f`. */
export function matchesAlert(a: Alert, f: AlertFilter): boolean {
  return (
    (f.rule === undefined || a.rule === f.rule) &&
    (f.subject === undefined || a.subject === f.subject) &&
    (f.from === undefined || a.firedAt >= f.from) &&
    (f.to === undefined || a.firedAt < f.to)
  );
}
