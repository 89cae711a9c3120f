/**
 * ReportUsage through the service harness (the handlers the RPC port serves):
 * a cost known after the response is charged to the limits a CheckRateLimit
 * with the same facts would charge, without denying; the debt denies the next
 * decision until it drains; an id charges once; the request is validated
 * field by field like CheckRateLimit's.
 */
import { Code, type ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { ReportUsageRequestSchema } from "../../src/gen/tollgate/v1/usage_report_pb.js";
import { checkJsonRequest } from "../../src/transport/strict-json.js";
import { pollUntil } from "../helpers/clients.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { failure, violatedFields } from "./support.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  open: {}
  free:
    limits:
      - name: per-key
        by: key
        rate: { requests: 10, per: 1m }
      - name: daily
        by: key
        quota: { requests: 100, per: day }
endpoints:
  - name: chat
    method: POST
    path: /v1/chat
    limits:
      - name: per-ip
        by: ip
        rate: { requests: 100, per: 1m }
blocking:
  by: [key]
  after: 2
  within: 1m
  duration: 1m
`;

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

async function mintKey(): Promise<string> {
  const r = await h.keys.createKey({ owner: "acme" }, h.auth);
  return r.key?.id ?? "";
}

const remaining = (limits: { name: string; remaining: bigint }[]) =>
  Object.fromEntries(limits.map((l) => [l.name, Number(l.remaining)]));

describe("ReportUsage", () => {
  it("charges past the limit without denying; the next decision is denied until the debt drains", async () => {
    const keyId = await mintKey();
    const first = await h.tollgate.checkRateLimit({
      keyId,
      endpoint: "chat",
      clientIp: "192.0.2.1",
    });
    expect(first.allowed).toBe(true);
    const r = await h.tollgate.reportUsage(
      { id: "resp-1", keyId, endpoint: "chat", clientIp: "192.0.2.1", cost: 15 },
      h.auth,
    );
    expect(r.duplicate).toBe(false);
    expect(remaining(r.limits)).toEqual({ "per-key": 0, daily: 84, "per-ip": 84 });
    const perKey = r.limits.find((l) => l.name === "per-key");
    expect(perKey?.exceeded).toBe(true);
    // 16 charged on a bucket of 10 that drains one every 6 s: cost 1 fits after 7 have drained.
    expect(Number(r.retryAfter?.seconds)).toBe(42);
    const denied = await h.tollgate.checkRateLimit({
      keyId,
      endpoint: "chat",
      clientIp: "192.0.2.1",
    });
    expect(denied.allowed).toBe(false);
    expect(denied.httpStatus).toBe(429);
    expect(denied.result?.deciding?.name).toBe("per-key");
    // A second denial would block the key (the policy blocks after 2): the
    // report's duplicate, which charges nothing, shows the debt instead.
    h.clock.advance(41_000);
    const seen = await h.tollgate.reportUsage(
      { id: "resp-1", keyId, endpoint: "chat", clientIp: "192.0.2.1", cost: 15 },
      h.auth,
    );
    expect(seen.duplicate).toBe(true);
    expect(Number(seen.retryAfter?.seconds)).toBe(1);
    h.clock.advance(1_000);
    const again = await h.tollgate.checkRateLimit({
      keyId,
      endpoint: "chat",
      clientIp: "192.0.2.1",
    });
    expect(again.allowed).toBe(true);
  });

  it("charges a report id once: the same id again charges nothing and says it is a duplicate", async () => {
    const keyId = await mintKey();
    const report = { id: "resp-2", keyId, cost: 3 };
    const r1 = await h.tollgate.reportUsage(report, h.auth);
    expect(r1.duplicate).toBe(false);
    expect(remaining(r1.limits)).toEqual({ "per-key": 7, daily: 97 });
    const r2 = await h.tollgate.reportUsage(report, h.auth);
    expect(r2.duplicate).toBe(true);
    expect(remaining(r2.limits)).toEqual({ "per-key": 7, daily: 97 });
    const next = await h.tollgate.checkRateLimit({ keyId });
    expect(remaining(next.result?.limits ?? [])).toEqual({ "per-key": 6, daily: 96 });
    // The id is remembered for a day; after that, the same id is a new report.
    h.clock.advance(86_400_000 + 1);
    expect((await h.tollgate.reportUsage(report, h.auth)).duplicate).toBe(false);
  });

  it("is neither refused by a block nor places one, however far past the limits", async () => {
    const keyId = await mintKey();
    for (let i = 0; i < 5; i++) {
      const r = await h.tollgate.reportUsage({ id: `resp-b${i}`, keyId, cost: 50 }, h.auth);
      expect(r.duplicate).toBe(false);
    }
    const blocks = await h.keys.listBlocks({}, h.auth);
    expect(blocks.blocks).toEqual([]);
    // Denied decisions place the block (after 2 denials); a report still charges.
    await h.tollgate.checkRateLimit({ keyId });
    await h.tollgate.checkRateLimit({ keyId });
    expect((await h.tollgate.checkRateLimit({ keyId })).reason).not.toBe(0);
    expect((await h.keys.listBlocks({}, h.auth)).blocks.length).toBe(1);
    const r = await h.tollgate.reportUsage({ id: "resp-after-block", keyId, cost: 1 }, h.auth);
    expect(r.duplicate).toBe(false);
    expect(remaining(r.limits)).toEqual({ "per-key": 0, daily: 0 });
  });

  it("charges the tier's limits of a subject without a key", async () => {
    const r = await h.tollgate.reportUsage(
      { id: "anon-1", tier: "open", endpoint: "chat", clientIp: "192.0.2.9", cost: 40 },
      h.auth,
    );
    expect(remaining(r.limits)).toEqual({ "per-ip": 60 });
    // The default tier's limits are by key: without one the report is incomplete.
    const missing = await violatedFields(h.tollgate.reportUsage({ id: "anon-2", cost: 1 }, h.auth));
    expect(missing).toEqual(["key_id"]);
    const again = await violatedFields(
      h.tollgate.reportUsage({ id: "anon-3", tier: "open", endpoint: "chat", cost: 1 }, h.auth),
    );
    expect(again).toEqual(["client_ip"]);
  });

  it("refuses a bad id, cost or fact with INVALID_ARGUMENT naming each field", async () => {
    const keyId = await mintKey();
    expect(await violatedFields(h.tollgate.reportUsage({ keyId, cost: 1 }, h.auth))).toEqual([
      "id",
    ]);
    expect(
      await violatedFields(h.tollgate.reportUsage({ id: "x".repeat(129), keyId, cost: 1 }, h.auth)),
    ).toEqual(["id"]);
    expect(
      await violatedFields(h.tollgate.reportUsage({ id: "a b", keyId, cost: 1 }, h.auth)),
    ).toEqual(["id"]);
    expect(
      await violatedFields(h.tollgate.reportUsage({ id: "c0", keyId, cost: 0 }, h.auth)),
    ).toEqual(["cost"]);
    expect(
      await violatedFields(h.tollgate.reportUsage({ id: "c1", keyId, cost: 1_000_001 }, h.auth)),
    ).toEqual(["cost"]);
    expect(
      await violatedFields(
        h.tollgate.reportUsage(
          { id: "f", keyId: "nope", tier: "gold", clientIp: "999.1.1.1", endpoint: "x", cost: 1 },
          h.auth,
        ),
      ),
    ).toEqual(["key_id", "tier", "client_ip", "endpoint"]);
    // Violations name the field and bound, never the value.
    const e = await failure(h.tollgate.reportUsage({ id: "secret value", keyId, cost: 1 }, h.auth));
    expect(e.message).not.toContain("secret value");
    // Strict JSON refuses an unknown field, naming it.
    let refused: ConnectError | undefined;
    try {
      checkJsonRequest(ReportUsageRequestSchema, JSON.stringify({ id: "j", keyId, cots: 2 }));
    } catch (err) {
      refused = err as ConnectError;
    }
    expect(refused?.code).toBe(Code.InvalidArgument);
    expect(refused?.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("cots");
  });

  it("needs the management token, and a key id that names a key", async () => {
    const keyId = await mintKey();
    const e = await failure(h.tollgate.reportUsage({ id: "t1", keyId, cost: 1 }));
    expect(e.code).toBe(Code.Unauthenticated);
    const nf = await failure(
      h.tollgate.reportUsage({ id: "t2", keyId: "key_0000000000000000", cost: 1 }, h.auth),
    );
    expect(nf.code).toBe(Code.NotFound);
    // Nothing was charged by the refused calls.
    const next = await h.tollgate.checkRateLimit({ keyId });
    expect(remaining(next.result?.limits ?? [])).toEqual({ "per-key": 9, daily: 99 });
  });

  it("by the reported request's own api_key needs no token and charges that key only", async () => {
    const created = await h.keys.createKey({ owner: "acme" }, h.auth);
    const keyId = created.key?.id ?? "";
    const other = await mintKey();
    // No management token: the secret itself authenticates the report.
    const r = await h.tollgate.reportUsage({ id: "k1", apiKey: created.secret, cost: 3 });
    expect(r.duplicate).toBe(false);
    expect(remaining(r.limits)).toEqual({ "per-key": 7, daily: 97 });
    const mine = await h.tollgate.checkRateLimit({ keyId });
    expect(remaining(mine.result?.limits ?? [])).toEqual({ "per-key": 6, daily: 96 });
    const theirs = await h.tollgate.checkRateLimit({ keyId: other });
    expect(remaining(theirs.result?.limits ?? [])).toEqual({ "per-key": 9, daily: 99 });
    // A secret naming no key is UNAUTHENTICATED; both credentials at once is a field error.
    const unknown = await failure(
      h.tollgate.reportUsage({ id: "k2", apiKey: `${created.secret.slice(0, -4)}AAAA`, cost: 1 }),
    );
    expect(unknown.code).toBe(Code.Unauthenticated);
    expect(unknown.rawMessage).not.toContain(created.secret);
    expect(
      await violatedFields(
        h.tollgate.reportUsage({ id: "k3", apiKey: created.secret, keyId, cost: 1 }),
      ),
    ).toContain("api_key");
  });
});

describe("ReportUsage and notifications", () => {
  it("raises the quota thresholds its charge crosses, once, and none for a duplicate", async () => {
    await h.close();
    h = await createServiceHarness({
      policyYaml: `${POLICY}notifications:\n  quota: { thresholds: [50, 100] }\n`,
    });
    const keyId = await mintKey();
    const listed = async () =>
      (await h.keys.listAlerts({ rule: "quota-threshold", pageSize: 100 }, h.auth)).alerts;
    await h.tollgate.reportUsage({ id: "n-1", keyId, cost: 60 }, h.auth);
    const { value: half } = await pollUntil(listed, (a) => a.length >= 1, 5_000);
    expect(half.map((a) => [a.limit, a.thresholdPercent, a.keyId])).toEqual([["daily", 50, keyId]]);
    await h.tollgate.reportUsage({ id: "n-1", keyId, cost: 60 }, h.auth); // a duplicate
    await h.tollgate.reportUsage({ id: "n-2", keyId, cost: 60 }, h.auth); // into debt
    const { value: all } = await pollUntil(listed, (a) => a.length >= 2, 5_000);
    await new Promise((r) => setTimeout(r, 100));
    expect((await listed()).map((a) => a.thresholdPercent).sort()).toEqual([100, 50]);
    expect(all.length).toBe(2);
  });
});
