/**
 * UTC calendar windows for quotas, the same arithmetic as rate-limit-n.lua:
 * days, ISO weeks (starting Monday) and months.
 */

const DAY = 86_400_000;

/** Days since 1970-01-01 → [year, month 1..12] (Howard Hinnant's civil_from_days). */
function civil(days: number): [number, number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m];
}

/** The window containing `nowMs`: an id (changes when the window does) and its end (epoch ms). */
export function calendarWindow(
  kind: "day" | "week" | "month",
  nowMs: number,
): { id: number; end: number } {
  const day = Math.floor(nowMs / DAY);
  if (kind === "day") return { id: day, end: (day + 1) * DAY };
  if (kind === "week") {
    // 1970-01-01 was a Thursday; ISO weeks start on Monday.
    const w = Math.floor((day + 3) / 7);
    return { id: w, end: ((w + 1) * 7 - 3) * DAY };
  }
  const [y, m] = civil(day);
  const end = m === 12 ? Date.UTC(y + 1, 0, 1) : Date.UTC(y, m, 1);
  return { id: y * 12 + m, end };
}
