/**
 * Secrets never leak: one full scenario (create, authorize, ext_authz, limits,
 * blocks, rotate by id and by secret, revoke, events, detection alerts, signed
 * webhooks, usage, bad requests of every kind) on Redis at log level `trace`,
 * then every log line, /metrics, every error, every webhook delivery, every
 * listing response and every value in Redis is searched for every secret, the
 * pepper, the management tokens and the webhook secret — raw, hex and base64.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  Authorization,
  CheckRequestSchema,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { Severity } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";
import { sleep, waitFor } from "./support.js";

const PEPPER = "leak-test-pepper-Zq8rT2vX9kLmN4pW";
const TOKEN = "leak-test-mgmt-token-Hf7Jk2Lp9QwE";
const NAMED = [
  "ops-alice:leak-test-named-token-Ab3Cd5Ef7Gh9",
  "ci:leak-test-named-token-Ij2Kl4Mn6Op8",
];
const WEBHOOK_SECRET = "leak-test-webhook-secret-Rs1Tu3Vw5Xy7";
const PREFIX = "leak:";

let dir: string;
let redis: TestRedis;
let receiver: WebhookReceiver;
let proc: TollgateProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-leak-"));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  redis = await startTestRedis();
  receiver = await startWebhookReceiver();
  const policy = readFileSync("test/security/fixtures/leak-policy.yaml", "utf8")
    .replaceAll("__RECEIVER__", receiver.url)
    .replaceAll("__SECRET_FILE__", file("webhook-secret", `${WEBHOOK_SECRET}\n`));
  proc = await startTollgateProcess({
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: PREFIX,
    TOLLGATE_PEPPER_FILE: file("pepper", `${PEPPER}\n`),
    TOLLGATE_MANAGEMENT_TOKEN_FILE: file("token", `${TOKEN}\n`),
    TOLLGATE_MANAGEMENT_TOKENS_FILE: file("tokens", `${NAMED.join("\n")}\n`),
    TOLLGATE_POLICY_FILE: file("policy.yaml", policy),
    TOLLGATE_LOG_LEVEL: "trace",
    TOLLGATE_EVENT_FLUSH_MS: "20",
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "1000",
    TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
  });
}, 60_000);

afterAll(async () => {
  await proc?.stop();
  await receiver?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it("leaks no secret, pepper or token into logs, metrics, errors, webhooks, listings or Redis", async () => {
  const secrets: string[] = [
    PEPPER,
    TOKEN,
    WEBHOOK_SECRET,
    ...NAMED.map((n) => n.split(":")[1] as string),
  ];
  const seen: string[] = []; // every error message and listing response
  const bearer = (token: string) => [
    (next: Parameters<import("@connectrpc/connect").Interceptor>[0]) =>
      (req: Parameters<Parameters<import("@connectrpc/connect").Interceptor>[0]>[0]) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
  ];
  const grpc = createGrpcTransport({ baseUrl: proc.url, interceptors: bearer(TOKEN) });
  const connect = createConnectTransport({
    baseUrl: proc.httpUrl,
    httpVersion: "1.1",
    interceptors: bearer(TOKEN),
  });
  const tollgate = createClient(TollgateService, grpc);
  const tollgateJson = createClient(TollgateService, connect);
  const keys = createClient(KeyService, grpc);
  const envoy = createClient(Authorization, grpc);
  const wrongKeys = createClient(
    KeyService,
    createGrpcTransport({ baseUrl: proc.url, interceptors: bearer(`${TOKEN}x`) }),
  );
  const expectError = async (p: Promise<unknown>) => {
    try {
      await p;
      seen.push("(no error)");
    } catch (err) {
      const e = ConnectError.from(err);
      seen.push(
        e.message,
        e.rawMessage,
        JSON.stringify(e.details),
        JSON.stringify([...e.metadata]),
      );
    }
  };
  const check = (secret: string, ip: string, extra: Record<string, string> = {}) =>
    envoy.check(
      create(CheckRequestSchema, {
        attributes: {
          source: {
            address: {
              address: {
                case: "socketAddress",
                value: { address: ip, portSpecifier: { case: "portValue", value: 5555 } },
              },
            },
          },
          request: {
            http: {
              method: "GET",
              path: `/v1/orders?token=${secret}`,
              headers: { "x-api-key": secret, authorization: `Bearer ${TOKEN}`, ...extra },
            },
          },
        },
      }),
    );

  // Create.
  const a = await keys.createKey({
    owner: "acme",
    scopes: ["orders:read"],
    metadata: { team: "x" },
  });
  const b = await keys.createKey({ owner: "acme", environment: "test" });
  secrets.push(a.secret, b.secret);
  const aId = a.key?.id ?? "";
  const bId = b.key?.id ?? "";

  // Authorize: allowed, through headers, over both engines, with limits until denied and blocked.
  await tollgate.authorize({
    apiKey: a.secret,
    method: "GET",
    path: "/v1/orders",
    clientIp: "198.51.100.7",
  });
  await tollgateJson.authorize({
    headers: { "x-api-key": a.secret, authorization: `Bearer ${TOKEN}` },
  });
  for (let i = 0; i < 8; i++) {
    await tollgate.authorize({ apiKey: b.secret, applyLimits: true, clientIp: "198.51.100.8" });
  }
  await check(a.secret, "198.51.100.9", { cookie: `session=${a.secret}` });
  await tollgate.checkRateLimit({ keyId: aId, endpoint: "orders" });
  await tollgate.checkRateLimit({ keyId: bId, subject: "s1", endpoint: "shadowed" });
  await tollgate.checkRateLimit({ keyId: bId, subject: "s1", endpoint: "shadowed" });

  // Brute force and credential stuffing from one address: alerts, a block, webhooks.
  for (let i = 0; i < 5; i++) {
    const unknown = generateSecret("live");
    secrets.push(unknown);
    await tollgate.authorize({ apiKey: unknown, clientIp: "203.0.113.50" });
    await check(unknown, "203.0.113.51");
  }
  await tollgate.authorize({ apiKey: `${a.secret}x`, clientIp: "203.0.113.50" });

  // Rotate by id and by secret; use old secrets in their grace period; revoke.
  const ra = await tollgate.rotateKey({ keyId: aId, gracePeriod: { seconds: 60n } });
  const rb = await tollgate.rotateKey({ currentSecret: b.secret, gracePeriod: { seconds: 0n } });
  secrets.push(ra.secret, rb.secret);
  await tollgate.authorize({ apiKey: a.secret });
  await tollgate.authorize({ apiKey: b.secret });
  await tollgate.authorize({ apiKey: ra.secret });
  await keys.revokeKey({ id: aId, reason: "leak drill" });
  await tollgate.authorize({ apiKey: ra.secret });
  await check(ra.secret, "198.51.100.10");

  // Events and listings.
  await tollgate.recordEvent({
    events: [
      {
        id: "leak-ev-1",
        customType: "login.failed",
        subject: "user-1",
        severity: Severity.HIGH,
        clientIp: "203.0.113.60",
        attributes: { note: "n" },
      },
    ],
  });
  await sleep(200);
  seen.push(
    JSON.stringify(await keys.listEvents({}), (_k, v) => (typeof v === "bigint" ? String(v) : v)),
  );
  seen.push(
    JSON.stringify(await keys.listAlerts({}), (_k, v) => (typeof v === "bigint" ? String(v) : v)),
  );
  seen.push(
    JSON.stringify(await keys.getUsage({ keyId: bId }), (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    ),
  );
  seen.push(
    JSON.stringify(await keys.listKeys({ includeRevoked: true }), (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    ),
  );
  seen.push(
    JSON.stringify(await keys.listBlocks({}), (_k, v) => (typeof v === "bigint" ? String(v) : v)),
  );

  // Errors with secrets in every wrong place.
  await expectError(wrongKeys.createKey({ owner: "x" }));
  await expectError(keys.getKey({ id: rb.secret }));
  await expectError(keys.revokeKey({ id: rb.secret, reason: rb.secret.repeat(20) }));
  await expectError(keys.updateKey({ id: bId, updateMask: { paths: [rb.secret] } }));
  await expectError(
    keys.createKey({ owner: rb.secret.repeat(10), metadata: { [rb.secret]: "x".repeat(600) } }),
  );
  await expectError(
    keys.createKey({ owner: "o", ipAllow: [rb.secret], scopes: [`${rb.secret}!`] }),
  );
  await expectError(tollgate.rotateKey({ currentSecret: a.secret }));
  await expectError(tollgate.rotateKey({ currentSecret: `${rb.secret} ` }));
  await expectError(tollgate.rotateKey({ keyId: rb.secret }));
  await expectError(tollgate.rotateKey({ keyId: aId, currentSecret: rb.secret }));
  await expectError(tollgate.checkRateLimit({ keyId: rb.secret }));
  await expectError(tollgate.checkRateLimit({ subject: rb.secret.repeat(20) }));
  await expectError(tollgate.authorize({ apiKey: rb.secret, clientIp: rb.secret }));
  await expectError(tollgate.authorize({ apiKey: rb.secret, path: `/${rb.secret}\\` }));
  await expectError(tollgate.authorize({ apiKey: rb.secret, endpoint: rb.secret }));
  await expectError(
    tollgateJson.authorize({ apiKey: rb.secret, headers: { [rb.secret]: "x".repeat(9000) } }),
  );
  await expectError(keys.listKeys({ pageToken: Buffer.from(rb.secret).toString("base64url") }));
  await expectError(
    tollgate.recordEvent({ events: [{ id: `${rb.secret}!`, subject: rb.secret }] }),
  );
  await expectError(keys.deleteBlock({ subject: rb.secret, subjectKind: 2 }));

  // Let webhooks deliver, then read /metrics and stop (flushes the log).
  expect(await waitFor(() => receiver.deliveries.length >= 2, 10_000)).toBe(true);
  const metrics = await (await fetch(`http://127.0.0.1:${proc.adminPort}/metrics`)).text();
  await proc.stop();
  const logs = proc.output();

  // The scenario did run: decisions, alerts and deliveries exist.
  expect(logs).toContain('"access":"Authorize"');
  expect(logs).toContain('"audit":"rotate"');
  expect(metrics).toContain("tollgate_alerts_total");
  expect(receiver.deliveries.length).toBeGreaterThanOrEqual(2);

  const dump = await redisDump(redis.url);
  const places: Record<string, string> = {
    logs,
    metrics,
    errors: seen.join("\n"),
    webhooks: receiver.deliveries.map((d) => JSON.stringify(d.headers) + d.body).join("\n"),
    redis: dump,
  };
  const leaks: string[] = [];
  for (const s of secrets) {
    const forms = [
      s,
      Buffer.from(s).toString("hex"),
      Buffer.from(s).toString("base64").replace(/=+$/, ""),
      Buffer.from(s).toString("base64url"),
      encodeURIComponent(s),
    ];
    // A key's random part alone is as good as the key.
    if (s.startsWith("tg_")) forms.push(s.slice(s.lastIndexOf("_") + 1, -6));
    for (const [where, text] of Object.entries(places)) {
      for (const f of forms) {
        const at = text.indexOf(f);
        if (at >= 0)
          leaks.push(`${where}: …${text.slice(Math.max(0, at - 80), at + f.length + 20)}…`);
      }
    }
  }
  expect(leaks).toEqual([]);
}, 90_000);

/** Every key and value in Redis, as text. */
async function redisDump(url: string): Promise<string> {
  const c = new Redis(url);
  try {
    const out: string[] = [];
    for (const k of await c.keys("*")) {
      const type = await c.type(k);
      let v: unknown;
      if (type === "string") v = await c.get(k);
      else if (type === "hash") v = await c.hgetall(k);
      else if (type === "zset") v = await c.call("ZRANGE", k, "0", "-1", "WITHSCORES");
      else if (type === "list") v = await c.lrange(k, 0, -1);
      else if (type === "set") v = await c.smembers(k);
      else if (type === "stream") v = await c.xrange(k, "-", "+");
      out.push(`${k} ${JSON.stringify(v)}`);
    }
    expect(out.length).toBeGreaterThan(0);
    return out.join("\n");
  } finally {
    c.disconnect();
  }
}
