/**
 * The examples (examples/express, examples/fastify) start against a real
 * Tollgate and answer once with a key and once without, so they cannot rot.
 * They import the built package (dist/): `npm test` builds it first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTollgateClient, type TollgateClient } from "../src/index.js";
import { REPO_ROOT, startTollgate, type TollgateServer } from "./helpers/tollgate-server.js";

let server: TollgateServer;
let admin: TollgateClient;

beforeAll(async () => {
  if (!existsSync(join(REPO_ROOT, "clients/typescript/dist/index.js"))) {
    throw new Error(
      "clients/typescript/dist is missing: run `npm run build --prefix clients/typescript`",
    );
  }
  server = await startTollgate();
  admin = createTollgateClient({ server: server.url, env: {} });
});
afterAll(async () => {
  admin?.close();
  await server?.stop();
});

async function startExample(
  file: string,
): Promise<{ url: string; child: ChildProcess; output: () => string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, file)], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "", TOLLGATE_SERVER: server.url, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${out}`)), 10_000);
    child.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`${file} exited with ${code}:\n${out}`)));
  });
  return { url, child, output: () => out };
}

describe.each(["examples/express/server.mjs", "examples/fastify/server.mjs"])("%s", (file) => {
  it("serves a request with a key, refuses one without, and never logs the key", async () => {
    const { secret } = await admin.createKey({ owner: "acme", scopes: ["orders:read"] });
    const ex = await startExample(file);
    try {
      const ok = await fetch(`${ex.url}/v1/orders`, { headers: { "x-api-key": secret } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ owner: "acme", orders: [] });
      const denied = await fetch(`${ex.url}/v1/orders`);
      expect(denied.status).toBe(401);
      expect(denied.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect((await fetch(`${ex.url}/healthz`)).status).toBe(200);
      expect(ex.output()).not.toContain(secret);
    } finally {
      const exited = new Promise((r) => ex.child.once("exit", r));
      ex.child.kill("SIGTERM");
      await exited;
    }
  });
});
