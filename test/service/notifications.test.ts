/**
 * Notifications through the real graph (embedded store, ManualClock): a quota
 * crossing each configured threshold, credits crossing theirs and running
 * out, a key expiring soon (on use and by the sweep) and a secret due for
 * rotation — each alert raised once, listed by ListAlerts with its key id,
 * owner, limit and threshold, and delivered to a real webhook receiver,
 * signed, never carrying a secret.
 */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Bucket } from "../../src/events/threshold-crossing.js";
import { verifyWebhook } from "../../src/events/webhook-signature.js";
import type { Alert } from "../../src/gen/tollgate/v1/event_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { startWebhookReceiver, type WebhookReceiver } from "../helpers/webhook-receiver.js";

const SECRET = "notifications-webhook-secret-0123456789";
const DAY = 86_400_000;

let hook: WebhookReceiver;
let h: ServiceHarness;

beforeAll(async () => {
  process.env.TG_TEST_NOTIFY_SECRET = SECRET;
  hook = await startWebhookReceiver();
});
afterAll(async () => {
  await hook.close();
  delete process.env.TG_TEST_NOTIFY_SECRET;
});
afterEach(async () => {
  await h?.close();
  hook.deliveries.length = 0;
});

const policy = (notifications: string) => `
version: 1
envoy_ratelimit:
  - domain: edge
    descriptors:
      - key: tenant
        rate_limit: { unit: month, requests_per_unit: 4, name: tenant-monthly }
default_tier: free
tiers:
  free:
    limits:
      - { name: daily, by: key, quota: { requests: 10, per: day } }
      - { name: owner-daily, by: owner, quota: { requests: 100, per: day } }
      - { name: per-second, by: key, rate: { requests: 1000, per: 1s } }
detection:
  webhooks:
    - { name: ops, url: "${hook.url}", secret_env: TG_TEST_NOTIFY_SECRET, backoff: 10ms }
notifications:
${notifications}
`;

async function start(notifications: string, env: Record<string, string> = {}) {
  h = await createServiceHarness({ policyYaml: policy(notifications), env });
  return h;
}

/** Parsed webhook bodies, each checked to carry a valid signature. */
function delivered(): { rule: string; [k: string]: unknown }[] {
  return hook.deliveries.map((d) => {
    const header = String(d.headers["tollgate-signature"]);
    const t = Number(/t=(\d+)/.exec(header)?.[1]);
    expect(verifyWebhook(SECRET, d.body, header, t)).toBe(true);
    expect(verifyWebhook("another-secret-of-enough-bytes", d.body, header, t)).toBe(false);
    return (JSON.parse(d.body) as { alert: { rule: string } }).alert;
  });
}

async function deliveries(n: number): Promise<{ rule: string; [k: string]: unknown }[]> {
  await pollUntil(
    async () => hook.deliveries.length,
    (c) => c >= n,
    5000,
  );
  // Anything more would have arrived with them: give it a moment.
  await new Promise((r) => setTimeout(r, 100));
  return delivered();
}

async function alerts(rule: string): Promise<Alert[]> {
  return (await h.keys.listAlerts({ rule, pageSize: 100 }, h.auth)).alerts;
}

