/**
 * The middleware contract, written once and run against each framework
 * adapter (Express, Fastify) with real servers on 127.0.0.1:0 in front of a
 * real Tollgate. Each adapter provides an app with the same routes:
 *
 * - global protection with skip list [/healthz, /public/*];
 * - GET /healthz, GET /public/info: echo the context (null: not checked);
 * - GET /v1/orders (policy endpoint list-orders, scope orders:read);
 * - POST /v1/orders (create-order: orders:write, 2 per minute per key);
 * - GET /admin: route option scopes [admin];
 * - GET /reports/daily: route option endpoint list-orders;
 * - GET /broken: route option endpoint no-such-endpoint (a programming error).
 * - GET /v1/report?cost=N: the handler calls `reportUsage(N)` and answers
 *   `{ duplicate, limits }` (matches no policy endpoint: the tier's limits).
 *
 * Every handler answers `{ identity, decided, endpoint }` from the context.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTollgateClient,
  QUOTA_EXCEEDED_TYPE,
  type TollgateClient,
  type TollgateLog,
  type TollgateMiddlewareOptions,
} from "../../src/index.js";
import { closedPort } from "./net.js";
import { startTollgate, type TollgateServer } from "./tollgate-server.js";

/** A started app. */
export interface App {
  url: string;
  /** Framework log output (if the framework logs), for the no-secret check. */
  output(): string;
  close(): Promise<void>;
}

/** Starts the contract's app with `client` and the middleware `options`. */
export type StartApp = (client: TollgateClient, options: TollgateMiddlewareOptions) => Promise<App>;

