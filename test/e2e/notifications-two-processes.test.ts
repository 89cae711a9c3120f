/**
 * Threshold notifications once across replicas: two built Tollgate processes
 * on one Redis, both taking concurrent traffic for the same key until its
 * quota is spent and past it. The webhook receives exactly one signed alert
 * per threshold (50, 90, 100 %), none for decisions that crossed nothing, and
 * a key expiring soon is noticed once by the two processes' sweeps together.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../src/events/webhook-signature.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { cli, pollUntil } from "../helpers/clients.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const SECRET = "e2e-notifications-webhook-secret-0123";
const QUOTA = 60;

let redis: TestRedis;
let hook: WebhookReceiver;
let procs: TollgateProcess[];

const clientsOf = (p: TollgateProcess) => {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
};

beforeAll(async () => {
  [redis, hook] = await Promise.all([startTestRedis(), startWebhookReceiver()]);
  const policyFile = join(tmpdir(), `tollgate-notify-${process.pid}.yaml`);
  writeFileSync(
    policyFile,
    `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: daily, by: key, quota: { requests: ${QUOTA}, per: day } }
detection:
  webhooks:
    - { name: ops, url: "${hook.url}", secret_env: NOTIFY_HOOK_SECRET }
notifications:
  quota: { thresholds: [50, 90, 100] }
  key_expiry_days: 7
`,
  );
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: "e2enotify:",
    TOLLGATE_PEPPER: "e2e-notifications-pepper-0123456789",
    TOLLGATE_POLICY_FILE: policyFile,
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_NOTIFY_SWEEP_INTERVAL_S: "1",
    NOTIFY_HOOK_SECRET: SECRET,
  };
  procs = await Promise.all([startTollgateProcess(env), startTollgateProcess(env)]);
}, 60_000);

afterAll(async () => {
  await Promise.all((procs ?? []).map((p) => p.stop()));
  await Promise.all([redis?.stop(), hook?.close()]);
});

/** The alerts delivered so far, each checked to be signed with the webhook's secret. */
function alerts(): { rule: string; key_id?: string; threshold_percent?: number }[] {
  return hook.deliveries.map((d) => {
    const header = String(d.headers["tollgate-signature"]);
    expect(verifyWebhook(SECRET, d.body, header, Math.floor(Date.now() / 1000))).toBe(true);
    return (JSON.parse(d.body) as { alert: { rule: string } }).alert;
  });
}

describe("two Tollgate processes on one Redis", () => {
  it("fire each quota threshold exactly once while both take traffic for one key", async () => {
    const [a, b] = procs.map(clientsOf) as [
      ReturnType<typeof clientsOf>,
      ReturnType<typeof clientsOf>,
    ];
    const { key, secret } = await a.keys.createKey({ owner: "acme" });
    const keyId = key?.id ?? "";
    // 3 × the quota, concurrently, alternating processes: 60 allowed, 120 refused.
    const results = await Promise.all(
      Array.from({ length: 3 * QUOTA }, (_, i) =>
        (i % 2 === 0 ? a : b).tollgate.authorize({ apiKey: secret, applyLimits: true }),
      ),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(QUOTA);
    const quota = () => alerts().filter((x) => x.rule === "quota-threshold" && x.key_id === keyId);
    await pollUntil(
      async () => quota().length,
      (n) => n >= 3,
      10_000,
    );
    // More traffic past the quota on both: nothing new to say.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).tollgate.authorize({ apiKey: secret, applyLimits: true }),
      ),
    );
    await new Promise((r) => setTimeout(r, 1500));
    expect(
      quota()
        .map((x) => x.threshold_percent)
        .sort((x, y) => (x ?? 0) - (y ?? 0)),
    ).toEqual([50, 90, 100]);
    // Both processes list the same alerts from the shared store.
    for (const c of [a, b]) {
      const listed = await c.keys.listAlerts({ rule: "quota-threshold", pageSize: 100 });
      expect(listed.alerts.filter((x) => x.keyId === keyId)).toHaveLength(3);
    }
    // And so does the CLI, with the key, owner, limit and threshold of each.
    const out = await cli(["events", "alerts", "--rule", "quota-threshold"], {
      TOLLGATE_SERVER: procs[1]?.url ?? "",
    });
    expect(out.code, out.stderr).toBe(0);
    for (const t of [50, 90, 100])
      expect(out.stdout).toContain(`key=${keyId} owner=acme limit=daily ${t}%`);
  });

  it("notice a key expiring soon once, by the sweeps of both", async () => {
    const [a] = procs.map(clientsOf) as [ReturnType<typeof clientsOf>];
    const { key } = await a.keys.createKey({
      owner: "acme",
      expireTime: timestampFromMs(Date.now() + 2 * 86_400_000),
    });
    const expiring = () =>
      alerts().filter((x) => x.rule === "key-expiring" && x.key_id === key?.id);
    await pollUntil(
      async () => expiring().length,
      (n) => n >= 1,
      10_000,
    );
    // Several more sweeps of both processes.
    await new Promise((r) => setTimeout(r, 3000));
    expect(expiring()).toHaveLength(1);
  });
});
