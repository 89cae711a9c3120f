/**
 * The alert rules on what Tollgate really exports, not on hand-written series:
 * two built servers on one real Redis (one failing closed, one failing open)
 * are scraped while healthy and then while Redis is gone; the scrapes become
 * promtool input series (one scrape standing for one minute) and promtool
 * evaluates tollgate-rules.yaml on them. Healthy: no alert. Redis gone: the
 * store, breaker and fail-mode alerts fire for the right job, and nothing
 * else. This catches label values drifting (a `kind` or `breaker` renamed),
 * which the name check of test/unit/dashboard-and-rules.test.ts cannot see.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const RULES = fileURLToPath(
  new URL("../../helm/tollgate/files/tollgate-rules.yaml", import.meta.url),
);
const HEALTHY_SCRAPES = 4;
const OUTAGE_SCRAPES = 12;
/** Calls between scrapes: above the error-ratio alert's 0.1 calls/s at one scrape a "minute". */
const CALLS_PER_SCRAPE = 12;

const policy = `version: 1
default_tier: free
tiers:
  free: {}
endpoints:
  - name: r
    path: /v1/r
    limits:
      - { name: r, by: subject, rate: { requests: 1000, per: 1m } }
`;

let dir: string;
let redis: TestRedis;
const pods: { job: string; p: TollgateProcess }[] = [];
/** series → one value per scrape (undefined: absent at that scrape). */
const series = new Map<string, (string | undefined)[]>();
let scrapes = 0;

/** Records one scrape of every pod, Tollgate's own metrics only, with the labels a scrape adds. */
async function scrape(): Promise<void> {
  for (const { job, p } of pods) {
    const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
    for (const line of text.split("\n")) {
      const m = /^(tollgate_[a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
      if (!m || /^tollgate_(process|nodejs)_/.test(m[1] as string)) continue;
      if (!Number.isFinite(Number(m[3]))) continue;
      const labels = [m[2], `namespace="e2e"`, `job="${job}"`, `pod="${job}-0"`].filter(Boolean);
      const key = `${m[1]}{${labels.join(",")}}`;
      const values = series.get(key) ?? new Array<string | undefined>(scrapes).fill(undefined);
      values[scrapes] = m[3];
      series.set(key, values);
    }
  }
  scrapes++;
}

/** Some CheckRateLimit calls on every pod; failures (fail closed) are expected during the outage. */
async function traffic(): Promise<void> {
  await Promise.all(
    pods.map(async ({ p }) => {
      const c = createClient(TollgateService, createGrpcTransport({ baseUrl: p.url }));
      for (let i = 0; i < CALLS_PER_SCRAPE; i++)
        await c.checkRateLimit({ subject: randomUUID(), path: "/v1/r" }).catch(() => undefined);
    }),
  );
}

/** The firing alerts promtool computes at `minute`, as `alertname job severity` lines. */
async function firingAt(minute: number): Promise<string[]> {
  const input_series = [...series].map(([s, values]) => ({
    series: s,
    values: Array.from({ length: scrapes }, (_, i) => values[i] ?? "_").join(" "),
  }));
  // promtool answers only "as expected" or the difference: expect nothing, read what it got.
  const file = join(dir, `at-${minute}.test.yaml`);
  writeFileSync(
    file,
    stringify({
      rule_files: [RULES],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series,
          promql_expr_test: [
            {
              expr: 'sort(count by (alertname, job, severity) (ALERTS{alertstate="firing"}))',
              eval_time: `${minute}m`,
              exp_samples: [],
            },
          ],
        },
      ],
    }),
  );
  const out = await run("promtool", ["test", "rules", file]).then(
    (r) => r.stdout,
    (e: { stdout?: string; stderr?: string; code?: unknown }) => {
      if (e.code === "ENOENT")
        throw new Error("promtool not found: apt-get install -y prometheus (.ci/run does)");
      return `${e.stdout}${e.stderr}`;
    },
  );
  if (out.includes("SUCCESS")) return [];
  const at = out.indexOf("got:");
  if (at < 0) throw new Error(`promtool failed:\n${out}`);
  const got = out.slice(at);
  return [...got.matchAll(/alertname="(\w+)", job="(\w+)", severity="(\w+)"/g)]
    .map((m) => `${m[1]} ${m[2]} ${m[3]}`)
    .sort();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-alerts-e2e-"));
  writeFileSync(join(dir, "policy.yaml"), policy);
  // Durable (AOF), so the durability alerts stay out of this story.
  redis = await spawnRedis(["--appendonly", "yes"]);
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: "alerts-e2e-pepper-0123456789abcdef",
    TOLLGATE_POLICY_FILE: join(dir, "policy.yaml"),
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "500",
    TOLLGATE_BREAKER_TIMEOUT_MS: "1000",
  };
  const [closed, open] = await Promise.all([
    startTollgateProcess({ ...env, TOLLGATE_FAIL_MODE: "closed" }),
    startTollgateProcess({ ...env, TOLLGATE_FAIL_MODE: "open" }),
  ]);
  pods.push({ job: "closed", p: closed }, { job: "open", p: open });
  for (let i = 0; i < HEALTHY_SCRAPES; i++) {
    await traffic();
    await scrape();
  }
  await redis.stop();
  for (let i = 0; i < OUTAGE_SCRAPES; i++) {
    await traffic();
    await scrape();
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(pods.map(({ p }) => p.stop()));
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the alert rules on real scrapes", () => {
  it("raise nothing while Redis is healthy", async () => {
    expect(series.size).toBeGreaterThan(20);
    expect(await firingAt(HEALTHY_SCRAPES - 1)).toEqual([]);
  });

  it("raise the store, breaker and fail-mode alerts of each job once Redis is gone", async () => {
    expect(await firingAt(scrapes - 1)).toEqual([
      "TollgateBreakerOpen closed critical",
      "TollgateBreakerOpen open critical",
      "TollgateFailClosed closed critical",
      "TollgateFailOpenDecisions open warning",
      "TollgateHighErrorRatio closed critical",
      "TollgateRedisUnreachable closed critical",
      "TollgateRedisUnreachable open critical",
    ]);
  });
});
