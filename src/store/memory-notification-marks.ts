import type { NotificationMarks } from "../events/notification-marks.js";
import type { Clock } from "../util/clock.js";

/** Default bound on markers held by the embedded store. */
export const MEMORY_MARKS_MAX = 100_000;

/**
 * The embedded marker store: a Map of marker → expiry, bounded in entries.
 * Past the bound, expired markers go first, then the oldest claims (Map
 * order is claim order). Losing a marker can only let a notice fire a second
 * time, never hide one. One process, so claims are atomic by construction.
 */
export class MemoryNotificationMarks implements NotificationMarks {
  private readonly marks = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly max = MEMORY_MARKS_MAX,
  ) {}

  async claim(tag: string, id: string, untilMs: number): Promise<boolean> {
    const now = this.clock.now();
    const key = `${tag}\u0000${id}`;
    const held = this.marks.get(key);
    if (held !== undefined && held > now) return false;
    this.marks.delete(key);
    this.marks.set(key, Math.max(untilMs, now + 1000));
    if (this.marks.size > this.max) this.shrink(now);
    return true;
  }

  /** Markers held now (for tests and gauges). */
  size(): number {
    return this.marks.size;
  }

  private shrink(now: number): void {
    for (const [k, until] of this.marks) if (until <= now) this.marks.delete(k);
    for (const k of this.marks.keys()) {
      if (this.marks.size <= this.max) break;
      this.marks.delete(k);
    }
  }
}