describe("a quota crossing its thresholds", () => {
  it("fires once per threshold, with key, owner, limit and threshold, signed, never a secret", async () => {
    await start("  quota: { thresholds: [50, 100] }");
    const { key, secret } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const keyId = key?.id ?? "";
    // 10 allowed (50 % at the 5th, 100 % at the 10th), then 5 refused.
    for (let i = 0; i < 15; i++) await h.tollgate.authorize({ apiKey: secret, applyLimits: true });
    const got = await deliveries(2);
    expect(got).toHaveLength(2);
    expect(got.map((a) => [a.rule, a.threshold_percent, a.limit])).toEqual([
      ["quota-threshold", 50, "daily"],
      ["quota-threshold", 100, "daily"],
    ]);
    expect(got[0]).toMatchObject({
      key_id: keyId,
      owner: "acme",
      subject: keyId,
      subject_kind: "key",
    });
    expect(got[0]?.message).toContain("5 of 10 used");
    for (const d of hook.deliveries) expect(d.body).not.toContain(secret);
    const listed = await alerts("quota-threshold");
    expect(listed.map((a) => [a.thresholdPercent, a.limit, a.keyId, a.owner]).sort()).toEqual([
      [100, "daily", keyId, "acme"],
      [50, "daily", keyId, "acme"],
    ]);
    for (const a of listed) expect(`${a.message} ${a.subject}`).not.toContain(secret);
  });

  it("fires again in the next window, and per bucket", async () => {
    await start("  quota: { thresholds: [50] }");
    const a = await h.keys.createKey({ owner: "acme" }, h.auth);
    const b = await h.keys.createKey({ owner: "acme" }, h.auth);
    for (let i = 0; i < 5; i++) {
      await h.tollgate.checkRateLimit({ keyId: a.key?.id ?? "" });
      await h.tollgate.checkRateLimit({ keyId: b.key?.id ?? "" });
    }
    expect((await deliveries(2)).map((x) => x.key_id).sort()).toEqual(
      [a.key?.id, b.key?.id].sort(),
    );
    h.clock.advance(DAY);
    for (let i = 0; i < 5; i++) await h.tollgate.checkRateLimit({ keyId: a.key?.id ?? "" });
    expect(await deliveries(3)).toHaveLength(3);
  });

  it("takes a limit's own list over the common one, for an owner's bucket too", async () => {
    await start("  quota: { thresholds: [50], limits: { daily: [], owner-daily: [10] } }");
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    for (let i = 0; i < 10; i++) await h.tollgate.checkRateLimit({ keyId: key?.id ?? "" });
    const got = await deliveries(1);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      rule: "quota-threshold",
      limit: "owner-daily",
      threshold_percent: 10,
      subject: "acme",
      subject_kind: "owner",
      owner: "acme",
      key_id: key?.id,
    });
  });

  it("takes a cost above one into account (jumping over thresholds)", async () => {
    await start("  quota: { thresholds: [30, 60, 90] }");
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    await h.tollgate.checkRateLimit({ keyId: key?.id ?? "", cost: 7 });
    const got = await deliveries(2);
    expect(got.map((a) => a.threshold_percent)).toEqual([30, 60]);
  });
});

describe("an Envoy descriptor quota", () => {
  it("fires its thresholds once, named by the descriptor's bucket", async () => {
    await start("  quota: { thresholds: [100], limits: { tenant-monthly: [50, 100] } }");
    const call = (tenant: string) =>
      h.envoyRateLimit.shouldRateLimit({
        domain: "edge",
        descriptors: [{ entries: [{ key: "tenant", value: tenant }] }],
      });
    for (let i = 0; i < 6; i++) await call("t1");
    const got = await deliveries(2);
    expect(got.map((a) => [a.rule, a.limit, a.threshold_percent, a.subject_kind])).toEqual([
      ["quota-threshold", "tenant-monthly", 50, "caller"],
      ["quota-threshold", "tenant-monthly", 100, "caller"],
    ]);
    expect(String(got[0]?.subject)).toContain("t1");
    expect(got[0]?.key_id).toBeUndefined();
  });
});