/** Registers the contract's tests for one framework. */
export function middlewareContract(startApp: StartApp): void {
  let server: TollgateServer;
  let admin: TollgateClient;
  let client: TollgateClient;
  let app: App;
  const logs: string[] = [];
  const log: TollgateLog = (level, message, fields) => {
    logs.push(JSON.stringify({ level, message, ...fields }));
  };
  const secrets: string[] = [];
  const apps: App[] = [];
  const clients: TollgateClient[] = [];

  const newKey = async (scopes: string[], extra: { ipAllow?: string[] } = {}) => {
    const res = await admin.createKey({ owner: "acme", scopes, ...extra });
    secrets.push(res.secret);
    return { secret: res.secret, id: res.key?.id ?? "" };
  };
  const get = (
    path: string,
    key?: string,
    init: RequestInit & { headers?: Record<string, string> } = {},
  ) =>
    fetch(`${app.url}${path}`, {
      ...init,
      headers: { ...init.headers, ...(key !== undefined && { "x-api-key": key }) },
    });
  const problemOf = async (res: Response) => {
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    return (await res.json()) as Record<string, unknown>;
  };
  const appWith = async (options: TollgateMiddlewareOptions, c = client) => {
    const a = await startApp(c, { log, ...options });
    apps.push(a);
    return a;
  };
  const clientFor = (url: string) => {
    // A generous deadline: the 2 shared cores of CI can stall a call past the 200 ms default.
    const c = createTollgateClient({ server: url, env: {}, timeoutMs: 2_000 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    server = await startTollgate();
    admin = clientFor(server.url);
    client = clientFor(server.url);
    app = await appWith({ skip: ["/healthz", "/public/*"] });
  });
  afterAll(async () => {
    for (const a of apps) await a.close();
    for (const c of clients) c.close();
    await server?.stop();
  });

  describe("allow", () => {
    it("passes the identity to the handler and sets the RateLimit headers", async () => {
      const { secret, id } = await newKey(["orders:read"]);
      const res = await get("/v1/orders", secret);
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        identity: Record<string, unknown>;
        decided: string;
        endpoint: string;
      };
      expect(body.decided).toBe("tollgate");
      expect(body.endpoint).toBe("list-orders");
      expect(body.identity).toMatchObject({
        keyId: id,
        owner: "acme",
        tier: "free",
        scopes: ["orders:read"],
      });
      expect(res.headers.get("ratelimit-policy")).toMatch(/per-key/);
      expect(res.headers.get("ratelimit")).toMatch(/"per-key";r=\d+;t=\d+/);
    });

    it("applies route options: a route's extra scopes and a named endpoint", async () => {
      const reader = await newKey(["orders:read"]);
      const adminKey = await newKey(["orders:read", "admin"]);
      expect((await get("/admin", reader.secret)).status).toBe(403);
      expect((await get("/admin", adminKey.secret)).status).toBe(200);
      const plain = await newKey([]);
      const denied = await get("/reports/daily", plain.secret);
      expect(denied.status).toBe(403);
      expect((await problemOf(denied)).reason).toBe("INSUFFICIENT_SCOPE");
      const ok = await get("/reports/daily", reader.secret);
      expect(ok.status).toBe(200);
    });
  });

  describe("deny", () => {
    it("a missing key is 401 with WWW-Authenticate and a problem+json body", async () => {
      const res = await get("/v1/orders");
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('ApiKey realm="tollgate"');
      const p = await problemOf(res);
      expect(p).toMatchObject({
        type: "about:blank",
        title: "Unauthorized",
        status: 401,
        reason: "MISSING_KEY",
      });
      expect(p.decision_id).toMatch(/.+/);
      expect(typeof p.detail).toBe("string");
    });

    it("an unknown key (a secret rotated out with no grace) is 401", async () => {
      const { secret, id } = await newKey(["orders:read"]);
      const rotated = await admin.rotateKey({ keyId: id, gracePeriod: { seconds: 0n } });
      secrets.push(rotated.secret);
      const res = await get("/v1/orders", secret);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_key"');
      expect((await problemOf(res)).reason).toBe("UNKNOWN_KEY");
    });

    it("a key lacking the endpoint's scope is 403", async () => {
      const { secret } = await newKey(["orders:read"]);
      const res = await get("/v1/orders", secret, { method: "POST" });
      expect(res.status).toBe(403);
      const p = await problemOf(res);
      expect(p).toMatchObject({
        type: "about:blank",
        title: "Forbidden",
        status: 403,
        reason: "INSUFFICIENT_SCOPE",
      });
    });

    it("over the limit is 429 with Retry-After, RateLimit headers and the quota-exceeded problem type", async () => {
      const { secret } = await newKey(["orders:write"]);
      for (let i = 0; i < 2; i++) {
        expect((await get("/v1/orders", secret, { method: "POST" })).status).toBe(201);
      }
      const res = await get("/v1/orders", secret, { method: "POST" });
      expect(res.status).toBe(429);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(res.headers.get("ratelimit")).toMatch(/;r=0;/);
      expect(res.headers.get("ratelimit-policy")).toMatch(/per-key/);
      const p = await problemOf(res);
      expect(p).toMatchObject({
        type: QUOTA_EXCEEDED_TYPE,
        title: "Quota exceeded",
        status: 429,
        reason: "RATE_LIMITED",
      });
    });

    it("a revoked key is refused at once", async () => {
      const { secret, id } = await newKey(["orders:read"]);
      expect((await get("/v1/orders", secret)).status).toBe(200);
      await admin.revokeKey({ id });
      const res = await get("/v1/orders", secret);
      expect(res.status).toBe(401);
      expect((await problemOf(res)).reason).toBe("REVOKED_KEY");
    });
  });

  describe("skip list", () => {
    it("skips exact paths and prefixes without asking Tollgate, but never a path with dot segments", async () => {
      const health = await get("/healthz");
      expect(health.status).toBe(200);
      expect(((await health.json()) as { decided: unknown }).decided).toBeNull();
      expect((await get("/public/info")).status).toBe(200);
      expect((await get("/public/../v1/orders")).status).toBe(401);
      expect((await get("/healthzz")).status).toBe(401);
    });
  });

  describe("client IP", () => {
    it("ignores X-Forwarded-For by default and counts back over trusted proxies only", async () => {
      const { secret } = await newKey(["orders:read"], { ipAllow: ["203.0.113.7"] });
      const xff = { "x-forwarded-for": "203.0.113.7" };
      const untrusting = await get("/v1/orders", secret, { headers: xff });
      expect(untrusting.status).toBe(403);
      expect((await problemOf(untrusting)).reason).toBe("IP_DENIED");
      const trusting = await appWith({ trustProxy: 1 });
      const ok = await fetch(`${trusting.url}/v1/orders`, {
        headers: { "x-api-key": secret, ...xff },
      });
      expect(ok.status).toBe(200);
      // A client-supplied entry before the one the trusted proxy appended is not believed.
      const spoofed = await fetch(`${trusting.url}/v1/orders`, {
        headers: { "x-api-key": secret, "x-forwarded-for": "203.0.113.7, 198.51.100.1" },
      });
      expect(spoofed.status).toBe(403);
      const listed = await appWith({ trustProxy: ["loopback"] });
      expect(
        (await fetch(`${listed.url}/v1/orders`, { headers: { "x-api-key": secret, ...xff } }))
          .status,
      ).toBe(200);
    });
  });

  describe("errors", () => {
    it("a bad route option is a 500 with a log line naming the field, not the key", async () => {
      const { secret } = await newKey(["orders:read"]);
      const before = logs.length;
      const res = await get("/broken", secret);
      expect(res.status).toBe(500);
      expect((await problemOf(res)).reason).toBe("INTERNAL");
      const line = logs.slice(before).join("\n");
      expect(line).toContain('"fields":["endpoint"]');
      expect(line).not.toContain(secret);
    });

    it("a path Tollgate refuses (an encoded slash) is the caller's 400, not a 500", async () => {
      const { secret } = await newKey(["orders:read"]);
      const res = await get("/v1/orders%2Fx", secret);
      expect(res.status).toBe(400);
      expect((await problemOf(res)).reason).toBe("BAD_REQUEST");
    });
  });

  describe("sidecar down", () => {
    it('fail mode "closed" (default) answers 503 problem+json', async () => {
      const down = clientFor(`http://127.0.0.1:${await closedPort()}`);
      const a = await appWith({}, down);
      const res = await fetch(`${a.url}/v1/orders`, {
        headers: { "x-api-key": "tg_live_whatever" },
      });
      expect(res.status).toBe(503);
      const p = await problemOf(res);
      expect(p).toMatchObject({
        type: "about:blank",
        title: "Service Unavailable",
        status: 503,
        reason: "UNAVAILABLE",
      });
    });

    it('fail mode "open" lets the request through with identity null, marked fail-open', async () => {
      const down = clientFor(`http://127.0.0.1:${await closedPort()}`);
      const a = await appWith({ failMode: "open" }, down);
      const res = await fetch(`${a.url}/v1/orders`, {
        headers: { "x-api-key": "tg_live_whatever" },
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ identity: null, decided: "fail-open" });
    });

    it("a server stopped under a running app turns into 503 (closed)", async () => {
      const own = await startTollgate();
      const c = clientFor(own.url);
      const created = await c.createKey({ owner: "acme", scopes: ["orders:read"] });
      secrets.push(created.secret);
      const a = await appWith({}, c);
      const call = () => fetch(`${a.url}/v1/orders`, { headers: { "x-api-key": created.secret } });
      expect((await call()).status).toBe(200);
      // Closing the client's connection first lets the server exit at once (no drain).
      c.close();
      await own.stop();
      expect((await call()).status).toBe(503);
      for (const s of secrets) expect(own.output()).not.toContain(s);
    });
  });

  describe("usage after the response", () => {
    /** GETs /v1/orders (1 per call, 1000/s per key) until one is 429, at most 40 times. */
    const until429 = async (secret: string, on: App) => {
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${on.url}/v1/orders`, { headers: { "x-api-key": secret } });
        if (res.status === 429) return res;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("no 429: the reported usage was not charged");
    };

    it("a handler's reportUsage charges the key's limits without denying; the next request sees the debt", async () => {
      const { secret } = await newKey(["orders:read"]);
      // 5000 on a 1000-per-second bucket: a debt of about four seconds.
      const res = await get("/v1/report?cost=5000", secret);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ duplicate: false, limits: 1 });
      const denied = await get("/v1/orders", secret);
      expect(denied.status).toBe(429);
      expect((await problemOf(denied)).reason).toBe("RATE_LIMITED");
    });

    it("usageAfterResponse reports the finished response's cost; a 0 reports nothing", async () => {
      const reporting = await appWith({
        skip: ["/healthz"],
        usageAfterResponse: (req) => Number(req.headers["x-test-usage"] ?? 0),
      });
      const { secret } = await newKey(["orders:read"]);
      const plain = await fetch(`${reporting.url}/v1/orders`, {
        headers: { "x-api-key": secret, "x-test-usage": "0" },
      });
      expect(plain.status).toBe(200);
      for (let i = 0; i < 5; i++) {
        const r = await fetch(`${reporting.url}/v1/orders`, { headers: { "x-api-key": secret } });
        expect(r.status).toBe(200);
      }
      const heavy = await fetch(`${reporting.url}/v1/orders`, {
        headers: { "x-api-key": secret, "x-test-usage": "5000" },
      });
      expect(heavy.status).toBe(200);
      expect((await until429(secret, reporting)).status).toBe(429);
    });

    it("on fail-open there is no identity to charge: reportUsage resolves null", async () => {
      const open = await appWith(
        { failMode: "open" },
        clientFor(`http://127.0.0.1:${await closedPort()}`),
      );
      const res = await fetch(`${open.url}/v1/report?cost=5`, { headers: { "x-api-key": "x" } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ duplicate: null, limits: null });
    });
  });

  describe("secrets", () => {
    it("no key appears in the middleware's, the framework's or the server's logs", () => {
      expect(secrets.length).toBeGreaterThan(5);
      const all = [logs.join("\n"), server.output(), ...apps.map((a) => a.output())].join("\n");
      for (const s of secrets) expect(all).not.toContain(s);
    });
  });
}
