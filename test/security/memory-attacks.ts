/**
 * The attacks of the memory-bound suites (memory-bounds*.test.ts): 150 000
 * distinct hostile inputs of each kind that needs no valid key — unknown keys,
 * subjects, client IPs, recorded events — sent to the built server on the
 * embedded store over HTTP/2 to 127.0.0.1 (128 calls in flight), and a Target
 * that runs them against one server process while sampling its RSS every 200 ms.
 * Bounded in count and time: each flood stops after FLOOD_MS at the latest.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { expect } from "vitest";
import { loadSettings } from "../../src/config/settings.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType, Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  CheckRateLimitRequestSchema,
  CheckRateLimitResponseSchema,
  RecordEventRequestSchema,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { NEGATIVE_ENTRY_BYTES } from "../../src/keys/key-cache.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { type FloodResult, flood } from "./flood.js";
import { rssKb, sleep } from "./support.js";

/** Distinct hostile inputs of each kind (the issue's number). */
export const N = 150_000;
/** The issue's bound: resident memory under attack, kB. */
export const RSS_LIMIT_KB = 400 * 1024;
/** Longest one flood may take on this 2-core machine, ms. */
const FLOOD_MS = 90_000;
const PREFIX = "/tollgate.v1.TollgateService/";
const ENV = {
  TOLLGATE_POLICY_FILE: "test/security/fixtures/memory-policy.yaml",
  // One access-log line per flooded call would be held by this test process.
  TOLLGATE_LOG_LEVEL: "info",
  TOLLGATE_ACCESS_LOG: "false",
};

/** The defaults of every setting, parsed: the servers run on them. */
export const defaults = loadSettings({});

/** An IPv4 address per index (10.0.0.0/8 holds 16 M). */
const ipv4 = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ATTRIBUTES: Record<string, string> = {};
for (let a = 0; a < 4; a++) ATTRIBUTES[`attr${a}`] = "v".repeat(500);

/** One kind of hostile input. */
export interface Attack {
  kind: string;
  rpc: string;
  /** Calls (each carries one input, or a batch of 100 events). */
  calls: number;
  body: (i: number) => Uint8Array;
  check?: (payload: Buffer) => void;
  connections: number;
  inFlight: number;
  /** Size gauges to check: structure, most entries, most bytes. */
  bounds: [string, number, number][];
}

export const ATTACKS: Attack[] = [
  {
    kind: "Authorize with distinct well-formed unknown keys from distinct IPs",
    rpc: "Authorize",
    calls: N,
    body: (i) =>
      toBinary(
        AuthorizeRequestSchema,
        create(AuthorizeRequestSchema, {
          apiKey: generateSecret("live"),
          method: "GET",
          path: "/v1/anything",
          clientIp: ipv4(i),
        }),
      ),
    check: (p) => expect(fromBinary(AuthorizeResponseSchema, p).reason).toBe(Reason.UNKNOWN_KEY),
    connections: 2,
    inFlight: 64,
    bounds: [
      [
        "unknown_keys",
        defaults.negativeCacheMaxEntries,
        defaults.negativeCacheMaxEntries * NEGATIVE_ENTRY_BYTES,
      ],
      ["events", defaults.eventMaxCount, defaults.memoryEventMaxBytes],
      ["detection", defaults.memoryDetectionMaxEntries, defaults.memoryDetectionMaxBytes],
    ],
  },
  {
    kind: "CheckRateLimit with distinct 256-byte subjects (a rate and a monthly quota each)",
    rpc: "CheckRateLimit",
    calls: N,
    body: (i) =>
      toBinary(
        CheckRateLimitRequestSchema,
        create(CheckRateLimitRequestSchema, {
          subject: `s${i}-`.padEnd(256, "x"),
          endpoint: "per-subject",
        }),
      ),
    check: (p) => expect(fromBinary(CheckRateLimitResponseSchema, p).allowed).toBe(true),
    connections: 2,
    inFlight: 64,
    bounds: [["ratelimit", defaults.memoryRateMaxEntries, defaults.memoryRateMaxBytes]],
  },
  {
    kind: "CheckRateLimit with distinct client IPs on by: ip limits",
    rpc: "CheckRateLimit",
    calls: N,
    body: (i) =>
      toBinary(
        CheckRateLimitRequestSchema,
        create(CheckRateLimitRequestSchema, {
          clientIp: `fd00::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`,
          endpoint: "per-ip",
        }),
      ),
    check: (p) => expect(fromBinary(CheckRateLimitResponseSchema, p).allowed).toBe(true),
    connections: 2,
    inFlight: 64,
    bounds: [["ratelimit", defaults.memoryRateMaxEntries, defaults.memoryRateMaxBytes]],
  },
  {
    kind: "RecordEvent with distinct ids and subjects, 2 KB each, in batches of 100",
    rpc: "RecordEvent",
    calls: N / 100,
    body: (b) =>
      toBinary(
        RecordEventRequestSchema,
        create(RecordEventRequestSchema, {
          events: Array.from({ length: 100 }, (_, j) => ({
            id: `ev-${b}-${j}-`.padEnd(128, "i"),
            type: EventType.UNSPECIFIED,
            customType: "login_failed",
            subject: `user-${b * 100 + j}-`.padEnd(256, "u"),
            severity: Severity.LOW,
            clientIp: ipv4(b * 100 + j),
            attributes: ATTRIBUTES,
          })),
        }),
      ),
    connections: 1,
    inFlight: 8,
    bounds: [
      ["events", defaults.eventMaxCount, defaults.memoryEventMaxBytes],
      ["detection", defaults.memoryDetectionMaxEntries, defaults.memoryDetectionMaxBytes],
    ],
  },
];

