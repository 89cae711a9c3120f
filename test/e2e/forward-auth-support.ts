/**
 * Shared harness of the forward-auth e2e tests: Tollgate (the built server),
 * an upstream app that records every request it receives, and a real proxy
 * started from the shipped example configuration with the test's ports.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { freePort } from "../helpers/free-port.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

/** The policy of both proxy tests: a tiny per-key rate on `orders`. */
export const POLICY = `
version: 1
default_tier: free
tiers:
  free:
    limits: []
endpoints:
  - name: orders
    method: GET
    path: /v1/orders
    scopes: [orders:read]
    limits:
      - name: orders-per-key
        by: key
        rate: { requests: 2, per: 1h }
  - name: admin
    method: GET
    path: /v1/admin
    scopes: [admin]
`;

/** A request the upstream app received. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** The running pieces. */
export interface Harness {
  tollgate: TollgateProcess;
  /** Requests that reached the app. */
  received: Received[];
  /** The proxy's base URL. */
  proxyUrl: string;
  /** Mints a key; resolves to its secret and id. */
  mint(scopes: string[]): Promise<{ secret: string; id: string; owner: string }>;
  stop(): Promise<void>;
}

export const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url));

/** Starts an app that answers 200 and records what it got. */
export async function startUpstream(): Promise<{
  server: Server;
  port: number;
  received: Received[];
}> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ upstream: true }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port, received };
}

/** Waits until something accepts HTTP on `url` (any status), or throws after `ms`. */
export async function waitForHttp(url: string, ms = 10_000, proc?: ChildProcess): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`proxy exited with ${proc.exitCode}`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > until) throw new Error(`nothing answers on ${url}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Starts Tollgate, the app and the proxy. `proxy` gets the free ports and a
 * temp dir, returns the spawned proxy and its listen port.
 */
export async function startHarness(
  proxy: (p: {
    tollgatePort: number;
    appPort: number;
    proxyPort: number;
    dir: string;
  }) => ChildProcess,
  env: Record<string, string> = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-fa-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
  const tollgate = await startTollgateProcess({
    TOLLGATE_POLICY_FILE: join(dir, "policy.yaml"),
    TOLLGATE_TRUSTED_HOPS: "1",
    ...env,
  });
  const app = await startUpstream();
  const proxyPort = await freePort();
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const child = proxy({ tollgatePort: tollgate.httpPort, appPort: app.port, proxyPort, dir });
  let proxyOut = "";
  child.stdout?.on("data", (b: Buffer) => (proxyOut += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (proxyOut += b.toString()));
  const proxyUrl = `http://127.0.0.1:${proxyPort}`;
  try {
    await waitForHttp(`${proxyUrl}/`, 10_000, child);
  } catch (err) {
    child.kill("SIGKILL");
    await tollgate.stop();
    throw new Error(`${(err as Error).message}\n${proxyOut}`);
  }
  const keys = createClient(KeyService, createGrpcTransport({ baseUrl: tollgate.url }));
  // Requests made while waiting for the proxy are not the test's.
  app.received.length = 0;
  return {
    tollgate,
    received: app.received,
    proxyUrl,
    async mint(scopes) {
      const owner = `o-${Math.random().toString(36).slice(2)}`;
      const r = await keys.createKey({ owner, scopes });
      return { secret: r.secret, id: r.key?.id ?? "", owner };
    },
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      await new Promise<void>((r) => app.server.close(() => r()));
      await tollgate.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The shipped example file with its documented ports replaced by the test's. */
export function templated(
  file: string,
  p: { tollgatePort: number; appPort: number; proxyPort: number },
  proxyDefault: number,
): string {
  return readFileSync(join(EXAMPLES, file), "utf8")
    .replaceAll("127.0.0.1:8080", `127.0.0.1:${p.tollgatePort}`)
    .replaceAll("127.0.0.1:3000", `127.0.0.1:${p.appPort}`)
    .replaceAll(`127.0.0.1:${proxyDefault}`, `127.0.0.1:${p.proxyPort}`);
}

/** Spawns `cmd` with its output piped (collected by startHarness). */
export function spawnProxy(cmd: string, args: string[], cwd: string): ChildProcess {
  return spawn(cmd, args, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "", HOME: cwd, XDG_CONFIG_HOME: cwd, XDG_DATA_HOME: cwd },
  });
}
