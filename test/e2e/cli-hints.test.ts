/**
 * When a CLI call fails, the message says what to do: start the server or
 * point at it, use the main port rather than the admin port, set the token.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/free-port.js";
import { CLI, startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const run = promisify(execFile);
let p: TollgateProcess;
beforeAll(async () => {
  p = await startTollgateProcess({ TOLLGATE_MANAGEMENT_TOKEN: "cli-hints-token-0123456789" });
}, 30_000);
afterAll(async () => p?.stop());

async function cli(args: string[]) {
  try {
    await run(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "" } });
    return { code: 0, stderr: "" };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? "" };
  }
}

describe("CLI hints", () => {
  it("nothing serving there: says so and how to point the CLI", async () => {
    const r = await cli(["blocks", "list", "--server", `http://127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /is tollgate serving at http:\/\/127\.0\.0\.1:\d+\? set --server or TOLLGATE_SERVER/,
    );
  });

  it("the admin port: says it is the admin port and names the main one", async () => {
    const r = await cli(["blocks", "list", "--server", `http://127.0.0.1:${p.adminPort}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is tollgate's admin port: point the CLI at the main port");
  });

  it("no management token: names the variables and the flag", async () => {
    const r = await cli(["blocks", "list", "--server", p.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("set TOLLGATE_MANAGEMENT_TOKEN or TOLLGATE_MANAGEMENT_TOKEN_FILE");
  });
});
