/**
 * Envoy contract: Python grpcio (Debian's python3-grpcio, run with /usr/bin/python3)
 * drives ext_authz Check, ShouldRateLimit and the Tollgate RPCs against the built
 * server, with message classes built from the upstream Envoy protos. The
 * assertions live in test/contract/envoy_contract.py; this file sets the stage.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const ENVOY = "node_modules/@grpc/grpc-js-xds/deps/envoy-api/envoy/service";
const PYTHON = "/usr/bin/python3";
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-contract-"));
  // Descriptor sets straight from the upstream protos (nothing vendored).
  await run("npx", [
    "--no-install",
    "buf",
    "build",
    "--config",
    "buf.envoy.yaml",
    "--path",
    `${ENVOY}/auth/v3/external_auth.proto`,
    "--path",
    `${ENVOY}/ratelimit/v3/rls.proto`,
    "-o",
    join(dir, "envoy.binpb"),
  ]);
  await run("npx", ["--no-install", "buf", "build", "-o", join(dir, "tollgate.binpb")]);
  await run(PYTHON, ["-c", "import grpc"]).catch(() => {
    throw new Error(
      "Python grpcio is missing: apt-get install -y python3-grpcio (run with /usr/bin/python3)",
    );
  });
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function contract(
  env: Record<string, string>,
): Promise<{ ok: boolean; checked: string[]; failed?: string }> {
  const server: TollgateProcess = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: "test/fixtures/policies/envoy-contract.yaml",
    ...env,
  });
  try {
    const created = await run(process.execPath, [
      CLI,
      "keys",
      "create",
      "--owner",
      "acme",
      "--scope",
      "orders:read",
      "--json",
      "--server",
      server.url,
    ]);
    const { secret, key } = JSON.parse(created.stdout) as { secret: string; key: { id: string } };
    const out = await run(PYTHON, [
      "test/contract/envoy_contract.py",
      `127.0.0.1:${server.port}`,
      join(dir, "envoy.binpb"),
      join(dir, "tollgate.binpb"),
      secret,
      key.id,
    ]).catch((err: { stdout?: string; stderr?: string }) => ({
      stdout: err.stdout ?? "",
      stderr: err.stderr ?? "",
    }));
    const last = out.stdout.trim().split("\n").pop() ?? "";
    let result: { ok: boolean; checked: string[]; failed?: string };
    try {
      result = JSON.parse(last);
    } catch {
      throw new Error(`python contract client crashed:\n${out.stdout}\n${out.stderr}`);
    }
    // No secret minted in this test may appear in the server's logs.
    expect(server.output()).not.toContain(secret);
    return result;
  } finally {
    expect(await server.stop()).toBe(0);
  }
}

describe("Envoy and Tollgate APIs, called by Python grpcio from upstream protos", () => {
  it("passes every contract check on the embedded store", async () => {
    const r = await contract({});
    expect(r.failed).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.checked.length).toBeGreaterThan(100);
  }, 60_000);

  describe("on Redis", () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startTestRedis();
    });
    afterAll(async () => redis.stop());

    it("passes every contract check with state in Redis", async () => {
      const r = await contract({
        REDIS_URL: redis.url,
        // Its own namespace: a shared REDIS_URL keeps each file's pepper apart.
        TOLLGATE_REDIS_PREFIX: "contract:",
        TOLLGATE_PEPPER: "contract-test-pepper-0123456789",
      });
      expect(r.failed).toBeUndefined();
      expect(r.ok).toBe(true);
    }, 60_000);
  });
});
