/**
 * Bounded concurrent load for the fault suite: N workers call a fixed list of
 * probes round-robin through real clients and record every answer (start, end,
 * latency, outcome, decided_locally). Windows of the record are then checked
 * against the case's expectations and summarised for the report.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** What one call answered. */
export type Outcome = "ok" | "denied" | "unavailable" | `error:${string}`;

/** The answer of a probe call that did not throw. */
export interface Answer {
  allowed: boolean;
  decidedLocally: boolean;
  reason: string;
}

/** One kind of request the load sends. */
export interface Probe {
  /** e.g. "valid/open". */
  name: string;
  /** What the key is: a valid, unknown or revoked key, or no key (a subject). */
  key: "valid" | "unknown" | "revoked" | "none";
  /** Policy endpoint called. */
  endpoint: string;
  call(timeoutMs: number): Promise<Answer>;
}

/** One recorded call; times are ms on the performance.now() clock. */
export interface Sample {
  probe: Probe;
  start: number;
  end: number;
  ms: number;
  outcome: Outcome;
  local: boolean;
  reason: string;
}

/** Counts of a window of samples. */
export interface Summary {
  calls: number;
  ok: number;
  denied: number;
  unavailable: number;
  local: number;
  errors: number;
  maxMs: number;
}

/** Client-side deadline of every call: a hang shows up as an error, not a stuck test. */
export const CALL_TIMEOUT_MS = 2_000;

/** Runs probes from `workers` concurrent loops until stopped. */
export class Load {
  readonly samples: Sample[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly probes: Probe[],
    private readonly workers = 8,
  ) {}

  /** Starts the workers (each begins at a different probe). */
  start(): void {
    this.running = true;
    for (let w = 0; w < this.workers; w++) this.loops.push(this.loop(w));
  }

  /** Stops the workers and waits for their last calls. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  private async loop(w: number): Promise<void> {
    for (let i = w; this.running; i++) {
      const probe = this.probes[i % this.probes.length] as Probe;
      this.samples.push(await measure(probe));
    }
  }
}

/** Calls a probe once and records the answer. */
export async function measure(probe: Probe): Promise<Sample> {
  const start = performance.now();
  let outcome: Outcome;
  let local = false;
  let reason = "";
  try {
    const a = await probe.call(CALL_TIMEOUT_MS);
    outcome = a.allowed ? "ok" : "denied";
    local = a.decidedLocally;
    reason = a.reason;
  } catch (err) {
    const code = err instanceof ConnectError ? err.code : Code.Unknown;
    outcome = code === Code.Unavailable ? "unavailable" : `error:${Code[code]}`;
    reason = err instanceof Error ? err.message : String(err);
  }
  const end = performance.now();
  return { probe, start, end, ms: end - start, outcome, local, reason };
}

/** Samples that started in [from, to). */
export function within(samples: Sample[], from: number, to = Number.POSITIVE_INFINITY): Sample[] {
  return samples.filter((s) => s.start >= from && s.start < to);
}

/** Counts a window. */
export function summarize(samples: Sample[]): Summary {
  const s: Summary = { calls: 0, ok: 0, denied: 0, unavailable: 0, local: 0, errors: 0, maxMs: 0 };
  for (const x of samples) {
    s.calls++;
    if (x.outcome === "ok") s.ok++;
    else if (x.outcome === "denied") s.denied++;
    else if (x.outcome === "unavailable") s.unavailable++;
    else s.errors++;
    if (x.local) s.local++;
    s.maxMs = Math.max(s.maxMs, x.ms);
  }
  return s;
}

/**
 * The normal answer of a probe with Redis healthy: a valid key (or a subject
 * under its limit) is allowed, an unknown or revoked key denied — by Redis,
 * not locally.
 */
export function isNormal(s: Sample): boolean {
  if (s.local) return false;
  const allowed = s.probe.key === "valid" || s.probe.key === "none";
  return s.outcome === (allowed ? "ok" : "denied");
}

/**
 * Invariants of every answer, whatever the fault: an unknown or revoked key is
 * never allowed; no error other than UNAVAILABLE; a fail-closed endpoint never
 * decides locally; every answer within `boundMs`. Returns the violations.
 */
export function violations(
  samples: Sample[],
  boundMs: number,
  closedEndpoints: readonly string[] = ["closed", "exact", "subject"],
): string[] {
  const out: string[] = [];
  for (const s of samples) {
    const what = `${s.probe.name} at ${s.start.toFixed(0)} ms`;
    if ((s.probe.key === "unknown" || s.probe.key === "revoked") && s.outcome === "ok")
      out.push(`${what}: ALLOWED an ${s.probe.key} key`);
    if (s.outcome.startsWith("error:")) out.push(`${what}: ${s.outcome} (${s.reason})`);
    if (closedEndpoints.includes(s.probe.endpoint) && s.local)
      out.push(`${what}: decided locally on a fail-closed endpoint`);
    if (s.ms > boundMs) out.push(`${what}: answered in ${s.ms.toFixed(1)} ms > ${boundMs} ms`);
  }
  return out;
}

/**
 * Waits until every probe has answered normally (`isNormal` unless given) for
 * `quietMs` after `since`
 * (or `capMs` passes). Returns the recovery time: from `since` to the end of
 * the last abnormal answer (0 if there was none), or -1 if not recovered.
 */
export async function waitRecovered(
  load: Load,
  since: number,
  o: { normal?: (s: Sample) => boolean; quietMs?: number; capMs?: number } = {},
): Promise<number> {
  const { normal = isNormal, quietMs = 750, capMs = 12_000 } = o;
  for (;;) {
    const now = performance.now();
    const after = load.samples.filter((s) => s.end >= since);
    const bad = after.filter((s) => !normal(s));
    const lastBad = bad.reduce((m, s) => Math.max(m, s.end), since);
    const names = new Set(after.filter((s) => s.start > lastBad).map((s) => s.probe.name));
    const allSeen = load.samples.length === 0 || names.size >= distinctProbes(load.samples);
    if (now - lastBad >= quietMs && allSeen) return lastBad - since;
    if (now - since > capMs) return -1;
    await sleep(50);
  }
}

function distinctProbes(samples: Sample[]): number {
  return new Set(samples.map((s) => s.probe.name)).size;
}

/** setTimeout as a promise. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
