/**
 * The client's resilience against a real server reached through a counting
 * TCP proxy: which calls are retried, the deadline, and the circuit breaker
 * opening and closing. Every attempt of a gRPC call on a broken connection
 * opens a new TCP connection, so the proxy's connection count is the number
 * of attempts.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTollgateClient } from "../src/index.js";
import { closedPort, startProxy } from "./helpers/net.js";
import { startTollgate, type TollgateServer } from "./helpers/tollgate-server.js";

let server: TollgateServer;
let secret = "";
let keyId = "";

beforeAll(async () => {
  server = await startTollgate();
  const admin = createTollgateClient({ server: server.url, env: {} });
  const created = await admin.createKey({ owner: "acme", scopes: ["orders:read"] });
  secret = created.secret;
  keyId = created.key?.id ?? "";
  admin.close();
});
afterAll(async () => {
  await server?.stop();
});

const codeOf = (e: unknown) => ConnectError.from(e).code;

describe("retries", () => {
  it("retries a safe call (Authorize without apply_limits) on UNAVAILABLE and succeeds", async () => {
    const proxy = await startProxy(server.port, (n) => (n === 0 ? "reset" : "forward"));
    const c = createTollgateClient({ server: proxy.url, env: {}, timeoutMs: 2_000 });
    try {
      const res = await c.authorize({ apiKey: secret });
      expect(res.allowed).toBe(true);
      expect(proxy.connections()).toBe(2);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("retries a safe call at most twice (3 attempts) by default", async () => {
    const proxy = await startProxy(server.port, () => "reset");
    const c = createTollgateClient({ server: proxy.url, env: {}, breaker: false });
    try {
      const err = await c.getKey({ id: keyId }).catch((e: unknown) => e);
      expect(codeOf(err)).toBe(Code.Unavailable);
      expect(proxy.connections()).toBe(3);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("retries ExportKeys, and ImportKeys only without overwrite", async () => {
    const proxy = await startProxy(server.port, () => "reset");
    const c = createTollgateClient({ server: proxy.url, env: {}, breaker: false });
    try {
      const err = await c.exportKeys({}).catch((e: unknown) => e);
      expect(codeOf(err)).toBe(Code.Unavailable);
      expect(proxy.connections()).toBe(3);
      const keys = [{ key: { id: "key_import0000000000", owner: "acme" } }];
      await c.importKeys({ keys, dryRun: true }).catch(() => {});
      expect(proxy.connections()).toBe(6);
      await c.importKeys({ keys }).catch(() => {});
      expect(proxy.connections()).toBe(9);
      // With overwrite a repeat could replace a change made in between: attempted once.
      await c.importKeys({ keys, overwrite: true }).catch(() => {});
      expect(proxy.connections()).toBe(10);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("never retries a charging call: CheckRateLimit and Authorize(apply_limits) are attempted once", async () => {
    const proxy = await startProxy(server.port, () => "reset");
    const c = createTollgateClient({ server: proxy.url, env: {}, breaker: false });
    try {
      expect(codeOf(await c.checkRateLimit({ keyId }).catch((e: unknown) => e))).toBe(
        Code.Unavailable,
      );
      expect(proxy.connections()).toBe(1);
      const err = await c.authorize({ apiKey: secret, applyLimits: true }).catch((e: unknown) => e);
      expect(codeOf(err)).toBe(Code.Unavailable);
      expect(proxy.connections()).toBe(2);
      // …nor a state change without an idempotency key.
      await c.createKey({ owner: "acme" }).catch(() => {});
      expect(proxy.connections()).toBe(3);
      // The error never carries the key.
      expect(String(err)).not.toContain(secret);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("gives up at the deadline (200 ms) on a hung server and does not retry DEADLINE_EXCEEDED", async () => {
    const proxy = await startProxy(server.port, () => "blackhole");
    const c = createTollgateClient({ server: proxy.url, env: {}, breaker: false });
    try {
      const t0 = performance.now();
      const err = await c.authorize({ apiKey: secret }).catch((e: unknown) => e);
      const took = performance.now() - t0;
      expect(codeOf(err)).toBe(Code.DeadlineExceeded);
      expect(took).toBeGreaterThanOrEqual(150);
      expect(took).toBeLessThan(1_000);
      expect(proxy.connections()).toBe(1);
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("gives ExportKeys and ImportKeys the bulk deadline, not the management one", async () => {
    const proxy = await startProxy(server.port, () => "blackhole");
    const c = createTollgateClient({
      server: proxy.url,
      env: {},
      breaker: false,
      managementTimeoutMs: 50,
      bulkTimeoutMs: 400,
    });
    try {
      for (const call of [() => c.exportKeys({}), () => c.importKeys({ keys: [{}] })]) {
        const t0 = performance.now();
        expect(codeOf(await call().catch((e: unknown) => e))).toBe(Code.DeadlineExceeded);
        const took = performance.now() - t0;
        expect(took).toBeGreaterThanOrEqual(350);
        expect(took).toBeLessThan(2_000);
      }
    } finally {
      c.close();
      await proxy.close();
    }
  });
});

describe("circuit breaker", () => {
  it("opens after 5 consecutive failures, fails fast, half-opens after 1 s and closes when the server is back", async () => {
    let down = true;
    const proxy = await startProxy(server.port, () => (down ? "reset" : "forward"));
    const c = createTollgateClient({
      server: proxy.url,
      env: {},
      timeoutMs: 2_000,
      retry: { maxRetries: 0 },
    });
    try {
      for (let i = 0; i < 5; i++) {
        expect(c.breakerState()).toBe("closed");
        expect(codeOf(await c.authorize({ apiKey: secret }).catch((e: unknown) => e))).toBe(
          Code.Unavailable,
        );
      }
      expect(c.breakerState()).toBe("open");
      expect(proxy.connections()).toBe(5);
      // Open: UNAVAILABLE at once, without touching the network.
      const t0 = performance.now();
      const fast = await c.authorize({ apiKey: secret }).catch((e: unknown) => e);
      expect(codeOf(fast)).toBe(Code.Unavailable);
      expect(ConnectError.from(fast).rawMessage).toContain("circuit breaker is open");
      expect(performance.now() - t0).toBeLessThan(20);
      expect(proxy.connections()).toBe(5);
      // The server comes back; after 1 s one probe goes through and closes the breaker.
      down = false;
      await new Promise((r) => setTimeout(r, 1_050));
      expect(c.breakerState()).toBe("half-open");
      expect((await c.authorize({ apiKey: secret })).allowed).toBe(true);
      expect(c.breakerState()).toBe("closed");
    } finally {
      c.close();
      await proxy.close();
    }
  });

  it("counts a stopped server: a closed port is UNAVAILABLE and opens the breaker too", async () => {
    const port = await closedPort();
    const c = createTollgateClient({
      server: `http://127.0.0.1:${port}`,
      env: {},
      retry: { maxRetries: 0 },
    });
    for (let i = 0; i < 5; i++) {
      expect(codeOf(await c.getKey({ id: keyId }).catch((e: unknown) => e))).toBe(Code.Unavailable);
    }
    expect(c.breakerState()).toBe("open");
    c.close();
  });
});
