/**
 * calendar-window.ts against the JavaScript Date's own UTC calendar: every day
 * from 1900 to 2200 (leap years, century years, Dec→Jan), at the window's first
 * and last millisecond.
 */
import { describe, expect, it } from "vitest";
import { calendarWindow } from "../../src/store/calendar-window.js";

const DAY = 86_400_000;

/** The truth from Date: end of the UTC day, ISO week (Monday start) and month containing `ms`. */
function truth(ms: number) {
  const d = new Date(ms);
  const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const sinceMonday = (d.getUTCDay() + 6) % 7;
  return {
    day: dayStart + DAY,
    week: dayStart + (7 - sinceMonday) * DAY,
    month: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  };
}

describe("calendarWindow", () => {
  it("ends every day, ISO week and month where Date.UTC says, 1900–2200, first and last ms", () => {
    const mismatches: string[] = [];
    for (let t = Date.UTC(1900, 0, 1); t < Date.UTC(2200, 0, 1); t += DAY) {
      for (const ms of [t, t + DAY - 1]) {
        const want = truth(ms);
        for (const kind of ["day", "week", "month"] as const) {
          const got = calendarWindow(kind, ms).end;
          if (got !== want[kind] && mismatches.length < 10) {
            mismatches.push(`${kind} of ${new Date(ms).toISOString()}: ${got} ≠ ${want[kind]}`);
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("keeps one id within a window and changes it at the edge", () => {
    const wrong: string[] = [];
    for (let t = Date.UTC(1999, 0, 1); t < Date.UTC(2101, 0, 1); t += DAY) {
      for (const kind of ["day", "week", "month"] as const) {
        const w = calendarWindow(kind, t);
        if (calendarWindow(kind, w.end - 1).id !== w.id || calendarWindow(kind, w.end).id === w.id)
          wrong.push(`${kind} at ${new Date(t).toISOString()}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("names the edges users care about", () => {
    // Dec 31 → Jan 1 ends a day and a month; 2023-12-31 is a Sunday, so a week too.
    const newYear = Date.UTC(2024, 0, 1);
    for (const kind of ["day", "week", "month"] as const)
      expect(calendarWindow(kind, newYear - 1).end).toBe(newYear);
    // A leap February ends on the 29th, a common one on the 28th, 2100's on the 28th.
    expect(calendarWindow("month", Date.UTC(2024, 1, 29, 12)).end).toBe(Date.UTC(2024, 2, 1));
    expect(calendarWindow("month", Date.UTC(2025, 1, 28, 12)).end).toBe(Date.UTC(2025, 2, 1));
    expect(calendarWindow("month", Date.UTC(2100, 1, 28, 12)).end).toBe(Date.UTC(2100, 2, 1));
    expect(calendarWindow("month", Date.UTC(2000, 1, 29, 12)).end).toBe(Date.UTC(2000, 2, 1));
    // ISO weeks start on Monday: Wednesday 2026-05-13 is in the week ending Monday 18th.
    expect(calendarWindow("week", Date.UTC(2026, 4, 13, 15)).end).toBe(Date.UTC(2026, 4, 18));
    expect(calendarWindow("week", Date.UTC(2026, 4, 18)).end).toBe(Date.UTC(2026, 4, 25));
  });
});