/** Lines of measurements, printed by the test files after their runs. */
export const report: string[] = [];

/** A server under attack, with its RSS sampled every 200 ms. */
export class Target {
  peakKb = 0;
  private constructor(
    readonly proc: TollgateProcess,
    private readonly sampler: NodeJS.Timeout,
  ) {}

  static async start(nodeArgs: string[]): Promise<Target> {
    const proc = await startTollgateProcess(ENV, { nodeArgs });
    const pid = proc.child.pid as number;
    const t: Target = new Target(
      proc,
      setInterval(() => {
        try {
          t.peakKb = Math.max(t.peakKb, rssKb(pid));
        } catch {
          // the process is gone: the liveness check reports it
        }
      }, 200),
    );
    return t;
  }

  get alive(): boolean {
    return this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  /** Runs one attack; asserts the process survived it within the RSS limit. */
  async attack(a: Attack, label: string): Promise<void> {
    const r = await flood(this.proc.url, `${PREFIX}${a.rpc}`, a.calls, a.body, {
      connections: a.connections,
      inFlight: a.inFlight,
      timeoutMs: FLOOD_MS,
      ...(a.check && { check: (_i: number, p: Buffer) => a.check?.(p) }),
    });
    await sleep(500); // the recorder's background flush of Tollgate's own events
    this.expectSurvived(`${label}: ${a.kind}`, a.calls, r);
  }

  private expectSurvived(label: string, calls: number, r: FloodResult): void {
    const alive = this.alive;
    const now = alive ? rssKb(this.proc.child.pid as number) : Number.NaN;
    report.push(
      `${label}: ${r.done} calls in ${r.elapsedMs} ms (${r.failed} failed, grpc-status ${JSON.stringify([...r.statuses])}); RSS now ${Math.round(now / 1024)} MB, peak ${Math.round(this.peakKb / 1024)} MB${alive ? "" : `; process DIED (${this.proc.child.exitCode ?? this.proc.child.signalCode})`}`,
    );
    expect(alive, this.proc.output().slice(-3000)).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.failed).toBe(0);
    expect(r.checkErrors).toEqual([]);
    expect(r.statuses.get(0)).toBe(calls);
    expect(now).toBeLessThan(RSS_LIMIT_KB);
    expect(this.peakKb).toBeLessThan(RSS_LIMIT_KB);
  }

  /** The size gauges of `bounds` are within them. */
  async expectWithinBounds(bounds: Attack["bounds"]): Promise<void> {
    const text = await (await fetch(`http://127.0.0.1:${this.proc.adminPort}/metrics`)).text();
    const value = (name: string, structure: string) => {
      const m = new RegExp(`^${name}\\{structure="${structure}"\\} (\\S+)$`, "m").exec(text);
      return m ? Number(m[1]) : Number.NaN;
    };
    for (const [structure, maxEntries, maxBytes] of bounds) {
      const entries = value("tollgate_memory_entries", structure);
      const bytes = value("tollgate_memory_bytes", structure);
      const evicted = value("tollgate_memory_evictions_total", structure);
      report.push(
        `  ${structure}: ${entries} entries (≤ ${maxEntries}), ${Math.round(bytes / 1024)} KiB (≤ ${Math.round(maxBytes / 1024)}), ${evicted} evicted`,
      );
      expect(entries, structure).toBeLessThanOrEqual(maxEntries);
      expect(bytes, structure).toBeLessThanOrEqual(maxBytes);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    await this.proc.stop("SIGKILL");
  }
}
