/**
 * Turns bench results into a plain-text / Markdown table, the targets with
 * their ratios (met / missed), and the machine description.
 */
import { execFileSync } from "node:child_process";
import { cpus, totalmem } from "node:os";

/** One measured cell: a contender at one stream count. */
export interface Row {
  contender: string;
  protocol: string;
  streams: number;
  rps: number;
  /** req/s ÷ the row's baseline at the same stream count, if it has one. */
  ratio?: number;
  /** Name of that baseline. */
  baseline?: string;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU, % of one core. */
  cpuPct: number;
  /** Redis commands per request, for contenders that use Redis. */
  redisPerRequest?: number;
  failed: number;
  /** RPCs the server answered with a non-OK gRPC / Connect code (Tollgate only). */
  rpcErrors?: number;
  /** req/s of every round (the row shows the median round). */
  rounds?: number[];
}

/** A target and whether it was met. */
export interface Target {
  name: string;
  wanted: string;
  measured: string;
  met: boolean;
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n) ? "–" : n.toFixed(digits);

/** A Markdown table (also readable as plain text). */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [
    line(headers),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.map(line),
  ].join("\n");
}

/** The results table. */
export function resultsTable(rows: Row[]): string {
  return table(
    [
      "contender",
      "protocol",
      "streams",
      "req/s",
      "rounds req/s",
      "× baseline",
      "p50 ms",
      "p99 ms",
      "server CPU %",
      "Redis cmds/req (incl. in scripts)",
      "HTTP failed",
      "RPC errors",
    ],
    rows.map((r) => [
      r.contender,
      r.protocol,
      String(r.streams),
      fmt(r.rps),
      (r.rounds ?? []).map((x) => fmt(x)).join(" "),
      r.ratio === undefined ? "" : `${fmt(r.ratio, 2)} × ${r.baseline}`,
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      fmt(r.cpuPct),
      r.redisPerRequest === undefined ? "" : fmt(r.redisPerRequest, 3),
      String(r.failed),
      r.rpcErrors === undefined ? "" : String(r.rpcErrors),
    ]),
  );
}

/** The targets table. */
export function targetsTable(targets: Target[]): string {
  return table(
    ["target", "wanted", "measured", "result"],
    targets.map((t) => [t.name, t.wanted, t.measured, t.met ? "met" : "**missed**"]),
  );
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { timeout: 5_000 }).toString().trim().split("\n")[0] ?? "?";
  } catch {
    return "?";
  }
}

/** Where and with what the numbers were taken. */
export function machineInfo(): string[] {
  const c = cpus();
  return [
    `CPU: ${c.length} × ${c[0]?.model ?? "?"} (client, servers and Redis share them)`,
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `node ${process.version}, ${version("h2load", ["--version"])}, ${version("redis-server", ["--version"])}`,
    `git: ${version("git", ["rev-parse", "--short", "HEAD"])}, ${new Date().toISOString()}`,
  ];
}
