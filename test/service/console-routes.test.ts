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
import { formatPolicy } from "../../src/cli/check-config-command.js";
import { createConsoleRoutes } from "../../src/console/console-routes.js";
import { parsePolicy } from "../../src/policy/policy.js";
import type { KeyLimits } from "../../src/services/key-limits.js";
import { createHttpRoutes } from "../../src/transport/http-routes.js";
import { checkConfigLimitRows } from "../helpers/check-config-table.js";
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

describe("the effective policy table", () => {
  it("needs a session or a management token; a read-only token may look", async () => {
    expect((await fetch(`${base}/console/api/policy`)).status).toBe(401);
    const wrong = await fetch(`${base}/console/api/policy`, {
      headers: { authorization: "Bearer not-the-management-token" },
    });
    expect(wrong.status).toBe(401);
    const viewer = await fetch(`${base}/console/api/policy`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(viewer.status).toBe(200);
    const { cookie } = await login(h.token);
    const bySession = await fetch(`${base}/console/api/policy`, {
      headers: { cookie: cookie.split(";")[0] ?? "" },
    });
    expect(bySession.status).toBe(200);
    const foreign = await fetch(`${base}/console/api/policy`, {
      headers: { authorization: `Bearer ${VIEWER}`, "sec-fetch-site": "cross-site" },
    });
    expect(foreign.status).toBe(403);
  });

  it("has the rows check-config prints for the same policy", async () => {
    const r = await fetch(`${base}/console/api/policy`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    const body = (await r.json()) as {
      limits: { tier: string; endpoint: string; limit: string }[];
    };
    const printed = checkConfigLimitRows(formatPolicy(parsePolicy(EXAMPLE_POLICY, "examples")));
    expect(printed.length).toBeGreaterThan(10);
    expect(body.limits.map((l) => [l.tier, l.endpoint, l.limit])).toEqual(printed);
  });
});

describe("a key's limits", () => {
  const read = async (id: string) => {
    const r = await fetch(`${base}/console/api/key-limits?key=${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    return { status: r.status, body: (await r.json()) as KeyLimits & { error?: string } };
  };
  const row = (k: KeyLimits, name: string) => k.limits.find((l) => l.name === name);

  it("lists every bucket of the key's tier once, with usage that decisions move and reading does not", async () => {
    const created = await h.keys.createKey({ owner: "limits-page", tier: "free" }, h.auth);
    const id = created.key?.id ?? "";
    const before = await read(id);
    expect(before.status).toBe(200);
    expect(before.body.effectiveTier).toBe("free");
    // per-key and monthly are the tier's: one bucket each, shared by every endpoint.
    expect(before.body.limits.filter((l) => l.name === "monthly")).toHaveLength(1);
    expect(row(before.body, "monthly")?.endpoints).toContain("(no match)");
    expect(row(before.body, "monthly")).toMatchObject({
      bucket: "owner limits-page",
      usage: { used: 0, capacity: 100_000, remaining: 100_000 },
    });
    expect(row(before.body, "per-key")?.usage?.capacity).toBe(20);
    // Per client IP: listed, but not the key's bucket.
    expect(row(before.body, "orders-per-ip")).toMatchObject({ bucket: "per client IP" });
    expect(row(before.body, "orders-per-ip")?.usage).toBeUndefined();

    for (let i = 0; i < 3; i++) {
      const a = await h.tollgate.authorize({
        apiKey: created.secret,
        method: "GET",
        path: "/v1/widgets",
        applyLimits: true,
      });
      expect(a.allowed).toBe(true);
    }
    const after = await read(id);
    const again = await read(id);
    expect(row(after.body, "monthly")?.usage?.used).toBe(3);
    expect(row(again.body, "monthly")?.usage?.used).toBe(3);
    // The harness clock stands still, so the rate has not drained either.
    expect(row(after.body, "per-key")?.usage?.used).toBe(3);
  });

  it("says which key is unknown or malformed", async () => {
    expect((await read("key_0000000000000000")).status).toBe(404);
    expect((await read("not a key id")).status).toBe(400);
    expect((await fetch(`${base}/console/api/key-limits?key=x`)).status).toBe(401);
  });
});
