/** Parses `90s`, `15m`, `24h`, `30d` or a plain number of seconds into ms. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`not a duration: "${text}" (use e.g. 90s, 15m, 24h, 30d)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"] as number;
  return n * unit;
}