describe("credits", () => {
  const bucket = (keyId: string, before: number, after: number): Bucket => ({
    kind: "credits",
    name: "credits",
    tag: `k:${keyId}`,
    capacity: 100,
    remainingBefore: before,
    remainingAfter: after,
    refused: false,
    period: "none",
    periodEnd: Date.UTC(2026, 1, 1),
  });

  it("fire their thresholds and credits-exhausted once, with the key and owner", async () => {
    await start("  credits: { thresholds: [80] }\n  credits_exhausted: true");
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    const n = h.deps.events.notifier;
    n.creditsCharged(bucket(id, 25, 15), { keyId: id, owner: "acme" });
    n.creditsCharged(bucket(id, 15, 10), { keyId: id, owner: "acme" });
    n.creditsCharged(bucket(id, 1, 0), { keyId: id, owner: "acme" });
    n.creditsCharged({ ...bucket(id, 0, 0), refused: true }, { keyId: id, owner: "acme" });
    const got = await deliveries(2);
    expect(got.map((a) => [a.rule, a.threshold_percent])).toEqual([
      ["credit-threshold", 80],
      ["credits-exhausted", 100],
    ]);
    expect(got[1]).toMatchObject({ key_id: id, owner: "acme", limit: "credits" });
    expect(await alerts("credits-exhausted")).toHaveLength(1);
  });
});

describe("a key expiring soon", () => {
  it("is noticed once when used", async () => {
    await start("  key_expiry_days: 7");
    const expires = h.clock.now() + 3 * DAY;
    const { key, secret } = await h.keys.createKey(
      { owner: "acme", expireTime: timestampFromMs(expires) },
      h.auth,
    );
    const far = await h.keys.createKey(
      { owner: "acme", expireTime: timestampFromMs(h.clock.now() + 30 * DAY) },
      h.auth,
    );
    for (let i = 0; i < 3; i++) {
      await h.tollgate.authorize({ apiKey: secret });
      await h.tollgate.authorize({ apiKey: far.secret });
    }
    const got = await deliveries(1);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ rule: "key-expiring", key_id: key?.id, owner: "acme" });
    expect(got[0]?.message).toContain(new Date(expires).toISOString());
    expect((await alerts("key-expiring"))[0]).toMatchObject({ keyId: key?.id, owner: "acme" });
  });

  it("is noticed by the sweep without any use, once per expiry", async () => {
    await start("  key_expiry_days: 7");
    const { key } = await h.keys.createKey(
      { owner: "acme", expireTime: timestampFromMs(h.clock.now() + 2 * DAY) },
      h.auth,
    );
    await h.keys.createKey({ owner: "acme" }, h.auth);
    await h.deps.events.notifier.sweep();
    await h.deps.events.notifier.sweep();
    expect((await deliveries(1)).map((a) => [a.rule, a.key_id])).toEqual([
      ["key-expiring", key?.id],
    ]);
    // A new expiry is a new notice.
    await h.keys.updateKey(
      {
        id: key?.id ?? "",
        expireTime: timestampFromMs(h.clock.now() + 5 * DAY),
        updateMask: { paths: ["expire_time"] },
      },
      h.auth,
    );
    await h.deps.events.notifier.sweep();
    expect(await deliveries(2)).toHaveLength(2);
  });
});

describe("a secret due for rotation", () => {
  it("is noticed once per secret, again after a rotation ages too", async () => {
    await start("  rotation_due: true", { TOLLGATE_ROTATION_AGE_S: "86400" });
    const { key, secret } = await h.keys.createKey({ owner: "acme" }, h.auth);
    await h.tollgate.authorize({ apiKey: secret });
    h.clock.advance(2 * DAY);
    await h.tollgate.authorize({ apiKey: secret });
    await h.tollgate.authorize({ apiKey: secret });
    await h.deps.events.notifier.sweep();
    const got = await deliveries(1);
    expect(got.map((a) => [a.rule, a.key_id, a.owner])).toEqual([
      ["rotation-due", key?.id, "acme"],
    ]);
    expect(got[0]?.message).not.toContain(secret);
    const rotated = await h.tollgate.rotateKey({ keyId: key?.id ?? "" }, h.auth);
    await h.tollgate.authorize({ apiKey: rotated.secret });
    h.clock.advance(2 * DAY);
    await h.tollgate.authorize({ apiKey: rotated.secret });
    const again = await deliveries(2);
    expect(again).toHaveLength(2);
    for (const d of hook.deliveries) {
      expect(d.body).not.toContain(secret);
      expect(d.body).not.toContain(rotated.secret);
    }
  });
});
