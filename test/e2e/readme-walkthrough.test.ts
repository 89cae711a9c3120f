/**
 * The README's walk-through runs as printed: its first block starts the
 * server (the test starts the built server with the same settings), its
 * second runs top to bottom in bash against it, unedited but for the port,
 * and prints, in order, every line its `# →` comments promise.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const SECTION = README.slice(
  README.indexOf("## Walk-through"),
  README.indexOf("\n## ", README.indexOf("## Walk-through") + 1),
);
const BLOCKS = [...SECTION.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

let server: TollgateProcess;

beforeAll(async () => {
  // The first block is how the reader starts the server.
  expect(BLOCKS[0]?.trim()).toBe("TOLLGATE_POLICY_FILE=examples/policy.yaml npm start");
  server = await startTollgateProcess({ TOLLGATE_POLICY_FILE: "examples/policy.yaml" });
}, 30_000);

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

describe("README walk-through", () => {
  it("runs top to bottom as printed and prints what its # → lines say", async () => {
    const script = (BLOCKS[1] ?? "").replaceAll("127.0.0.1:50051", `127.0.0.1:${server.port}`);
    const promised = [...script.matchAll(/^# → (.*)$/gm)].map((m) => m[1] ?? "");
    expect(promised.length).toBeGreaterThanOrEqual(10);
    let out: { stdout: string; stderr: string };
    try {
      out = await run("bash", ["-euo", "pipefail", "-c", script], {
        cwd: ROOT,
        env: { ...process.env, TOLLGATE_SERVER: server.url },
        timeout: 90_000,
      });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; code?: number };
      throw new Error(`exit ${e.code}\n${e.stdout}\n${e.stderr}`);
    }
    // Each promised line, in order.
    let from = 0;
    for (const line of promised) {
      const at = out.stdout.indexOf(line, from);
      expect(
        at,
        `"${line}" after offset ${from} in:\n${out.stdout}\n${out.stderr}`,
      ).toBeGreaterThanOrEqual(0);
      from = at + line.length;
    }
    // The secrets it minted never reach the server's log.
    for (const s of out.stdout.match(/tg_live_[0-9A-Za-z]{30}/g) ?? []) {
      expect(server.output()).not.toContain(s);
    }
  }, 120_000);
});
