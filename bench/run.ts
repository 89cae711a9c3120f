/**
 * `npm run bench` — Tollgate against its baselines in one run on this machine.
 *
 * Starts a private redis-server, Tollgate (`dist/cli/main.js serve`, bench
 * policy, Redis store), a bare grpc-js echo, a bare connect-node echo and a
 * grpc-js + rate-limiter-flexible server, all on 127.0.0.1. Loads each with
 * h2load (one connection, N streams, fixed duration), alternating contenders
 * at each stream count, and reports req/s, p50/p99, server CPU and Redis
 * commands per request, with ratios to the baselines measured in the same run
 * (absolute numbers on a shared 2-core machine are noise; ratios are not).
 *
 *   npm run bench                 full run; writes docs/benchmarks.md
 *   npm run bench -- --quick      < 60 s, 16 streams only, prints only (CI)
 *   npm run bench -- --duration 5 --no-memory
 *   npm run bench -- --quick --ab /path/to/other/dist
 *                                 also loads a Tollgate built from another
 *                                 commit (same Redis, same key), each row a
 *                                 ratio to this build's: a regression check
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type DescMessage, fromBinary, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CheckResponseSchema } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  RateLimitResponse_Code,
  RateLimitResponseSchema,
} from "../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeResponseSchema,
  CheckRateLimitResponseSchema,
  TollgateService,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { ADMISSION_ROW, type Admission, admissionBench } from "./batched.js";
import { h2load, requireH2load } from "./h2load.js";
import { distinctRun, type MemoryResult } from "./memory.js";
import {
  authorizeInit,
  batchedWorkload,
  echoWorkload,
  rlfWorkload,
  tollgateWorkloads,
  type Workload,
} from "./messages.js";
import { probe, unframe } from "./probe.js";
import {
  type BenchRedis,
  type BenchTollgate,
  procStats,
  type Started,
  startBenchServer,
  startRedis,
  startTollgate,
} from "./processes.js";
import { type RedisCeiling, redisCeiling } from "./redis-ceiling.js";
import { machineInfo, type Row, resultsTable, type Target, table, targetsTable } from "./report.js";
import { WORKERS_ROW, workersBench } from "./workers.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const { values: opts } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    duration: { type: "string" },
    "no-memory": { type: "boolean", default: false },
    "memory-count": { type: "string", default: "1000000" },
    "memory-time": { type: "string", default: "150" },
    out: { type: "string", default: join(ROOT, "docs/benchmarks.md") },
    ab: { type: "string" },
    rounds: { type: "string" },
    only: { type: "string" },
    set: { type: "string", multiple: true },
  },
});
/**
 * --set NAME=VALUE (repeatable): a setting given to every Tollgate of the run,
 * for like-for-like A/B runs of builds whose defaults differ. Off the shipped
 * defaults, the report says so and the line-rate targets do not apply.
 */
