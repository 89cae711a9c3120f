/**
 * What the console's overview counts from the live feed: decisions per second
 * over the last minute, allows and denials by reason, and the most denied key
 * ids and client IPs over the last hour. Memory is bounded whatever the
 * traffic: the hour is 60 one-minute buckets and each bucket tallies at most
 * TALLY_ENTRIES_PER_MINUTE distinct keys and as many IPs; a subject first seen
 * in a full bucket is counted under `other` (so totals stay exact).
 */
import type { DecisionLine } from "../decision/decision-feed.js";

/** Distinct subjects (keys, and separately IPs) a one-minute bucket tallies. */
export const TALLY_ENTRIES_PER_MINUTE = 200;
/** Minutes the top-denied lists look back. */
export const TALLY_MINUTES = 60;
/** Seconds of the decisions-per-second series. */
export const RATE_SECONDS = 60;

interface Minute {
  /** Epoch minute this bucket holds. */
  minute: number;
  keys: Map<string, number>;
  ips: Map<string, number>;
  /** Denials of subjects a full bucket could not name. */
  otherKeys: number;
  otherIps: number;
}

/** One row of a top list. */
export interface TopEntry {
  subject: string;
  denials: number;
}

/** What the overview shows. */
export interface TallySnapshot {
  /** Decisions per second, oldest first, one per second of the last RATE_SECONDS. */
  perSecond: { at: number; allowed: number; denied: number }[];
  /** Decisions by reason since the console started ("OK" counts allows). */
  byReason: Record<string, number>;
  topDeniedKeys: TopEntry[];
  topDeniedIps: TopEntry[];
  /** Denials of the last hour not attributed to a named subject (bucket full). */
  otherDenials: { keys: number; ips: number };
}

/** Bounded in-process counters fed with decision lines. */
export class DenialTally {
  private readonly minutes: Minute[] = [];
  private readonly seconds = new Map<number, { allowed: number; denied: number }>();
  private readonly reasons = new Map<string, number>();

  /** Counts one decision. */
  add(line: DecisionLine): void {
    const sec = Math.floor(line.at / 1000);
    const s = this.seconds.get(sec) ?? { allowed: 0, denied: 0 };
    if (line.allowed) s.allowed++;
    else s.denied++;
    this.seconds.set(sec, s);
    for (const k of this.seconds.keys()) if (k <= sec - RATE_SECONDS) this.seconds.delete(k);
    // Reasons are a closed enum of the decision engine, so this map stays small.
    this.reasons.set(line.reason, (this.reasons.get(line.reason) ?? 0) + 1);
    if (line.allowed) return;
    const m = this.bucket(Math.floor(line.at / 60_000));
    if (line.keyId) {
      if (m.keys.has(line.keyId) || m.keys.size < TALLY_ENTRIES_PER_MINUTE)
        m.keys.set(line.keyId, (m.keys.get(line.keyId) ?? 0) + 1);
      else m.otherKeys++;
    }
    if (line.clientIp) {
      if (m.ips.has(line.clientIp) || m.ips.size < TALLY_ENTRIES_PER_MINUTE)
        m.ips.set(line.clientIp, (m.ips.get(line.clientIp) ?? 0) + 1);
      else m.otherIps++;
    }
  }

  /** The overview's numbers at `now` (epoch ms), the top lists `top` long. */
  snapshot(now: number, top = 10): TallySnapshot {
    const sec = Math.floor(now / 1000);
    const perSecond = [];
    for (let t = sec - RATE_SECONDS + 1; t <= sec; t++) {
      const s = this.seconds.get(t);
      perSecond.push({ at: t * 1000, allowed: s?.allowed ?? 0, denied: s?.denied ?? 0 });
    }
    const fresh = this.minutes.filter((m) => m.minute > Math.floor(now / 60_000) - TALLY_MINUTES);
    return {
      perSecond,
      byReason: Object.fromEntries(this.reasons),
      topDeniedKeys: topOf(
        fresh.map((m) => m.keys),
        top,
      ),
      topDeniedIps: topOf(
        fresh.map((m) => m.ips),
        top,
      ),
      otherDenials: {
        keys: fresh.reduce((n, m) => n + m.otherKeys, 0),
        ips: fresh.reduce((n, m) => n + m.otherIps, 0),
      },
    };
  }

  /** Distinct subjects held now, all buckets together (the bound's witness). */
  get entries(): number {
    return this.minutes.reduce((n, m) => n + m.keys.size + m.ips.size, 0);
  }

  private bucket(minute: number): Minute {
    const last = this.minutes[this.minutes.length - 1];
    if (last && last.minute === minute) return last;
    const m: Minute = { minute, keys: new Map(), ips: new Map(), otherKeys: 0, otherIps: 0 };
    this.minutes.push(m);
    while (this.minutes.length > TALLY_MINUTES) this.minutes.shift();
    return m;
  }
}

function topOf(maps: Map<string, number>[], n: number): TopEntry[] {
  const sum = new Map<string, number>();
  for (const m of maps) for (const [k, v] of m) sum.set(k, (sum.get(k) ?? 0) + v);
  return [...sum]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, n)
    .map(([subject, denials]) => ({ subject, denials }));
}
