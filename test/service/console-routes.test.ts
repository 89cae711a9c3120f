/**
 * The web console's own endpoints on a real HTTP socket over the real service
 * graph: strict headers on every answer, same-origin only, a login that turns
 * the management token into an HttpOnly SameSite=Strict session cookie, and a
 * live decision stream that needs that session and gives its feed
 * subscription back when the browser goes away.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsoleRoutes } from "../../src/console/console-routes.js";
import { createHttpRoutes } from "../../src/transport/http-routes.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY } from "./support.js";

const VIEWER = "viewer-token-0123456789abcdef";
let h: ServiceHarness;
let server: Server;
let base = "";
let webConsole: ReturnType<typeof createConsoleRoutes>;

beforeAll(async () => {
  h = await createServiceHarness({
    policyYaml: EXAMPLE_POLICY,
    extraTokens: [{ name: "viewer", token: VIEWER, readOnly: true }],
  });
  webConsole = createConsoleRoutes({
    deps: h.deps,
    assets: new Map([
      ["/console/", { type: "text/html; charset=utf-8", body: Buffer.from("<p>") }],
    ]),
  });
  const handler = createHttpRoutes({ routes: webConsole.routes })(
    (_req, res) => {
      res.writeHead(404);
      res.end();
    },
    { start() {}, end() {} },
  );
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  webConsole.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await h.close();
});

async function login(token: string): Promise<{ status: number; cookie: string; body: unknown }> {
  const r = await fetch(`${base}/console/api/login`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: r.status, cookie: r.headers.get("set-cookie") ?? "", body: await r.json() };
}

describe("the console's answers", () => {
  it("carry a strict CSP, refuse framing and sniffing", async () => {
    const r = await fetch(`${base}/console/`);
    expect(r.status).toBe(200);
    const csp = r.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(r.headers.get("x-frame-options")).toBe("DENY");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("refuse another site's page: a foreign Origin or a cross-site fetch", async () => {
    for (const headers of <Record<string, string>[]>[
      { origin: "http://evil.example", authorization: `Bearer ${h.token}` },
      { "sec-fetch-site": "cross-site", authorization: `Bearer ${h.token}` },
    ]) {
      const r = await fetch(`${base}/console/api/login`, { method: "POST", headers });
      expect(r.status).toBe(403);
      expect(r.headers.get("set-cookie")).toBeNull();
    }
    const same = await fetch(`${base}/console/api/login`, {
      method: "POST",
      headers: { origin: base, authorization: `Bearer ${h.token}` },
    });
    expect(same.status).toBe(200);
  });
});

describe("console login", () => {
  it("refuses a wrong token and sets no cookie", async () => {
    const r = await login("not-the-management-token");
    expect(r.status).toBe(401);
    expect(r.cookie).toBe("");
  });

  it("sets a short-lived HttpOnly SameSite=Strict cookie that is not the token", async () => {
    const r = await login(h.token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: "default", readOnly: false });
    expect(r.cookie).toMatch(/^tollgate_console=[A-Za-z0-9_-]{43}; /);
    expect(r.cookie).toContain("HttpOnly");
    expect(r.cookie).toContain("SameSite=Strict");
    expect(r.cookie).toContain("Path=/console/api/");
    expect(r.cookie).toContain("Max-Age=900");
    expect(r.cookie).not.toContain(h.token);
  });

  it("tells a read-only token it is read-only", async () => {
    const r = await login(VIEWER);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: "viewer", readOnly: true });
  });
});

describe("the live decision stream", () => {
  it("needs a session", async () => {
    const r = await fetch(`${base}/console/api/decisions`);
    expect(r.status).toBe(401);
  });

  it("streams a key's decisions, never its secret, and unsubscribes on disconnect", async () => {
    const { cookie } = await login(h.token);
    const session = cookie.split(";")[0] ?? "";
    const created = await h.keys.createKey({ owner: "tail" }, h.auth);
    const id = created.key?.id ?? "";
    const before = h.deps.feed.size;
    const abort = new AbortController();
    const r = await fetch(`${base}/console/api/decisions?key=${id}`, {
      headers: { cookie: session },
      signal: abort.signal,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("text/event-stream");
    expect(h.deps.feed.size).toBe(before + 1);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    await h.tollgate.authorize({ apiKey: created.secret, method: "GET", path: "/v1/widgets" });
    let text = "";
    while (!text.includes("event: decision")) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain(`"keyId":"${id}"`);
    expect(text).not.toContain(created.secret);
    abort.abort();
    // The server sees the socket close a moment later.
    for (let i = 0; i < 100 && h.deps.feed.size !== before; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(h.deps.feed.size).toBe(before);
  });

  it("counts denials for the overview, within its bound", async () => {
    await h.tollgate.authorize({
      apiKey: "",
      method: "GET",
      path: "/v1/widgets",
      clientIp: "198.51.100.4",
    });
    const { cookie } = await login(h.token);
    const r = await fetch(`${base}/console/api/overview`, {
      headers: { cookie: cookie.split(";")[0] ?? "" },
    });
    const body = (await r.json()) as {
      byReason: Record<string, number>;
      topDeniedIps: { subject: string }[];
    };
    expect(body.byReason.MISSING_KEY).toBeGreaterThanOrEqual(1);
    expect(body.topDeniedIps.map((e) => e.subject)).toContain("198.51.100.4");
  });
});