const SETS: Record<string, string> = Object.fromEntries(
  (opts.set ?? []).map((kv) => {
    const i = kv.indexOf("=");
    if (i <= 0 || !kv.startsWith("TOLLGATE_"))
      throw new Error(`--set ${kv}: want TOLLGATE_NAME=VALUE`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);
const QUICK = opts.quick;
const DURATION_S = Number(opts.duration ?? (QUICK ? 2 : 8));
const LEVELS = QUICK ? [16] : [1, 16, 64];
/**
 * Times each contender is measured at each stream count, the contenders
 * alternating within a round. A row shows its median round; its ratio is the
 * median of its per-round ratios to the baseline measured beside it in the
 * same round (neighbours see the same machine load, so pairs cancel drift).
 */
const ROUNDS = Number(opts.rounds ?? (QUICK ? 1 : 3));
/** --only <regex>: measure only the contenders whose name matches (e.g. an A/B of a few rows). */
const ONLY = opts.only === undefined ? undefined : new RegExp(opts.only);
/** Requests sent before each measured run (JIT, caches, connections). */
const WARMUP_REQUESTS = QUICK ? 1_000 : 3_000;
/** Requests watched with MONITOR to count Redis commands per request. */
const TRIP_REQUESTS = 2_000;
/** TOLLGATE_CACHE_MAX_ENTRIES's default (the bench runs Tollgate with its defaults). */
const CACHE_MAX_ENTRIES = 100_000;
const PEPPER = "bench-pepper-not-a-secret-0123456789";
const GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"];
const JSON_HEADERS = ["content-type: application/json"];

type Protocol = "gRPC" | "Connect JSON";
/** A baseline server, or (with --ab) this build's row of the same workload (its name). */
type Baseline = "grpc-js echo" | "connect-node echo" | "rate-limiter-flexible" | (string & {});

/** One thing h2load loads. */
interface Contender {
  name: string;
  protocol: Protocol;
  base: string;
  workload: Workload;
  bodyFile: string;
  proc: Started;
  /** Count Redis commands per request. */
  usesRedis: boolean;
  baseline?: Baseline;
}

const OUTPUTS: Record<string, { schema: DescMessage; ok: (m: never) => boolean }> = {
  Authorize: { schema: AuthorizeResponseSchema, ok: (m: { allowed: boolean }) => m.allowed },
  CheckRateLimit: {
    schema: CheckRateLimitResponseSchema,
    ok: (m: { allowed: boolean }) => m.allowed,
  },
  Check: {
    schema: CheckResponseSchema,
    ok: (m: { status?: { code: number } }) => (m.status?.code ?? 0) === 0,
  },
  ShouldRateLimit: {
    schema: RateLimitResponseSchema,
    ok: (m: { overallCode: RateLimitResponse_Code }) => m.overallCode === RateLimitResponse_Code.OK,
  },
};

/** Sends the contender's body once and throws unless the answer is an allowed decision. */
async function verify(c: Contender): Promise<void> {
  const grpc = c.protocol === "gRPC";
  const r = await probe(c.base, c.workload.path, grpc ? c.workload.grpcBody : c.workload.jsonBody, {
    "content-type": grpc ? "application/grpc" : "application/json",
    ...(grpc && { te: "trailers" }),
  });
  const what = `${c.name} (${c.protocol})`;
  if (r.httpStatus !== 200 || (grpc && r.grpcStatus !== "0"))
    throw new Error(
      `${what}: HTTP ${r.httpStatus}, grpc-status ${r.grpcStatus} ${r.grpcMessage ?? ""} ${r.body.toString().slice(0, 300)}`,
    );
  const method = c.workload.path.slice(c.workload.path.lastIndexOf("/") + 1);
  const out = OUTPUTS[method];
  if (!out) throw new Error(`no output check for ${method}`);
  const msg = grpc
    ? fromBinary(out.schema, unframe(r.body))
    : fromJsonString(out.schema, r.body.toString(), { ignoreUnknownFields: true });
  if (!out.ok(msg as never))
    throw new Error(`${what}: not an allowed decision: ${toJsonString(out.schema, msg)}`);
}

/** One h2load run of `c` with server CPU and Redis command deltas. */
async function measure(
  c: Contender,
  redis: BenchRedis,
  scratch: string,
  streams: number,
  durationS: number,
  rps?: number,
): Promise<Omit<Row, "ratio" | "baseline">> {
  const load = (d: number, r?: number) =>
    h2load({
      url: `${c.base}${c.workload.path}`,
      bodyFile: c.bodyFile,
      headers: c.protocol === "gRPC" ? GRPC_HEADERS : JSON_HEADERS,
      streams,
      durationS: d,
      logFile: join(scratch, "h2load.log"),
      ...(r !== undefined && { rps: r }),
    });
  const cpu0 = procStats(c.proc.pid).cpuSeconds;
  const calls0 = c.usesRedis ? await redis.commandCalls() : 0;
  const t0 = process.hrtime.bigint();
  const res = await load(durationS, rps);
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = procStats(c.proc.pid).cpuSeconds;
  const calls1 = c.usesRedis ? await redis.commandCalls() : 0;
  return {
    contender: c.name,
    protocol: c.protocol,
    streams,
    rps: res.rps,
    p50Ms: res.p50Ms,
    p99Ms: res.p99Ms,
    cpuPct: ((cpu1 - cpu0) / wall) * 100,
    ...(c.usesRedis && { redisPerRequest: res.done > 0 ? (calls1 - calls0) / res.done : 0 }),
    failed: res.failed,
  };
}

/** Sends `n` requests with h2load, unmeasured (warm-up, round-trip counting). */
function send(c: Contender, n: number): Promise<void> {
  const args = [
    "-c",
    "1",
    "-m",
    "16",
    "-n",
    String(n),
    "-d",
    c.bodyFile,
    ...(c.protocol === "gRPC" ? GRPC_HEADERS : JSON_HEADERS).flatMap((h) => ["-H", h]),
    `${c.base}${c.workload.path}`,
  ];
  return new Promise((resolve, reject) =>
    execFile("h2load", args, { timeout: 60_000 }, (err, stdout) =>
      err ? reject(new Error(`h2load ${c.name} failed: ${err.message}\n${stdout}`)) : resolve(),
    ),
  );
}

/** Redis commands per request of one contender, by command, split client-issued / inside scripts. */
interface Trips {
  /** Client-issued commands (round trips, pipelined or not) per request, periodic ones left out. */
  perRequest: number;
  /** e.g. "evalsha 1.00, get 0.01". */
  breakdown: string;
  /** Commands run inside Lua scripts per request. */
  inScripts: string;
}

/**
 * Commands Tollgate sends on timers rather than per decision: the health ping
 * (every 500 ms), the usage counters' batched flush (HINCRBY + PEXPIRE), the
 * store-marker watch (GET / SET).
 */
const PERIODIC_COMMANDS: ReadonlySet<string> = new Set([
  "ping",
  "hincrby",
  "pexpire",
  "get",
  "set",
]);

/**
 * Counts with MONITOR the Redis commands `n` requests of `c` cause. ioredis's
 * monitor connection can report a "Command queue state error" (a monitor line
 * it cannot match, e.g. one of the health pings arriving as it connects) and
 * drops that line: the count is then not trusted and is taken again, once.
 */
async function roundTrips(c: Contender, redis: BenchRedis, n: number): Promise<Trips> {
  for (let attempt = 1; ; attempt++) {
    const counted = await countCommands(c, redis, n);
    if (counted.error === undefined) return counted.trips;
    if (attempt === 2) throw counted.error;
    console.error(
      `  ${c.name} (${c.protocol}): MONITOR failed (${counted.error.message}); counting again`,
    );
  }
}

async function countCommands(
  c: Contender,
  redis: BenchRedis,
  n: number,
): Promise<{ trips: Trips; error?: Error }> {
  const monitor = await redis.client.monitor();
  let error: Error | undefined;
  monitor.on("error", (err: Error) => {
    error ??= err;
  });
  const top = new Map<string, number>();
  const lua = new Map<string, number>();
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    const cmd = String(args[0] ?? "").toLowerCase();
    if (cmd === "info" || cmd === "monitor") return;
    const m = source === "lua" ? lua : top;
    m.set(cmd, (m.get(cmd) ?? 0) + 1);
  });
  try {
    await send(c, n);
    await new Promise((r) => setTimeout(r, 300)); // let the monitor stream drain
  } finally {
    // Errors after this point (lines still arriving as it closes) change no count.
    const seen = error;
    monitor.disconnect();
    error = seen;
  }
  const fmt = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${(v / n).toFixed(2)}`)
      .join(", ") || "none";
  // Commands on timers, not per request, from every process on this Redis
  // (MONITOR sees all): health pings, the batched usage-counter flush, the
  // store-marker watch. Shown in the breakdown, not counted as round trips.
  const total = [...top.entries()]
    .filter(([cmd]) => !PERIODIC_COMMANDS.has(cmd))
    .reduce((a, [, v]) => a + v, 0);
  const trips = { perRequest: total / n, breakdown: fmt(top), inScripts: fmt(lua) };
  return error === undefined ? { trips } : { trips, error };
}

/** Non-OK RPCs Tollgate counted so far (from /metrics). */
async function tollgateErrors(t: BenchTollgate): Promise<number> {
  let n = 0;
  for (const l of (await t.metrics()).split("\n"))
    if (l.startsWith("tollgate_rpc_duration_seconds_count") && !l.includes('code="ok"'))
      n += Number(l.slice(l.lastIndexOf(" ") + 1));
  return n;
}

/** This build's rate-limited workloads (compared with rate-limiter-flexible too). */
const RATE_LIMITED =
  /^(CheckRateLimit \(\d limits?\)|CheckRateLimit \(batched limit\)|Authorize \(apply_limits\)|Envoy Check|Envoy ShouldRateLimit)$/;
/** The batched row (bench/policy.yaml tier bench-batched). */
const BATCHED_ROW = "CheckRateLimit (batched limit)";

/** The median of ascending-sorted numbers. */
function median(sorted: number[]): number {
  const m = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[m] as number)
    : ((sorted[m - 1] as number) + (sorted[m] as number)) / 2;
}

function rowKey(name: string, protocol: string, streams: number) {
  return `${name}|${protocol}|${streams}`;
}

function evaluateTargets(
  rows: Row[],
  halfLoad: { name: string; rate: number; p99: number; echoP99: number }[],
  memory: { results: MemoryResult[]; before: number } | undefined,
  trips: Map<string, Trips>,
  admission: Admission | undefined,
): Target[] {
  const at = (name: string, protocol: string, streams: number) =>
    rows.find((r) => r.contender === name && r.protocol === protocol && r.streams === streams);
  const measuredLevels = new Set(rows.map((r) => r.streams));
  /** `name`'s ratio to `baseline` (the row's paired median) at each of `levels` measured. */
  const ratioTarget = (
    name: string,
    protocol: Protocol,
    baseline: string,
    min: number,
    levels: number[],
  ): Target => {
    const rowName = baseline === "rate-limiter-flexible" ? `${name} vs DIY` : name;
    const parts = levels
      .filter((s) => measuredLevels.has(s))
      .map((s) => ({ s, ratio: at(rowName, protocol, s)?.ratio ?? Number.NaN }));
    return {
      name: `${name} ${protocol} @${levels.join("/")}`,
      wanted: `≥ ${min.toFixed(2)} × ${baseline}`,
      measured: parts.map((p) => `${p.ratio.toFixed(2)} @${p.s}`).join(", "),
      met: parts.length > 0 && parts.every((p) => p.ratio >= min),
    };
  };
  const all = [1, 16, 64];
  const targets: Target[] = [
    ratioTarget("Authorize (cached key)", "gRPC", "grpc-js echo", 0.85, all),
    ratioTarget("CheckRateLimit (1 limit)", "gRPC", "rate-limiter-flexible", 1.0, all),
    ratioTarget("CheckRateLimit (2 limits)", "gRPC", "rate-limiter-flexible", 0.9, all),
    ratioTarget("Authorize (apply_limits)", "gRPC", "rate-limiter-flexible", 0.9, [16, 64]),
    ratioTarget("Envoy Check", "gRPC", "rate-limiter-flexible", 0.9, [16, 64]),
    ratioTarget("Envoy ShouldRateLimit", "gRPC", "rate-limiter-flexible", 0.9, [16, 64]),
    ratioTarget(WORKERS_ROW, "gRPC", "1 worker", 1.5, [32]),
    ratioTarget(BATCHED_ROW, "gRPC", "grpc-js echo", 0.85, [16, 64]),
    ratioTarget(BATCHED_ROW, "gRPC", "rate-limiter-flexible", 2.0, [16, 64]),
  ];
  const batchedTrips = trips.get(`${BATCHED_ROW}|gRPC`)?.perRequest ?? Number.NaN;
  targets.push({
    name: `Redis commands per decision: ${BATCHED_ROW}`,
    wanted: "≤ 0.05 per decision",
    measured: `${batchedTrips.toFixed(4)} client commands/req`,
    met: batchedTrips <= 0.05,
  });
  if (admission) {
    const low = admission.limit - admission.bound;
    targets.push({
      name: ADMISSION_ROW,
      wanted: `admitted within [limit − bound, limit] = [${low}, ${admission.limit}] (bound from check-config, 3 replicas); Redis counts the admitted`,
      measured: `admitted ${admission.admitted} of ${admission.limit} (bound ${admission.bound}: ${admission.limit - admission.admitted} under the limit, 0 over); Redis counted ${admission.counted}; ${admission.seconds.toFixed(1)} s`,
      met:
        admission.admitted <= admission.limit &&
        admission.admitted >= low &&
        admission.counted === admission.admitted,
    });
  }
  for (const w of tollgateWorkloads("x", "x", "x"))
    targets.push(ratioTarget(w.name, "Connect JSON", "connect-node echo", 0.85, all));
  // p50 at one stream in flight, against rate-limiter-flexible's.
  const rlf1 = at("rate-limiter-flexible", "gRPC", 1);
  if (rlf1)
    for (const w of tollgateWorkloads("x", "x", "x").filter((x) => RATE_LIMITED.test(x.name))) {
      const r = at(w.name, "gRPC", 1);
      targets.push({
        name: `p50 at 1 stream: ${w.name} gRPC`,
        wanted: "≤ 1.20 × rate-limiter-flexible's p50",
        measured: `${r?.p50Ms.toFixed(3)} ms vs ${rlf1.p50Ms.toFixed(3)} ms (${((r?.p50Ms ?? Number.NaN) / rlf1.p50Ms).toFixed(2)} ×)`,
        met: r !== undefined && r.p50Ms <= 1.2 * rlf1.p50Ms,
      });
    }
  const ab = rows.filter((r) => r.contender.endsWith("(other build)"));
  if (ab.length > 0) {
    const worse = ab.filter(
      (r) => (r.ratio ?? Number.NaN) > 1 || Number.isNaN(r.ratio ?? Number.NaN),
    );
    const geo = Math.exp(ab.reduce((n, r) => n + Math.log(r.ratio ?? 1), 0) / ab.length);
    targets.push({
      name: "no regression against the --ab build",
      wanted: "other ÷ this ≤ 1.00 on every row (median of paired rounds)",
      measured: `geometric mean ${geo.toFixed(3)}; rows above 1: ${worse.map((r) => `${r.contender.replace(" (other build)", "")} ${r.protocol} @${r.streams} ${r.ratio?.toFixed(3)}`).join("; ") || "none"}`,
      met: worse.length === 0,
    });
  }
  const errors = rows.reduce((n, r) => n + (r.rpcErrors ?? 0), 0);
  const changed = Object.entries(SETS).map(([k, v]) => `${k}=${v}`);
  targets.push({
    name: "Tollgate with its shipped defaults (the targets hold only so)",
    wanted: "no --set",
    measured: changed.length === 0 ? "defaults" : changed.join(", "),
    met: changed.length === 0,
  });
  targets.push({
    name: "RPC errors in the whole run (healthy Redis, default settings)",
    wanted: "0",
    measured: String(errors),
    met: errors === 0,
  });
  for (const w of tollgateWorkloads("x", "x", "x")) {
    const cached = w.name.startsWith("Authorize (cached");
    const values = (["gRPC", "Connect JSON"] as const).map(
      (p) => trips.get(`${w.name}|${p}`)?.perRequest ?? Number.NaN,
    );
    targets.push({
      name: `Redis round trips: ${w.name}`,
      wanted: cached ? "0 per decision" : "exactly 1 per decision",
      measured: `${values.map((v) => v.toFixed(3)).join(" (gRPC), ")} (Connect) client commands/req`,
      met: values.every((v) => (cached ? v < 0.01 : Math.abs(v - 1) < 0.02)),
    });
  }
  for (const h of halfLoad)
    targets.push({
      name: `p99 at half of peak: ${h.name} gRPC`,
      wanted: "< 2 × grpc-js echo p99 at the same rate",
      measured: `${h.p99.toFixed(2)} ms vs ${h.echoP99.toFixed(2)} ms at ${h.rate.toFixed(0)} req/s (${(h.p99 / h.echoP99).toFixed(2)} ×)`,
      met: h.p99 < 2 * h.echoP99,
    });
  if (memory)
    for (const m of memory.results) {
      const third = m.samples.find((s) => s.sent >= m.sent * 0.3);
      const last = m.samples.at(-1);
      const growth = third && last ? last.rssBytes - third.rssBytes : Number.NaN;
      targets.push({
        name: `memory: ${m.sent} distinct ${m.name}`,
        wanted: `peak RSS flat once the ${CACHE_MAX_ENTRIES}-entry cache is full`,
        measured: `peak ${mb(m.peakRssBytes)} MB (idle ${mb(memory.before)} MB); RSS ${mb(third?.rssBytes)} MB at 30 % → ${mb(last?.rssBytes)} MB at end`,
        met: growth < 0.1 * (third?.rssBytes ?? 0),
      });
    }
  return targets;
}

/** Calls `fn` until it resolves, every 100 ms for up to 5 s. */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const mb = (b: number | undefined) => (b === undefined ? "?" : (b / 2 ** 20).toFixed(0));

async function main(): Promise<void> {
  requireH2load();
  const began = Date.now();
  const scratch = mkdtempSync(join(tmpdir(), "tollgate-bench-"));
  const procs: Started[] = [];
  let sink: OtlpSink | undefined;
  try {
    const redis = await startRedis();
    procs.push(redis);
    const tollgateEnv = {
      REDIS_URL: redis.url,
      TOLLGATE_PEPPER: PEPPER,
      TOLLGATE_POLICY_FILE: join(ROOT, "bench/policy.yaml"),
      ...SETS,
    };
    // Shipped defaults otherwise (the access log included); each Tollgate's
    // log goes to a file, as a container runtime would take it.
    const logFile = (n: string) => join(scratch, `${n}.log`);
    const tollgate: BenchTollgate = await startTollgate(
      tollgateEnv,
      [],
      undefined,
      logFile("tollgate"),
    );
    procs.push(tollgate);
    const grpcBase = `http://127.0.0.1:${tollgate.port}`;
    const httpBase = `http://127.0.0.1:${tollgate.httpPort}`;

    // The key, created through KeyService like any operator would.
    const transport = createGrpcTransport({ baseUrl: grpcBase });
    // /readyz does not wait for Redis: retry the first store call for a few seconds.
    const created = await retry(() =>
      createClient(KeyService, transport).createKey({
        owner: "acme",
        tier: "bench",
        scopes: ["items:read"],
      }),
    );
    const keyId = created.key?.id ?? "";
    const secret = created.secret;
    // A key of tier `bench1` (one limit): the like-for-like rate-limiter-flexible comparison.
    const oneLimit = await createClient(KeyService, transport).createKey({
      owner: "acme",
      tier: "bench1",
      scopes: ["items:read"],
    });
    const oneLimitKeyId = oneLimit.key?.id ?? "";
    // A key of tier `bench-batched`: its one limit is decided from allotments.
    const batchedKey = await createClient(KeyService, transport).createKey({
      owner: "acme",
      tier: "bench-batched",
      scopes: ["items:read"],
    });
    // The echo servers answer with the very response Tollgate gives.
    const authorized = await createClient(TollgateService, transport).authorize(
      authorizeInit(secret, false),
    );
    const responseFile = join(scratch, "authorize-response.json");
    writeFileSync(responseFile, toJsonString(AuthorizeResponseSchema, authorized));

    const echoGrpc = await startBenchServer("echo-grpc", ["--response", responseFile]);
    const echoConnect = await startBenchServer("echo-connect", ["--response", responseFile]);
    const rlf = await startBenchServer("rlf-server", ["--redis", redis.url]);
    procs.push(echoGrpc, echoConnect, rlf);

    const contenders: Contender[] = [];
    const add = (
      name: string,
      protocol: Protocol,
      base: string,
      workload: Workload,
      proc: Started,
      usesRedis: boolean,
      baseline?: Baseline,
    ) => {
      const bodyFile = join(scratch, `body-${contenders.length}.bin`);
      writeFileSync(bodyFile, protocol === "gRPC" ? workload.grpcBody : workload.jsonBody);
      contenders.push({
        name,
        protocol,
        base,
        workload,
        bodyFile,
        proc,
        usesRedis,
        ...(baseline && { baseline }),
      });
    };
    const echo = echoWorkload(secret);
    add("grpc-js echo", "gRPC", `http://127.0.0.1:${echoGrpc.port}`, echo, echoGrpc, false);
    add(
      "connect-node echo",
      "Connect JSON",
      `http://127.0.0.1:${echoConnect.port}`,
      echo,
      echoConnect,
      false,
    );
    add(
      "connect-node echo",
      "gRPC",
      `http://127.0.0.1:${echoConnect.port}`,
      echo,
      echoConnect,
      false,
    );
    add(
      "rate-limiter-flexible",
      "gRPC",
      `http://127.0.0.1:${rlf.port}`,
      rlfWorkload(keyId),
      rlf,
      true,
    );
    for (const w of tollgateWorkloads(secret, keyId, oneLimitKeyId)) {
      add(w.name, "gRPC", grpcBase, w, tollgate, true, "grpc-js echo");
      add(w.name, "Connect JSON", httpBase, w, tollgate, true, "connect-node echo");
    }
    add(
      BATCHED_ROW,
      "gRPC",
      grpcBase,
      batchedWorkload(batchedKey.key?.id ?? ""),
      tollgate,
      true,
      "grpc-js echo",
    );
    // The cost of tracing when on: a second Tollgate (same Redis, same keys)
    // exporting a span for every request (no traceparent, sampled at 1) to an
    // OTLP/HTTP receiver that discards them.
    /**
     * A variant Tollgate (same Redis, same keys, `env` on top) whose gRPC
     * rows for `workloads` are named `<workload>, <suffix>`.
     */
    const variant = async (suffix: string, env: Record<string, string>, workloads: string[]) => {
      const t: BenchTollgate = await startTollgate(
        { ...tollgateEnv, ...env },
        [],
        undefined,
        logFile(suffix.replaceAll(" ", "-")),
      );
      procs.push(t);
      for (const w of tollgateWorkloads(secret, keyId, oneLimitKeyId)) {
        if (!workloads.includes(w.name)) continue;
        add(
          `${w.name}, ${suffix}`,
          "gRPC",
          `http://127.0.0.1:${t.port}`,
          w,
          t,
          true,
          "grpc-js echo",
        );
      }
      return t;
    };
    sink = await startOtlpSink();
    const traced = await variant(
      "traced",
      { TOLLGATE_OTLP_TRACES_URL: `http://127.0.0.1:${sink.port}/v1/traces` },
      ["Authorize (cached key)", "CheckRateLimit (2 limits)"],
    );
    // The cost of an access line per decision (TOLLGATE_ACCESS_LOG=all; the
    // default logs denials and 1 % of allowed decisions), its log to a file
    // as a container runtime would take it.
    const logsAll = await variant("access log all", { TOLLGATE_ACCESS_LOG: "all" }, [
      "Authorize (cached key)",
      "CheckRateLimit (1 limit)",
    ]);
    const tollgates: Started[] = [tollgate, traced, logsAll];
    // --ab: the same workloads on a Tollgate built from another commit, each
    // row compared with this build's, alternating like every contender.
    if (opts.ab) {
      const other: BenchTollgate = await startTollgate(
        tollgateEnv,
        [],
        join(opts.ab, "cli/main.js"),
        logFile("other"),
      );
      procs.push(other);
      tollgates.push(other);
      const grpc = `http://127.0.0.1:${other.port}`;
      const http = `http://127.0.0.1:${other.httpPort}`;
      // Like this build's, its /readyz does not wait for Redis.
      const otherTollgate = createClient(TollgateService, createGrpcTransport({ baseUrl: grpc }));
      await retry(() => otherTollgate.authorize(authorizeInit(secret, false)));
      for (const w of tollgateWorkloads(secret, keyId, oneLimitKeyId)) {
        add(`${w.name} (other build)`, "gRPC", grpc, w, other, true, w.name);
        add(`${w.name} (other build)`, "Connect JSON", http, w, other, true, w.name);
      }
      // Each other-build row right after this build's: the machine's load
      // drifts over a run, and adjacent rows see the same drift.
      for (const o of contenders.filter((c) => c.proc === other)) {
        contenders.splice(contenders.indexOf(o), 1);
        const mine = contenders.findIndex(
          (c) => c.name === o.baseline && c.protocol === o.protocol,
        );
        contenders.splice(mine + 1, 0, o);
      }
    }
    if (ONLY)
      contenders.splice(0, contenders.length, ...contenders.filter((c) => ONLY.test(c.name)));
    for (const c of contenders) await verify(c);
    console.error(
      `bench: ${contenders.length} contenders verified; ${LEVELS.length} stream count(s) × ${ROUNDS} round(s) × ${DURATION_S} s each`,
    );

    const trips = new Map<string, Trips>();
    for (const c of contenders) {
      if (!c.usesRedis) continue;
      await send(c, WARMUP_REQUESTS);
      trips.set(`${c.name}|${c.protocol}`, await roundTrips(c, redis, TRIP_REQUESTS));
    }

    // Every round of every row, by rowKey; a round's rows are measured back to back.
    const rounds = new Map<string, Row[]>();
    for (const streams of LEVELS) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const c of contenders) {
          await send(c, WARMUP_REQUESTS);
          const t = tollgates.includes(c.proc) ? (c.proc as BenchTollgate) : undefined;
          const errors0 = t ? await tollgateErrors(t) : 0;
          const r: Row = await measure(c, redis, scratch, streams, DURATION_S);
          if (t) r.rpcErrors = (await tollgateErrors(t)) - errors0;
          const key = rowKey(r.contender, r.protocol, streams);
          rounds.set(key, [...(rounds.get(key) ?? []), r]);
          console.error(
            `  ${c.name} (${c.protocol}) @${streams} round ${round + 1}/${ROUNDS}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms${r.rpcErrors ? `, ${r.rpcErrors} RPC errors` : ""}`,
          );
        }
      }
    }
    const rows: Row[] = [];
    for (const [key, rs] of rounds) {
      // The median round stands for the row; failures and errors add up over all rounds.
      const mid = [...rs].sort((a, b) => a.rps - b.rps)[Math.floor(rs.length / 2)] as Row;
      const sum = (f: (r: Row) => number | undefined) => rs.reduce((n, r) => n + (f(r) ?? 0), 0);
      const row: Row = { ...mid, failed: sum((r) => r.failed), rounds: rs.map((r) => r.rps) };
      if (mid.rpcErrors !== undefined) row.rpcErrors = sum((r) => r.rpcErrors);
      rows.push(row);
      void key;
    }
    /** Median over rounds of row ÷ baseline, each round's pair measured in the same round. */
    const pairedRatio = (r: Row, baseline: string, protocol: string): number | undefined => {
      const mine = rounds.get(rowKey(r.contender, r.protocol, r.streams));
      const theirs = rounds.get(rowKey(baseline, protocol, r.streams));
      if (!mine || !theirs || theirs.length !== mine.length) return undefined;
      const ratios = mine.map((m, i) => m.rps / (theirs[i] as Row).rps).sort((a, b) => a - b);
      return median(ratios);
    };
    for (const r of [...rows]) {
      const c = contenders.find((x) => x.name === r.contender && x.protocol === r.protocol);
      if (!c?.baseline) continue;
      const ratio = pairedRatio(r, c.baseline, r.protocol);
      if (ratio !== undefined) {
        r.ratio = ratio;
        r.baseline = c.baseline;
      }
      if (r.protocol === "gRPC" && RATE_LIMITED.test(r.contender)) {
        const d = pairedRatio(r, "rate-limiter-flexible", "gRPC");
        if (d !== undefined)
          rows.splice(rows.indexOf(r) + 1, 0, {
            ...r,
            contender: `${r.contender} vs DIY`,
            ratio: d,
            baseline: "rate-limiter-flexible",
          });
      }
    }

    // Multi-core: its own two Tollgates (1 and 2 workers), alternating (bench/workers.ts).
    if (!ONLY || ONLY.test(WORKERS_ROW))
      rows.push(
        ...(await workersBench({
          env: tollgateEnv,
          workload: tollgateWorkloads(secret, keyId, oneLimitKeyId).find(
            (w) => w.name === "CheckRateLimit (1 limit)",
          ) as Workload,
          scratch,
          durationS: DURATION_S,
          rounds: ROUNDS,
          warmupRequests: WARMUP_REQUESTS,
        })),
      );

    // p99 at half of Tollgate's peak, Tollgate and the echo paced to the same rate.
    const halfLoad: { name: string; rate: number; p99: number; echoP99: number }[] = [];
    if (!QUICK) {
      const echoC = contenders.find((x) => x.name === "grpc-js echo" && x.protocol === "gRPC");
      for (const name of ["CheckRateLimit (2 limits)", "Authorize (cached key)"]) {
        const c = contenders.find((x) => x.name === name && x.protocol === "gRPC");
        // --only may have left either out: then there is no pair to pace.
        if (!c || !echoC) continue;
        const peak = Math.max(
          ...rows.filter((r) => r.contender === name && r.protocol === "gRPC").map((r) => r.rps),
        );
        const rate = peak / 2;
        const t = await measure(c, redis, scratch, 64, DURATION_S, rate);
        const e = await measure(echoC, redis, scratch, 64, DURATION_S, rate);
        halfLoad.push({ name, rate, p99: t.p99Ms, echoP99: e.p99Ms });
      }
    }

    const ceiling: RedisCeiling = await redisCeiling(redis, QUICK ? 20_000 : 200_000);
    const peakRss = [
      ["Tollgate", tollgate],
      ["grpc-js echo", echoGrpc],
      ["connect-node echo", echoConnect],
      ["rate-limiter-flexible", rlf],
    ].map(([n, p]) => [n as string, `${mb(procStats((p as Started).pid).peakRss)} MB`]);
    const errors = (await tollgate.metrics())
      .split("\n")
      .filter(
        (l) => l.startsWith("tollgate_rpc_duration_seconds_count") && !l.includes('code="ok"'),
      )
      .filter((l) => !l.endsWith(" 0"));

    let memory: { results: MemoryResult[]; before: number } | undefined;
    if (!QUICK && !opts["no-memory"]) {
      for (const p of [echoGrpc, echoConnect, rlf, tollgate]) await p.stop();
      memory = await memoryRun(tollgateEnv, redis);
    }

    // Batched limits across three processes (bench/batched.ts), before the memory run stops Redis users.
    const admission =
      !ONLY || ONLY.test(ADMISSION_ROW)
        ? await admissionBench(ROOT, redis, tollgateEnv, scratch)
        : undefined;
    if (admission)
      console.error(
        `  ${ADMISSION_ROW}: admitted ${admission.admitted} of ${admission.limit}, bound ${admission.bound}, Redis counted ${admission.counted}`,
      );
    const targets = evaluateTargets(rows, halfLoad, memory, trips, admission);
    const text = [
      resultsTable(rows),
      "",
      `Redis ceiling (redis-benchmark EVALSHA of a small limiter script, 50 clients): ${ceiling.unpipelined.toFixed(0)} req/s unpipelined, ${ceiling.pipelined.toFixed(0)} req/s pipelined (-P 16)`,
      `peak RSS: ${peakRss.map(([n, v]) => `${n} ${v}`).join(", ")}`,
      ...(errors.length > 0 ? ["", "Tollgate RPC errors during the run:", ...errors] : []),
      "",
      tripsTable(trips),
      ...(memory ? ["", memoryTable(memory)] : []),
      "",
      targetsTable(targets),
      "",
      ...machineInfo(),
      `bench took ${((Date.now() - began) / 1000).toFixed(0)} s`,
    ].join("\n");
    console.log(text);
    if (!QUICK) {
      writeFileSync(
        opts.out,
        markdown(
          rows,
          targets,
          ceiling,
          peakRss,
          memory,
          errors,
          trips,
          (Date.now() - began) / 1000,
        ),
      );
      console.error(`bench: wrote ${opts.out}`);
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await sink?.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** A fresh Tollgate, loaded with 1 M distinct unknown keys, then 1 M distinct subjects. */
async function memoryRun(
  env: Record<string, string>,
  redis: BenchRedis,
): Promise<{ results: MemoryResult[]; before: number }> {
  const t = await startTollgate(env);
  try {
    const base = `http://127.0.0.1:${t.port}`;
    const o = {
      base,
      pid: t.pid,
      count: Number(opts["memory-count"]),
      timeLimitS: Number(opts["memory-time"]),
      streams: 64,
    };
    // A short warm-up so "before" is the resident set of a serving process.
    await distinctRun({ ...o, kind: "subjects", count: 2_000 });
    const before = procStats(t.pid).rss;
    const results: MemoryResult[] = [];
    for (const kind of ["unknown-keys", "subjects"] as const) {
      const r = await distinctRun({ ...o, kind });
      results.push(r);
      console.error(
        `  memory ${kind}: ${r.sent} in ${r.seconds.toFixed(0)} s, ${r.errors} errors, ${r.reconnects} reconnects, peak ${mb(r.peakRssBytes)} MB`,
      );
    }
    const entries = /^tollgate_key_cache_entries (\d+)/m.exec(await t.metrics())?.[1];
    console.error(`  key cache entries at the end: ${entries ?? "?"} (max ${CACHE_MAX_ENTRIES})`);
    void redis;
    return { results, before };
  } finally {
    await t.stop();
  }
}

function tripsTable(trips: Map<string, Trips>): string {
  return table(
    ["contender", "client commands/req", "by command", "inside Lua scripts, per req"],
    [...trips.entries()].map(([k, t]) => [
      k.replace("|", " — "),
      t.perRequest.toFixed(3),
      t.breakdown,
      t.inScripts,
    ]),
  );
}

function memoryTable(m: { results: MemoryResult[]; before: number }): string {
  return table(
    [
      "distinct requests",
      "sent",
      "errors",
      "reconnects",
      "seconds",
      "RSS along the run (MB)",
      "peak RSS MB",
    ],
    m.results.map((r) => [
      r.name,
      String(r.sent),
      String(r.errors),
      String(r.reconnects),
      r.seconds.toFixed(0),
      r.samples.map((s) => mb(s.rssBytes)).join(" → "),
      mb(r.peakRssBytes),
    ]),
  );
}

function markdown(
  rows: Row[],
  targets: Target[],
  ceiling: RedisCeiling,
  peakRss: string[][],
  memory: { results: MemoryResult[]; before: number } | undefined,
  errors: string[],
  trips: Map<string, Trips>,
  seconds: number,
): string {
  const argv = process.argv.slice(2).join(" ");
  return `# Benchmarks

Produced by \`npm run bench${argv ? ` -- ${argv}` : ""}\` (bench/run.ts) in ${seconds.toFixed(0)} s on:

${machineInfo()
  .map((l) => `- ${l}`)
  .join("\n")}

Client (h2load), servers and Redis share the same cores, so **absolute numbers are noisy;
read the ratios**, which compare contenders measured in the same run, alternating at each
stream count.

## Method

- Every contender runs on 127.0.0.1 and is loaded by \`h2load -c 1 -m <streams> -D ${rows.length > 0 ? "<seconds>" : ""}\`
  (one HTTP/2 connection, N concurrent streams, a fixed duration) with a pre-encoded body:
  a gRPC frame (\`content-type: application/grpc\`, \`te: trailers\`) or Connect JSON
  (\`content-type: application/json\`). Each contender is probed once first (the answer must be an
  allowed decision with grpc-status 0) and warmed with a few thousand requests.
- **Tollgate**: \`node dist/cli/main.js serve\`, Redis store on a private \`redis-server\`,
  [bench/policy.yaml](../bench/policy.yaml) (tier \`bench\` with two rate limits, by key and by
  owner, high enough never to deny; an \`envoy_ratelimit\` domain with two descriptors),
  a tier \`bench1\` with one limit (the like-for-like rows against rate-limiter-flexible).
  **Settings as shipped**: only the policy file, the Redis URL and the pepper are set; the
  access log, log level, timeouts and cache bounds are the defaults; its log goes to a file.
  gRPC rows hit the main port (grpc-js); Connect JSON rows hit the HTTP port (connect-node, h2c).
- Each stream count is measured in ${ROUNDS} round(s) of every contender, alternating; a row
  shows its median round (all rounds' req/s beside it) and its ratio is the median of the
  per-round ratios to the baseline measured in the same round.
- **Baselines**: \`grpc-js echo\` (bench/echo-grpc.ts) and \`connect-node echo\` (bench/echo-connect.ts)
  parse the same AuthorizeRequest and answer the same AuthorizeResponse with protobuf-es;
  \`rate-limiter-flexible\` (bench/rlf-server.ts) is grpc-js + \`RateLimiterRedis.consume\` (one
  limit) on the same Redis — what a user would build instead.
- Server CPU: utime + stime deltas from /proc (100 % = one core). Redis commands per request:
  \`INFO commandstats\` deltas ÷ requests, and client-issued commands counted with \`MONITOR\`.
  RPC errors: Tollgate's \`tollgate_rpc_duration_seconds_count\` with a non-OK code, before/after
  each run (h2load sees only HTTP statuses; gRPC errors travel in trailers). Peak RSS: VmHWM.

## Results

${resultsTable(rows)}

Redis commands per request, counted with \`MONITOR\` over ${TRIP_REQUESTS} requests at 16 streams
(client-issued commands are round trips, whether or not ioredis pipelines them; the
\`Redis cmds/req\` column above is from \`INFO commandstats\` and also counts commands run inside
Lua scripts):

${tripsTable(trips)}

Redis ceiling (redis-benchmark EVALSHA of a small limiter script, 50 clients):
${ceiling.unpipelined.toFixed(0)} req/s unpipelined, ${ceiling.pipelined.toFixed(0)} req/s pipelined (-P 16).

Peak RSS after the load: ${peakRss.map(([n, v]) => `${n} ${v}`).join(", ")}.
${errors.length > 0 ? `\nTollgate RPC errors during the run:\n\n\`\`\`\n${errors.join("\n")}\n\`\`\`\n` : ""}
${
  memory
    ? `## Memory

A fresh Tollgate (\`TOLLGATE_CACHE_MAX_ENTRIES=${CACHE_MAX_ENTRIES}\`), idle RSS ${mb(memory.before)} MB
after start-up, is sent distinct requests over one connection (64 streams): Authorize with
well-formed unknown keys (each a negative-cache entry) and CheckRateLimit with fresh subjects.

${memoryTable(memory)}
`
    : ""
}
## Targets

${targetsTable(targets)}

Where a target is missed, the profile-backed reasons, what was changed and what is left to try
are in [performance.md](performance.md).
`;
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});

/** An OTLP/HTTP receiver that answers every export and keeps nothing (the traced rows' collector). */
async function startOtlpSink(): Promise<OtlpSink> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return { port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** A running OTLP receiver. */
interface OtlpSink {
  port: number;
  close(): Promise<void>;
}
