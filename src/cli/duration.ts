import { parseDurationMs } from "../policy/duration.js";

/** Parses a CLI duration (`90s`, `15m`, `24h`, `30d`, or a plain number of seconds) into ms. */
export function parseDuration(text: string): number {
  const t = text.trim();
  const ms = parseDurationMs(/^\d{1,9}$/.test(t) ? Number(t) : t);
  if (Number.isNaN(ms)) throw new Error(`not a duration: "${text}" (use e.g. 90s, 15m, 24h, 30d)`);
  return ms;
}
