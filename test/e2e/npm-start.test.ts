/**
 * The README's first command, `npm start`, as a user runs it: it starts
 * without rebuilding an unchanged checkout (the suite has just built), and a
 * SIGTERM sent to the npm process reaches the server, which drains and exits
 * — no node process is left behind.
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("npm start", () => {
  it("serves without rebuilding, and SIGTERM to npm stops the server (no orphan)", async () => {
    // A stale build would make npm start rebuild under the other running tests.
    const check = spawnSync(process.execPath, ["scripts/build-if-stale.mjs", "--check"], {
      cwd: ROOT,
    });
    if (check.status !== 0) throw new Error("the build is stale: run `npm run build` first");
    const began = Date.now();
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: ROOT,
      env: {
        ...process.env,
        TOLLGATE_ADDR: "127.0.0.1:0",
        TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
        TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
        TOLLGATE_LOG_LEVEL: "info",
        REDIS_URL: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    npm.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<number | null>((r) => npm.once("exit", (code) => r(code)));
    let serving: { pid: number } | undefined;
    while (!serving) {
      const line = out.split("\n").find((l) => l.includes('"msg":"tollgate serving"'));
      if (line) serving = JSON.parse(line) as { pid: number };
      else if (npm.exitCode !== null) throw new Error(`npm start exited:\n${out}`);
      else if (Date.now() - began > 20_000) throw new Error(`npm start did not serve:\n${out}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    const startMs = Date.now() - began;
    console.log(`npm start served after ${startMs} ms`);
    // An unchanged checkout is not rebuilt (tsc alone takes 10+ s here).
    expect(out).not.toMatch(/buf generate|tsc -p/);
    expect(startMs).toBeLessThan(8_000);
    // npm runs the script through sh; `exec` makes node npm's own child, so
    // the signal npm forwards reaches the server itself.
    npm.kill("SIGTERM");
    const code = await Promise.race([
      exited,
      new Promise<"hung">((r) => setTimeout(() => r("hung"), 15_000)),
    ]);
    if (code === "hung") npm.kill("SIGKILL");
    for (let i = 0; i < 100 && alive(serving.pid); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const orphan = alive(serving.pid);
    if (orphan) process.kill(serving.pid, "SIGKILL");
    expect(orphan).toBe(false);
    expect(code).not.toBe("hung");
    expect(out).toContain('"msg":"stopped"');
  }, 40_000);
});
