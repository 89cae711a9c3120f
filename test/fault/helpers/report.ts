/**
 * The fault suite's report: one line per case (decisions during the fault,
 * longest answer, time to recover), printed by each file's afterAll and merged
 * into test/fault/RESULTS.md (committed; the README's resilience section copies it)
 * only when TOLLGATE_FAULT_RESULTS=write, so `npm test` leaves the work tree clean.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import type { Summary } from "./load.js";

/** One case's result. */
export interface CaseResult {
  /** Stable case name (the table's first column and merge key). */
  name: string;
  /** Decisions that started during the fault. */
  during: Summary;
  /** Longest answer over the whole case (before, during and after the fault), ms. */
  maxMs: number;
  /** From the fault's end to the last abnormal answer, ms (-1: did not recover). */
  recoveryMs: number;
  /** What the case shows, in a few words. */
  note: string;
}

/** Order of the rows in RESULTS.md. */
const ORDER = [
  "redis SIGKILL + restart",
  "redis CLIENT PAUSE > timeout",
  "SCRIPT FLUSH under load",
  "redis restarted empty",
  "redis down at startup",
  "SIGTERM under load",
  "sentinel failover",
  "cluster master killed",
];

const FILE = new URL("../RESULTS.md", import.meta.url);
const LOCK = new URL("../.results.lock", import.meta.url);

const HEADER = `# Fault suite results

Written by \`test/fault/*.test.ts\` (\`npx vitest run test/fault\`), one row per case: the
built Tollgate as a process, real \`redis-server\` processes (standalone, Sentinel, a 3-master
Cluster), 8 concurrent gRPC callers mixing a valid, an unknown and a revoked key on a
\`fail_mode: open\` and a \`fail_mode: closed\` endpoint. Defaults: command timeout 10 ms,
breaker timeout 50 ms, breaker reset 1 s; key cache TTL 500 ms so the fault outlives it.

- *during*: decisions that started while the fault lasted — ok (allowed) / denied /
  UNAVAILABLE / of which decided locally (\`decided_locally=true\`);
- *max ms*: the longest answer seen by a client over the whole case (before, during, after);
- *recovery ms*: from the end of the fault to the last abnormal answer (a local decision or
  UNAVAILABLE); after it every probe answered normally, from Redis.

Latencies come from a shared 2-core machine with client and server on it: compare them with
the bounds, not across machines.

| case | calls | ok | denied | unavailable | local | max ms | recovery ms | shows |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
`;

function row(r: CaseResult): string {
  const d = r.during;
  const rec = r.recoveryMs < 0 ? "not recovered" : r.recoveryMs.toFixed(0);
  return `| ${r.name} | ${d.calls} | ${d.ok} | ${d.denied} | ${d.unavailable} | ${d.local} | ${r.maxMs.toFixed(1)} | ${rec} | ${r.note} |`;
}

/**
 * Prints the rows and, with TOLLGATE_FAULT_RESULTS=write, merges them into
 * RESULTS.md (rows of other files are kept).
 */
export async function writeResults(results: CaseResult[]): Promise<void> {
  if (results.length === 0) return;
  console.log(
    [
      "fault suite: case | calls ok/denied/unavailable/local during the fault | max ms | recovery ms",
      ...results.map(
        (r) =>
          `  ${r.name}: ${r.during.calls} calls, ${r.during.ok}/${r.during.denied}/${r.during.unavailable}/${r.during.local}, max ${r.maxMs.toFixed(1)} ms, recovery ${r.recoveryMs.toFixed(0)} ms — ${r.note}`,
      ),
    ].join("\n"),
  );
  if (process.env.TOLLGATE_FAULT_RESULTS !== "write") return;
  await withLock(() => {
    const rows = new Map<string, string>();
    try {
      for (const line of readFileSync(FILE, "utf8").split("\n")) {
        const name = /^\| ([^|]+?) \| \d/.exec(line)?.[1];
        if (name && ORDER.includes(name)) rows.set(name, line);
      }
    } catch {
      // first write
    }
    for (const r of results) rows.set(r.name, row(r));
    const body = ORDER.flatMap((n) => (rows.has(n) ? [rows.get(n) as string] : []));
    writeFileSync(FILE, `${HEADER}${body.join("\n")}\n`);
  });
}

async function withLock(fn: () => void): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      mkdirSync(LOCK);
    } catch {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    try {
      fn();
    } finally {
      rmdirSync(LOCK);
    }
    return;
  }
  fn();
}
