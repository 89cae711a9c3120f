/**
 * The multi-core row: CheckRateLimit (one limit) on Tollgate with
 * TOLLGATE_WORKERS=2 against the same Tollgate with one worker, both on the
 * bench's Redis with its policy and the shipped defaults otherwise. h2load
 * opens 2 connections (cluster hands them to different workers; one
 * connection would stay on one worker) with 16 streams each; the two
 * contenders alternate in every round and the ratio is the median of the
 * per-round ratios. The target (≥ 1.5) assumes cores to spare: on a 2-core
 * machine h2load and Redis take their share of the same two cores.
 */
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runH2load } from "./h2load.js";
import type { Workload } from "./messages.js";
import { type BenchTollgate, procStats, startTollgate } from "./processes.js";
import type { Row } from "./report.js";

/** The row's name, as run.ts's targets refer to it. */
export const WORKERS_ROW = "CheckRateLimit, 2 workers vs 1 (2 connections)";
/** h2load connections and streams per connection. */
const CONNECTIONS = 2;
const STREAMS = 16;
const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"];

/** What the workers bench needs from the main run. */
export interface WorkersBenchOptions {
  /** Tollgate's settings in the main run (Redis, pepper, policy). */
  env: Record<string, string>;
  /** The CheckRateLimit (1 limit) workload, for a key that exists in that Redis. */
  workload: Workload;
  scratch: string;
  durationS: number;
  rounds: number;
  warmupRequests: number;
}

/**
 * Measures 1 and 2 workers, alternating, and returns the 2-worker row with
 * its ratio to the 1-worker one (baseline "1 worker").
 */
export async function workersBench(o: WorkersBenchOptions): Promise<Row[]> {
  const bodyFile = join(o.scratch, "workers-body.bin");
  writeFileSync(bodyFile, o.workload.grpcBody);
  const log = (n: string) => join(o.scratch, `${n}.log`);
  const one = await startTollgate(o.env, [], undefined, log("workers-1"));
  const two = await startTollgate(
    { ...o.env, TOLLGATE_WORKERS: "2" },
    [],
    undefined,
    log("workers-2"),
  );
  try {
    const runs: { one: Run; two: Run }[] = [];
    for (let round = 0; round < o.rounds; round++) {
      const r1 = await run(one, bodyFile, o);
      const r2 = await run(two, bodyFile, o);
      runs.push({ one: r1, two: r2 });
      console.error(
        `  ${WORKERS_ROW} round ${round + 1}/${o.rounds}: 1 worker ${r1.rps.toFixed(0)} req/s, 2 workers ${r2.rps.toFixed(0)} req/s (${(r2.rps / r1.rps).toFixed(2)} ×)`,
      );
    }
    const byRps = (pick: (x: { one: Run; two: Run }) => Run) =>
      [...runs].sort((a, b) => pick(a).rps - pick(b).rps)[Math.floor(runs.length / 2)] as {
        one: Run;
        two: Run;
      };
    const ratios = runs.map((r) => r.two.rps / r.one.rps).sort((a, b) => a - b);
    const ratio = ratios[Math.floor(ratios.length / 2)] as number;
    const row = (name: string, r: Run, all: Run[], extra: Partial<Row> = {}): Row => ({
      contender: name,
      protocol: "gRPC",
      streams: CONNECTIONS * STREAMS,
      rps: r.rps,
      p50Ms: Number.NaN,
      p99Ms: Number.NaN,
      cpuPct: r.cpuPct,
      failed: all.reduce((n, x) => n + x.failed, 0),
      rounds: all.map((x) => x.rps),
      ...extra,
    });
    return [
      row(
        "CheckRateLimit, 1 worker (2 connections)",
        byRps((x) => x.one).one,
        runs.map((x) => x.one),
      ),
      row(
        WORKERS_ROW,
        byRps((x) => x.two).two,
        runs.map((x) => x.two),
        {
          ratio,
          baseline: "1 worker",
        },
      ),
    ];
  } finally {
    await two.stop();
    await one.stop();
  }
}

interface Run {
  rps: number;
  failed: number;
  /** CPU of the primary and its workers, % of one core. */
  cpuPct: number;
}

/** Warms `t` up, then one measured h2load run over 2 connections. */
async function run(t: BenchTollgate, bodyFile: string, o: WorkersBenchOptions): Promise<Run> {
  const url = `http://127.0.0.1:${t.port}${o.workload.path}`;
  const common = ["-c", String(CONNECTIONS), "-m", String(STREAMS), "-d", bodyFile];
  const headers = GRPC_HEADERS.flatMap((h) => ["-H", h]);
  await new Promise<void>((resolve, reject) =>
    execFile(
      "h2load",
      [...common, "-n", String(o.warmupRequests), ...headers, url],
      { timeout: 60_000 },
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  const cpu0 = treeCpuSeconds(t.pid);
  const t0 = process.hrtime.bigint();
  const out = await runH2load([...common, "-D", String(o.durationS), ...headers, url], o.durationS);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = treeCpuSeconds(t.pid);
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded/.exec(out);
  if (!req || Number.isNaN(rps)) throw new Error(`unexpected h2load output:\n${out}`);
  return { rps, failed: Number(req[3]) - Number(req[4]), cpuPct: ((cpu1 - cpu0) / wall) * 100 };
}

/** CPU seconds of `pid` and its children (a primary and its workers). */
function treeCpuSeconds(pid: number): number {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // No children file (an old kernel): the primary alone.
  }
  return [pid, ...children].reduce((n, p) => n + procStats(p).cpuSeconds, 0);
}
