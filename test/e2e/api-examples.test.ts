/**
 * docs/api-examples.md stays true: every `sh` block runs, in order, against
 * the built server (the documented ports replaced by the test's), must exit 0,
 * and its output must contain each `# expect:` text. No secret minted by the
 * examples reaches the server's log.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/api-examples.md"), "utf8");
/** Each `sh` block with the section it is in. */
const BLOCKS = [...DOC.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => ({
  section: [...DOC.slice(0, m.index).matchAll(/^## (.*)$/gm)].at(-1)?.[1] ?? "intro",
  block: m[1] ?? "",
}));
const TOKEN = "e2e-examples-token-0123456789";
let server: TollgateProcess;
let dir: string;

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
  });
  dir = mkdtempSync(join(tmpdir(), "tollgate-examples-"));
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  for (const f of ["tollgate-example-key.json", "tollgate-example-self.json"]) {
    try {
      const minted = JSON.parse(readFileSync(join(dir, f), "utf8")) as { secret: string };
      expect(server.output()).not.toContain(minted.secret);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** The block as the test runs it: this server's ports, this test's temp dir. */
function localise(block: string): string {
  return block
    .replaceAll("127.0.0.1:50051", `127.0.0.1:${server.port}`)
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${server.httpPort}`)
    .replaceAll("127.0.0.1:9464", `127.0.0.1:${server.adminPort}`)
    .replaceAll("/tmp/tollgate-example", `${dir}/tollgate-example`);
}

describe("docs/api-examples.md", () => {
  it("has examples to run", () => {
    expect(BLOCKS.length).toBeGreaterThanOrEqual(10);
  });

  for (const [i, { section, block }] of BLOCKS.entries()) {
    it(`block ${i + 1} (${section}) runs and prints what it promises`, async () => {
      const expects = [...block.matchAll(/^# expect: (.*)$/gm)].map((m) => m[1] ?? "");
      let out: { stdout: string; stderr: string };
      try {
        out = await run("sh", ["-ec", localise(block)], {
          cwd: ROOT,
          env: { ...process.env, TOLLGATE_MANAGEMENT_TOKEN: TOKEN },
          timeout: 20_000,
        });
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; code?: number };
        throw new Error(`exit ${e.code}\n${e.stdout}\n${e.stderr}`);
      }
      for (const text of expects) expect(out.stdout, out.stderr).toContain(text);
    });
  }
});
