/**
 * RLQS contract: Python grpcio (/usr/bin/python3, Debian's python3-grpcio)
 * drives StreamRateLimitQuotas against two built Tollgate processes sharing
 * one Redis, with message classes from the upstream Envoy protos, and reads
 * the buckets in Redis after its reports. The assertions live in
 * test/contract/rlqs_contract.py; this file sets the stage.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/policy.js";
import { matchRlqsBucket } from "../../src/policy/rlqs-rules.js";
import { createKeyNames } from "../../src/store/redis-keys.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const RLQS =
  "node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service/rate_limit_quota/v3/rlqs.proto";
const PYTHON = "/usr/bin/python3";
const FIXTURE = "test/fixtures/policies/rlqs.yaml";
const PREFIX = "rlqs:";
let dir: string;
let redis: TestRedis;
const servers: TollgateProcess[] = [];

/** The Redis key of the store bucket a bucket id of domain `contract` maps to. */
function bucketKey(id: Record<string, string>): string {
  const policy = parsePolicy(readFileSync(FIXTURE, "utf8"), FIXTURE);
  const m = matchRlqsBucket(policy.rlqs, "contract", id);
  if (!m) throw new Error(`no rlqs entry for ${JSON.stringify(id)}`);
  return createKeyNames(PREFIX).bucket(m.tag, m.bucket.limit.bucketId);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-rlqs-"));
  await run("npx", [
    "--no-install",
    "buf",
    "build",
    "--config",
    "buf.envoy.yaml",
    "--path",
    RLQS,
    "-o",
    join(dir, "envoy.binpb"),
  ]);
  await run(PYTHON, ["-c", "import grpc"]).catch(() => {
    throw new Error(
      "Python grpcio is missing: apt-get install -y python3-grpcio (run with /usr/bin/python3)",
    );
  });
  redis = await startTestRedis();
  const env = {
    TOLLGATE_POLICY_FILE: FIXTURE,
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER: "rlqs-contract-pepper-0123456789ab",
    // A report stream is one request whose body never ends: it must outlive this.
    TOLLGATE_BODY_TIMEOUT_MS: "1000",
  };
  servers.push(await startTollgateProcess(env), await startTollgateProcess(env));
}, 90_000);

afterAll(async () => {
  for (const s of servers) expect(await s.stop()).toBe(0);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the contract script; its one JSON summary line. */
async function contract(
  args: string[],
): Promise<{ ok: boolean; checked: string[]; failed?: string }> {
  const out = await run(PYTHON, ["test/contract/rlqs_contract.py", ...args], {
    timeout: 60_000,
  }).catch((err: { stdout?: string; stderr?: string }) => ({
    stdout: err.stdout ?? "",
    stderr: err.stderr ?? "",
  }));
  const last = out.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last);
  } catch {
    throw new Error(`python contract client crashed:\n${out.stdout}\n${out.stderr}`);
  }
}

describe("Envoy's rate limit quota service, called by Python grpcio from upstream protos", () => {
  it("assigns units taken from Redis, abandons unknown buckets, and shrinks as another replica takes", async () => {
    const [a, b] = servers as [TollgateProcess, TollgateProcess];
    const result = await contract([
      `127.0.0.1:${a.port}`,
      `127.0.0.1:${b.port}`,
      join(dir, "envoy.binpb"),
      String(redis.port),
      bucketKey({ name: "api", tenant: "a" }),
      bucketKey({ name: "api", tenant: "b" }),
      bucketKey({ name: "tight" }),
    ]);
    expect(result.failed).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(result.checked.length).toBeGreaterThan(30);
  }, 90_000);

  for (const mode of ["open", "closed"] as const) {
    it(`answers every bucket by the fail mode (${mode}) while Redis is away, never an RPC error`, async () => {
      const away = await startTestRedis();
      const server = await startTollgateProcess({
        TOLLGATE_POLICY_FILE: FIXTURE,
        REDIS_URL: away.url,
        TOLLGATE_REDIS_PREFIX: PREFIX,
        TOLLGATE_PEPPER: "rlqs-contract-pepper-0123456789ab",
        TOLLGATE_FAIL_MODE: mode,
      });
      try {
        await away.stop();
        const result = await contract([
          "--store-away",
          `127.0.0.1:${server.port}`,
          join(dir, "envoy.binpb"),
          mode,
        ]);
        expect(result.failed).toBeUndefined();
        expect(result.ok).toBe(true);
      } finally {
        await server.stop();
      }
    }, 90_000);
  }

  it("ends an open stream OK when the server shuts down, without holding the shutdown", async () => {
    const server = await startTollgateProcess({
      TOLLGATE_POLICY_FILE: FIXTURE,
      TOLLGATE_SHUTDOWN_TIMEOUT_MS: "20000",
    });
    const py = spawn(PYTHON, [
      "test/contract/rlqs_contract.py",
      "--hold",
      `127.0.0.1:${server.port}`,
      join(dir, "envoy.binpb"),
    ]);
    let out = "";
    const ready = new Promise<void>((resolve, reject) => {
      py.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (out.includes("ready")) resolve();
      });
      py.once("exit", () => reject(new Error(`python exited early:\n${out}`)));
    });
    const exited = new Promise<void>((r) => py.once("exit", () => r()));
    await ready;
    const t0 = Date.now();
    expect(await server.stop()).toBe(0);
    // The drain would otherwise wait for the stream until 18 s of the 20 s deadline.
    expect(Date.now() - t0).toBeLessThan(8000);
    await exited;
    const result = JSON.parse(out.trim().split("\n").pop() ?? "") as {
      ok: boolean;
      failed?: string;
    };
    expect(result.failed).toBeUndefined();
    expect(result.ok).toBe(true);
  }, 90_000);
});
