/**
 * What users (and the image) run: the packed package, installed with
 * production dependencies only, started on the Node LTS line the image ships
 * (node@26 from npm, cached under node_modules/.cache/node-lts). Catches a
 * runtime import of a devDependency, a file missing from package.json
 * "files" (lua/ scripts, dist/), and a Node-version break.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/free-port.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The Node major the Dockerfile's runtime stage uses (node:26-slim). */
const LTS_MAJOR = 26;
const LTS_PREFIX = join(ROOT, "node_modules/.cache/node-lts");
const LTS_NODE = join(LTS_PREFIX, "node_modules/node/bin/node");
const TOKEN = "prod-install-management-token-0123456789";

let dir = "";
let child: ChildProcess | undefined;
let output = "";
const ports = { main: 0, http: 0, admin: 0 };

async function ltsNode(): Promise<string> {
  if (!existsSync(LTS_NODE)) {
    await run(
      "npm",
      [
        "install",
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--prefix",
        LTS_PREFIX,
        `node@${LTS_MAJOR}`,
      ],
      { timeout: 120_000 },
    );
  }
  const { stdout } = await run(LTS_NODE, ["--version"]);
  expect(stdout.trim()).toMatch(new RegExp(`^v${LTS_MAJOR}\\.`));
  return LTS_NODE;
}

async function curl(args: string[]): Promise<Buffer> {
  const { stdout } = await run("curl", ["-sS", "--max-time", "5", ...args], {
    encoding: "buffer",
    timeout: 10_000,
  });
  return stdout;
}

async function connect(
  method: string,
  body: unknown,
  auth = false,
): Promise<Record<string, unknown>> {
  const out = await curl([
    "-H",
    "content-type: application/json",
    ...(auth ? ["-H", `authorization: Bearer ${TOKEN}`] : []),
    "-d",
    JSON.stringify(body),
    `http://127.0.0.1:${ports.main}/${method}`,
  ]);
  return JSON.parse(out.toString()) as Record<string, unknown>;
}

beforeAll(async () => {
  if (!existsSync(join(ROOT, "dist/cli/main.js"))) {
    throw new Error("dist/cli/main.js is missing: run `npm run build` first (npm test does it)");
  }
  dir = mkdtempSync(join(tmpdir(), "tollgate-prod-"));
  const node = await ltsNode();
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir, ROOT], {
    cwd: dir,
    timeout: 30_000,
  });
  const tarball = join(dir, (JSON.parse(stdout) as { filename: string }[])[0]?.filename ?? "");
  const app = join(dir, "app");
  writeFileSync(join(dir, "package.json"), "{}");
  await run(
    "npm",
    [
      "install",
      "--omit=dev",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      "--prefix",
      app,
      tarball,
    ],
    { cwd: dir, timeout: 45_000 },
  );
  const entry = join(app, "node_modules/tollgate/dist/cli/main.js");
  [ports.main, ports.http, ports.admin] = [await freePort(), await freePort(), await freePort()];
  child = spawn(node, [entry, "serve"], {
    cwd: app,
    env: {
      PATH: process.env.PATH ?? "",
      NODE_ENV: "production",
      TOLLGATE_ADDR: `127.0.0.1:${ports.main}`,
      TOLLGATE_HTTP_ADDR: `127.0.0.1:${ports.http}`,
      TOLLGATE_ADMIN_ADDR: `127.0.0.1:${ports.admin}`,
      TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (b: Buffer) => {
    output += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    output += b.toString();
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tollgate exited ${child.exitCode}:\n${output}`);
    const res = await fetch(`http://127.0.0.1:${ports.admin}/readyz`).catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`tollgate did not become ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 110_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child?.once("exit", r));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe(`the packed package, production dependencies only, on Node ${LTS_MAJOR}`, () => {
  it("serves /healthz and /readyz with 200 on the admin port", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      const out = await curl([
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `http://127.0.0.1:${ports.admin}${path}`,
      ]);
      expect(out.toString()).toBe("200");
    }
  });

  it("answers the gRPC health check SERVING over HTTP/2 (curl, raw gRPC frame)", async () => {
    const frame = join(dir, "health-request.bin");
    writeFileSync(frame, Buffer.from([0, 0, 0, 0, 0])); // empty HealthCheckRequest
    const out = await curl([
      "--http2-prior-knowledge",
      "-H",
      "content-type: application/grpc",
      "-H",
      "te: trailers",
      "--data-binary",
      `@${frame}`,
      `http://127.0.0.1:${ports.main}/grpc.health.v1.Health/Check`,
    ]);
    // Uncompressed, 2-byte message: field 1 (status) = 1 (SERVING).
    expect([...out]).toEqual([0, 0, 0, 0, 2, 0x08, 0x01]);
  });

  it("mints a key and authorizes it over Connect JSON (lua/ scripts and dist/ shipped)", async () => {
    const created = await connect(
      "tollgate.v1.KeyService/CreateKey",
      { owner: "acme", tier: "free" },
      true,
    );
    const secret = created.secret;
    expect(typeof secret).toBe("string");
    const ok = await connect("tollgate.v1.TollgateService/Authorize", {
      apiKey: secret,
      method: "GET",
      path: "/",
    });
    expect(ok).toMatchObject({ identity: { owner: "acme" } });
    const unknown = await connect("tollgate.v1.TollgateService/Authorize", {
      apiKey: "tg_live_nope",
    });
    expect(unknown).toMatchObject({
      reason: expect.stringMatching(/^REASON_(UNKNOWN|MALFORMED)_KEY$/),
    });
    expect(unknown.allowed ?? false).toBe(false);
  });
});
