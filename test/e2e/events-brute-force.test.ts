/**
 * The brute-force scenario end to end, on the embedded store, standalone Redis
 * (two replicas) and a 3-master Redis Cluster: one IP sends many unknown keys →
 * the brute-force rule fires once, its alert reaches a real HTTP receiver with a
 * valid signature, the IP is blocked (on every replica, even without
 * apply_limits) while another IP with a good key still works; credential
 * stuffing fires on the distinct unknown keys; events, alerts and the block are
 * listed by the management API.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../src/events/webhook-signature.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType, SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { startTestCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const SECRET = "e2e-webhook-secret-0123456789abcdef";
const ATTACKER = "203.0.113.66";
const GOOD_IP = "198.51.100.7";

function policyWith(receiver: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-events-"));
  const file = join(dir, "policy.yaml");
  const text = readFileSync("test/fixtures/policies/events-detection.yaml", "utf8");
  writeFileSync(file, text.replaceAll("__RECEIVER__", receiver));
  return file;
}

function clientsOf(p: TollgateProcess) {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(["memory", "redis", "cluster"] as const)("brute force on %s", (mode) => {
  let redis: TestRedis | undefined;
  let cluster: TestCluster | undefined;
  let receiver: WebhookReceiver;
  const procs: TollgateProcess[] = [];

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    const env: Record<string, string> = {
      TOLLGATE_POLICY_FILE: policyWith(receiver.url),
      TOLLGATE_TEST_WEBHOOK_SECRET: SECRET,
      TOLLGATE_EVENT_FLUSH_MS: "20",
      // Aggregated records of repeated failures are written after 1 s, not 10.
      TOLLGATE_EVENT_AGGREGATE_MS: "1000",
      TOLLGATE_ACCESS_LOG: "false",
      TOLLGATE_LOG_LEVEL: "info",
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
      TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
    };
    if (mode === "redis") {
      redis = await startTestRedis();
      // Its own namespace: a shared REDIS_URL keeps each file's pepper apart.
      Object.assign(env, {
        REDIS_URL: redis.url,
        TOLLGATE_REDIS_PREFIX: "brute:",
        TOLLGATE_PEPPER: "e2e-events-pepper-0123456789",
      });
    }
    if (mode === "cluster") {
      cluster = await startTestCluster();
      Object.assign(env, {
        REDIS_URL: `redis://127.0.0.1:${cluster.nodes[0]?.port}`,
        TOLLGATE_REDIS_MODE: "cluster",
        TOLLGATE_PEPPER: "e2e-events-pepper-0123456789",
      });
    }
    const n = mode === "redis" ? 2 : 1;
    procs.push(...(await Promise.all(Array.from({ length: n }, () => startTollgateProcess(env)))));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await receiver?.close();
    await redis?.stop();
    await cluster?.stop();
  });

  it("alerts once with a verifiable signature, blocks the IP everywhere, spares other IPs", async () => {
    const a = clientsOf(procs[0] as TollgateProcess);
    const replicas = procs.map(clientsOf);
    // A just-started replica may still be discovering the cluster's slots.
    const { secret, key } = await until("the store to be reachable", () =>
      a.keys.createKey({ owner: "acme" }).catch(() => undefined),
    );
    const good = { apiKey: secret, method: "GET", path: "/v1/orders" };
    expect((await a.tollgate.authorize({ ...good, clientIp: ATTACKER })).allowed).toBe(true);

    let unknown = 0;
    for (let i = 0; i < 25; i++) {
      const r = await a.tollgate.authorize({
        ...good,
        apiKey: generateSecret("live"),
        clientIp: ATTACKER,
      });
      // The block may land before the loop ends (detection runs every 20 ms).
      expect([Reason.UNKNOWN_KEY, Reason.BLOCKED]).toContain(r.reason);
      if (r.reason === Reason.UNKNOWN_KEY) unknown++;
    }
    // Every replica refuses the IP — even with a valid key, without apply_limits.
    for (const c of replicas) {
      const r = await until("the IP to be blocked", async () => {
        const x = await c.tollgate.authorize({ ...good, clientIp: ATTACKER });
        return x.reason === Reason.BLOCKED ? x : undefined;
      });
      expect(r.allowed).toBe(false);
      expect(r.httpStatus).toBe(429);
      expect(r.responseHeaders.some((h) => h.name === "retry-after")).toBe(true);
      const other = await c.tollgate.authorize({ ...good, clientIp: GOOD_IP });
      expect(other.allowed).toBe(true);
    }

    const delivery = await until("the brute-force webhook", async () =>
      receiver.deliveries.find((d) => d.body.includes('"rule":"brute-force"')),
    );
    const header = String(delivery.headers["tollgate-signature"]);
    expect(verifyWebhook(SECRET, delivery.body, header, Math.floor(Date.now() / 1000))).toBe(true);
    expect(
      verifyWebhook("another-secret-0123456789", delivery.body, header, Date.now() / 1000),
    ).toBe(false);
    expect(verifyWebhook(SECRET, `${delivery.body} `, header, Math.floor(Date.now() / 1000))).toBe(
      false,
    );
    const body = JSON.parse(delivery.body) as { alert: Record<string, string> };
    expect(body.alert).toMatchObject({
      rule: "brute-force",
      severity: "high",
      subject: ATTACKER,
      subject_kind: "ip",
    });
    expect(body.alert.blocked_until).toBeDefined();
    await until("the credential-stuffing webhook", async () =>
      receiver.deliveries.find((d) => d.body.includes('"rule":"credential-stuffing"')),
    );

    // More failures within the cool-down: still one alert per rule.
    for (let i = 0; i < 5; i++) {
      const r = await a.tollgate.authorize({
        ...good,
        apiKey: generateSecret("live"),
        clientIp: ATTACKER,
      });
      if (r.reason === Reason.UNKNOWN_KEY) unknown++;
    }
    // A sleep on purpose: nothing more may be delivered, and "nothing
    // happens" has no condition to wait for; 300 ms is well past a delivery.
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.deliveries.filter((d) => d.body.includes('"rule":"brute-force"'))).toHaveLength(
      1,
    );

    const alerts = await a.keys.listAlerts({ rule: "brute-force" });
    expect(alerts.alerts).toHaveLength(1);
    expect(alerts.alerts[0]?.subject).toBe(ATTACKER);
    // Repeated failures are stored aggregated: few records whose counts add up.
    const events = await until("auth failures to be listed", async () => {
      const r = await a.keys.listEvents({
        subject: ATTACKER,
        type: EventType.AUTH_FAILURE,
        pageSize: 100,
      });
      const counted = r.events.reduce((n, e) => n + Number(e.attributes.count), 0);
      return counted === unknown ? r : undefined;
    });
    expect(events.events.length).toBeLessThan(unknown);
    const first = events.events.at(-1)?.attributes ?? {};
    expect(first.reason).toBe("UNKNOWN_KEY");
    expect(first.key_fp).toMatch(/^[0-9a-f]{16}$/);
    expect(first.key_fps?.split(",")[0]).toBe(first.key_fp);
    const paged = await a.keys.listEvents({
      subject: ATTACKER,
      type: EventType.AUTH_FAILURE,
      pageSize: 1,
    });
    expect(paged.events).toHaveLength(1);
    expect(paged.nextPageToken).not.toBe("");
    const blocks = await a.keys.listBlocks({});
    expect(
      blocks.blocks.some((b) => b.subjectKind === SubjectKind.IP && b.subject === ATTACKER),
    ).toBe(true);

    // The audit trail names the acting token.
    const audit = await until("the key_created audit event", async () => {
      const r = await a.keys.listEvents({ subject: key?.id ?? "", type: EventType.KEY_CREATED });
      return r.events[0];
    });
    expect(audit.attributes.actor).toBe("dev-mode");
  });
});
