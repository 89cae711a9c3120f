/**
 * Access to the management API and to browsers, against the built server:
 * named tokens from TOLLGATE_MANAGEMENT_TOKENS_FILE each work and are named in
 * the audit log, anything else is UNAUTHENTICATED; CORS is off by default and,
 * when origins are configured, answers only those origins.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const ALICE = "alice-token-0123456789abcdef";
const BOB = "bob-token-fedcba9876543210";
const ORIGIN = "https://app.example.com";

let dir: string;
let tokens: TollgateProcess;
let plain: TollgateProcess;
let cors: TollgateProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-tokens-"));
  const file = join(dir, "tokens");
  writeFileSync(file, `# operators\nalice:${ALICE}\n\nbob:${BOB}\n`, { mode: 0o600 });
  [tokens, plain, cors] = await Promise.all([
    startTollgateProcess({ TOLLGATE_MANAGEMENT_TOKENS_FILE: file, TOLLGATE_LOG_LEVEL: "info" }),
    startTollgateProcess({ TOLLGATE_LOG_LEVEL: "info" }),
    startTollgateProcess({
      TOLLGATE_CORS_ORIGINS: `${ORIGIN}, http://localhost:3000`,
      TOLLGATE_LOG_LEVEL: "info",
    }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([tokens?.stop(), plain?.stop(), cors?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe("named management tokens", () => {
  const keysWith = (token?: string) =>
    createClient(
      KeyService,
      createGrpcTransport({
        baseUrl: tokens.url,
        interceptors: [
          (next) => (req) => {
            if (token !== undefined) req.header.set("authorization", token);
            return next(req);
          },
        ],
      }),
    );
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => "ok" as const,
      (e: unknown) => ConnectError.from(e).code,
    );

  it("refuses a missing, wrong, prefixed or differently cased token (UNAUTHENTICATED)", async () => {
    for (const token of [
      undefined,
      "",
      "Bearer ",
      `Bearer ${ALICE}x`,
      `Bearer ${ALICE.slice(0, -1)}`,
      `Bearer ${ALICE.toUpperCase()}`,
      `Bearer alice:${ALICE}`,
      ALICE,
      `Basic ${Buffer.from(`alice:${ALICE}`).toString("base64")}`,
    ]) {
      expect({ token, code: await codeOf(keysWith(token).createKey({ owner: "x" })) }).toEqual({
        token,
        code: Code.Unauthenticated,
      });
    }
  });

  it("accepts each named token and names its holder in the audit log", async () => {
    const a = await keysWith(`Bearer ${ALICE}`).createKey({ owner: "by-alice" });
    const b = await keysWith(`Bearer ${BOB}`).createKey({ owner: "by-bob" });
    await keysWith(`Bearer ${BOB}`).revokeKey({ id: a.key?.id ?? "", reason: "rotation drill" });
    // Log lines reach us through the child's stdout pipe, a moment after the replies.
    const deadline = Date.now() + 3000;
    while (tokens.logs.filter((l) => l.audit !== undefined).length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const audit = tokens.logs.filter((l) => l.audit !== undefined);
    expect(audit).toContainEqual(
      expect.objectContaining({ audit: "create", keyId: a.key?.id, actor: "alice" }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ audit: "create", keyId: b.key?.id, actor: "bob" }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({ audit: "revoke", keyId: a.key?.id, actor: "bob" }),
    );
    // Id-based RotateKey is a management action too.
    const tollgate = createClient(TollgateService, createGrpcTransport({ baseUrl: tokens.url }));
    expect(await codeOf(tollgate.rotateKey({ keyId: b.key?.id ?? "" }))).toBe(Code.Unauthenticated);
    // No token value reaches the log.
    expect(tokens.output()).not.toContain(ALICE);
    expect(tokens.output()).not.toContain(BOB);
  });

  it("does not log the dev-mode warning when tokens are configured", () => {
    expect(tokens.logs.some((l) => String(l.msg).startsWith("dev mode"))).toBe(false);
  });
});

describe("CORS", () => {
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/tollgate.v1.TollgateService/Authorize`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version",
      },
    });
  const call = (url: string, origin: string) =>
    fetch(`${url}/tollgate.v1.TollgateService/Authorize`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: "{}",
    });

  it("is off by default: no CORS headers for any origin", async () => {
    for (const url of [plain.httpUrl, plain.url]) {
      const p = await preflight(url, ORIGIN);
      expect(p.headers.get("access-control-allow-origin")).toBeNull();
      expect(p.headers.get("access-control-allow-methods")).toBeNull();
      const c = await call(url, ORIGIN);
      expect(c.status).toBe(200);
      expect(c.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  it("answers a configured origin's preflight and calls with CORS headers", async () => {
    for (const url of [cors.httpUrl, cors.url]) {
      const p = await preflight(url, ORIGIN);
      expect(p.status).toBe(204);
      expect(p.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(p.headers.get("access-control-allow-methods")).toContain("POST");
      expect(p.headers.get("access-control-allow-headers")?.toLowerCase()).toContain(
        "connect-protocol-version",
      );
      expect(p.headers.get("vary")).toContain("Origin");
      const c = await call(url, ORIGIN);
      expect(c.status).toBe(200);
      expect(c.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(c.headers.get("access-control-expose-headers")?.toLowerCase()).toContain(
        "retry-after",
      );
    }
    const second = await call(cors.httpUrl, "http://localhost:3000");
    expect(second.headers.get("access-control-allow-origin")).toBe("http://localhost:3000");
  });

  it("gives other origins no CORS headers (preflight refused)", async () => {
    for (const origin of [
      "https://evil.example.com",
      "https://app.example.com.evil.com",
      "http://app.example.com",
      "https://APP.example.com:443",
      "null",
    ]) {
      const p = await preflight(cors.httpUrl, origin);
      expect(p.status).toBe(403);
      expect(p.headers.get("access-control-allow-origin")).toBeNull();
      const c = await call(cors.httpUrl, origin);
      expect(c.headers.get("access-control-allow-origin")).toBeNull();
    }
  });
});
