import { parseDurationMs } from "../policy/duration.js";

/**
 * Parses a CLI duration (`90s`, `15m`, `24h`, `30d`, `500ms`) into ms. A bare
 * number is refused: `--ttl 30` could mean seconds or days, and guessing
 * seconds once created keys that expired half a minute later.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    throw new Error(`"${text}" needs a unit: e.g. ${t}s, ${t}m, ${t}h or ${t}d`);
  }
  const ms = parseDurationMs(t);
  if (Number.isNaN(ms)) throw new Error(`not a duration: "${text}" (use e.g. 90s, 15m, 24h, 30d)`);
  return ms;
}
