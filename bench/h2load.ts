/**
 * Runs h2load (nghttp2-client) against one URL with a pre-encoded body: one
 * connection (`-c 1`), N concurrent streams (`-m N`), for a fixed duration
 * (`-D`), optionally paced (`--rps`), and bounded by a hard timeout. Parses
 * req/s from its summary and p50/p99 from its per-request log.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

/** What one h2load run measured. */
export interface LoadResult {
  /** Requests per second over the measured duration. */
  rps: number;
  /** Requests that completed with any HTTP status. */
  done: number;
  /** Requests that got no response or a non-2xx status. */
  failed: number;
  /** Latency percentiles, ms. */
  p50Ms: number;
  p99Ms: number;
}

/** Options of one run. */
export interface LoadOptions {
  url: string;
  bodyFile: string;
  headers: string[];
  /** Concurrent streams on the one connection. */
  streams: number;
  durationS: number;
  /** Pace to this many requests/s (h2load --rps, per client); undefined: as fast as possible. */
  rps?: number;
  /** Scratch file for the per-request log. */
  logFile: string;
}

/** Throws with the install hint unless h2load runs. */
export function requireH2load(): void {
  try {
    execFileSync("h2load", ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "h2load not found: the benchmark needs nghttp2's load generator. Install it with: apt-get install -y nghttp2-client",
    );
  }
}

/** Runs h2load once; rejects if it fails or outlives duration + 20 s. */
export function h2load(o: LoadOptions): Promise<LoadResult> {
  const args = [
    "-c",
    "1",
    "-t",
    "1",
    "-m",
    String(o.streams),
    "-D",
    String(o.durationS),
    "-d",
    o.bodyFile,
    "--log-file",
    o.logFile,
    ...o.headers.flatMap((h) => ["-H", h]),
    ...(o.rps !== undefined ? ["--rps", String(Math.max(1, Math.round(o.rps)))] : []),
    o.url,
  ];
  return runH2load(args, o.durationS)
    .then((out) => parse(out, o.logFile))
    .finally(() => rmSync(o.logFile, { force: true }));
}

/**
 * Runs h2load with `args`, resolving to its output (stdout + stderr); rejects
 * if it fails or outlives `durationS` + 20 s (then it is SIGKILLed).
 */
export function runH2load(args: string[], durationS: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), (durationS + 20) * 1000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`h2load ${args.join(" ")} failed (${code ?? signal}):\n${out}`));
    });
  });
}

function parse(out: string, logFile: string): LoadResult {
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out);
  if (!req || Number.isNaN(rps)) throw new Error(`unexpected h2load output:\n${out}`);
  const done = Number(req[3]);
  const non2xx = /status codes: (\d+) 2xx/.exec(out);
  const failed = Number(req[5]) + (non2xx ? done - Number(req[4]) : 0);
  const latencies: number[] = [];
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    const us = Number(line.split("\t")[2]);
    if (line !== "" && Number.isFinite(us)) latencies.push(us / 1000);
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies.length === 0
      ? Number.NaN
      : (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN);
  return { rps, done, failed, p50Ms: pct(0.5), p99Ms: pct(0.99) };
}
