/**
 * Settings as a new user gets them wrong and right: a configuration file
 * (`serve --config FILE` / TOLLGATE_CONFIG) under the environment, `tollgate
 * settings` showing each effective value and its source with secrets masked,
 * and the mistakes — a misspelled variable or file entry, a flag where a
 * setting belongs — refused with a message that says what was meant.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, startTollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "tollgate-settings-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Runs the CLI; resolves to its exit code and output (never rejects). */
async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const r = await run(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 15_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("a configuration file", () => {
  it("configures the server, the environment overriding it", async () => {
    const cfg = file(
      "tollgate.yaml",
      "TOLLGATE_POLICY_FILE: examples/policy.yaml\nTOLLGATE_LOG_LEVEL: warn\nTOLLGATE_CACHE_TTL_MS: 2s\n",
    );
    const p = await startTollgateProcess({ TOLLGATE_CONFIG: cfg, TOLLGATE_LOG_LEVEL: "info" });
    try {
      const serving = p.logs.find((l) => l.msg === "tollgate serving");
      expect(serving?.policy).toBe("examples/policy.yaml"); // from the file
      // The environment's info level won over the file's warn: the info line is there.
      expect(serving).toBeDefined();
    } finally {
      await p.stop();
    }
  });

  it("`tollgate settings` shows each value and its source, secrets masked", async () => {
    const cfg = file(
      "with-secret.yaml",
      "TOLLGATE_PEPPER: file-pepper-0123456789abcdef\nTOLLGATE_CACHE_TTL_MS: 2000\n",
    );
    const r = await cli(["settings", "--config", cfg], { TOLLGATE_LOG_LEVEL: "debug" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^TOLLGATE_PEPPER\s+file\s+\(secret\)$/m);
    expect(r.stdout).toMatch(/^TOLLGATE_CACHE_TTL_MS\s+file\s+2000$/m);
    expect(r.stdout).toMatch(/^TOLLGATE_LOG_LEVEL\s+environment\s+debug$/m);
    expect(r.stdout).toMatch(/^TOLLGATE_ADDR\s+default\s+127\.0\.0\.1:50051$/m);
    expect(r.stdout).not.toContain("file-pepper");
  });

  it("refuses an entry that is not a setting, naming the closest", async () => {
    const cfg = file("typo.yaml", "TOLLGATE_POLICY: examples/policy.yaml\n");
    const r = await cli(["serve", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "TOLLGATE_POLICY: not a Tollgate setting; did you mean TOLLGATE_POLICY_FILE?",
    );
  });
});

describe("the mistakes", () => {
  it("a misspelled variable is refused at start, naming the setting meant", async () => {
    const r = await cli(["serve"], { TOLLGATE_LOGLEVEL: "debug" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "TOLLGATE_LOGLEVEL: not a Tollgate setting; did you mean TOLLGATE_LOG_LEVEL?",
    );
  });

  it("a flag where a setting belongs is refused, not ignored", async () => {
    const r = await cli(["serve", "--port", "9999", "--policy", "examples/policy.yaml"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('serve: unknown argument "--port"');
    expect(r.stderr).toContain("settings are environment variables");
  });

  it("a number with a unit is taken where the setting carries one, else refused clearly", async () => {
    const ok = await cli(["settings"], { TOLLGATE_CACHE_TTL_MS: "5s" });
    expect(ok.code).toBe(0);
    const bad = await cli(["serve"], { TOLLGATE_MAX_HEADERS: "lots" });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("TOLLGATE_MAX_HEADERS: must be a whole number");
    expect(bad.stderr).not.toContain("NaN");
  });
});
