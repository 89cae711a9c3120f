/**
 * The streaming claim of `keys export` / `keys import`: a million keys must
 * not need a million keys' worth of memory. Measured with 2 000 and 20 000
 * keys against a real redis-server and the built server (decision-path
 * Redis budgets as in production: bulk work has a connection of its own).
 * The CLI runs with its V8 heap capped at 64 MiB — left alone, V8 grows the
 * heap lazily and RSS says little — and its peak RSS (VmHWM from /proc)
 * barely moves between the two sizes: it holds a batch, never the file.
 * Each step's throughput is printed (the README quotes it). About 20 s on a
 * loaded 2-core machine; TOLLGATE_SCALE_KEYS=100000 runs a larger size by hand.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "backup-scale-management-token-0123";
/** The CLI's heap cap: ample for one batch, nowhere near a large file's records. */
const HEAP_CAP = "--max-old-space-size=64";
const SMALL = 2_000;
/** TOLLGATE_SCALE_KEYS raises it for a manual run (Redis needs about 1 KiB per key). */
const LARGE = Number(process.env.TOLLGATE_SCALE_KEYS ?? 20_000);

let redis: TestRedis;
let client: Redis;
let server: TollgateProcess;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-scale-"));
  redis = await spawnRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  server = await startTollgateProcess({
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: "backup-scale-pepper-0123456789abcdef",
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    // The production budgets of the decision path (the helper loosens them):
    // export and import run on the bulk connection, with its own timeouts.
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "10",
    TOLLGATE_BREAKER_TIMEOUT_MS: "50",
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await client?.quit();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Measured {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Peak resident set size of the CLI process, MiB. */
  peakMiB: number;
}

/** Runs the CLI, sampling its peak RSS (VmHWM) until it exits. */
function measured(args: string[]): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child: ChildProcess = spawn(process.execPath, [HEAP_CAP, CLI, ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
        TOLLGATE_SERVER: server.url,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let peakKiB = 0;
    child.stdout?.on("data", (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const sample = () => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // exited between samples
      }
    };
    const timer = setInterval(sample, 25);
    const kill = setTimeout(() => child.kill("SIGKILL"), 600_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearInterval(timer);
      clearTimeout(kill);
      resolve({ code, stdout, stderr, ms: Date.now() - started, peakMiB: peakKiB / 1024 });
    });
  });
}

/** A JSON Lines file of `n` foreign keys (no header: foreign records need no fingerprint). */
function foreignFile(n: number, tag: string): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const secret = `sk_scale_${tag}_${String(i).padStart(8, "0")}_secret`;
    lines.push(
      JSON.stringify({
        key: {
          owner: `owner-${i % 997}`,
          scopes: ["orders:read", "orders:write"],
          metadata: { plan: i % 2 ? "pro" : "free", migrated_from: "legacy", index: String(i) },
        },
        foreign_digest: {
          algorithm: "DIGEST_ALGORITHM_SHA256",
          value: createHash("sha256").update(secret).digest("hex"),
        },
        foreign_prefix: "sk_scale_",
      }),
    );
  }
  const file = join(dir, `foreign-${tag}.jsonl`);
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

const perSecond = (n: number, ms: number) => Math.round(n / (ms / 1000));

it(
  `exports and imports ${LARGE} keys in bounded CLI memory`,
  async () => {
    const report: string[] = [];
    const peaks: Record<string, number> = {};
    for (const [n, tag] of [
      [SMALL, "small"],
      [LARGE, "large"],
    ] as const) {
      await client.flushall();
      const source = foreignFile(n, tag);
      const imported = await measured(["keys", "import", source]);
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toMatch(new RegExp(`^${n} created, 0 unchanged, 0 conflicts`, "m"));

      const backup = join(dir, `backup-${tag}.jsonl`);
      const exported = await measured(["keys", "export", "--out", backup]);
      expect(exported.code, exported.stderr).toBe(0);
      expect(readFileSync(backup, "utf8").trimEnd().split("\n")).toHaveLength(n + 2);

      await client.flushall();
      const restored = await measured(["keys", "import", backup]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stdout).toMatch(new RegExp(`^${n} created, 0 unchanged, 0 conflicts`, "m"));
      expect(await client.zcard("tg:keys:{index}")).toBe(n);

      const mib = statSync(backup).size / 2 ** 20;
      for (const [step, m] of [
        ["import (foreign)", imported],
        ["export", exported],
        ["import (restore)", restored],
      ] as const) {
        peaks[`${step} ${n}`] = m.peakMiB;
        report.push(
          `${step.padEnd(17)} ${String(n).padStart(6)} keys: ${String(m.ms).padStart(6)} ms, ${String(perSecond(n, m.ms)).padStart(5)} keys/s, CLI peak RSS ${m.peakMiB.toFixed(0)} MiB (file ${mib.toFixed(1)} MiB)`,
        );
      }
    }
    console.log(`keys backup at scale:\n${report.join("\n")}`);
    // Ten times the keys (and a file ten times larger, some 9 MiB) may not cost
    // the CLI anything like the data: the file is streamed, one batch in memory.
    for (const step of ["import (foreign)", "export", "import (restore)"]) {
      const small = peaks[`${step} ${SMALL}`] as number;
      const large = peaks[`${step} ${LARGE}`] as number;
      expect({ step, growthMiB: Math.round(large - small) < 24 }).toEqual({
        step,
        growthMiB: true,
      });
      expect(large).toBeLessThan(200);
    }
  },
  Math.max(120_000, LARGE * 10),
);
