/**
 * Forged records: a neighbour on the pod's loopback calls RecordEvent with
 * Tollgate's own event types. Twenty forged `auth_failure` events for one IP
 * must not fire the brute-force rule and block that IP's valid key, and a
 * forged `key_revoked` must not appear in the audit trail. Against the built
 * server, bounded in count, 127.0.0.1 only.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType, Severity, SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { sleep } from "./support.js";

const VICTIM_IP = "198.51.100.7";
const POLICY = `
version: 1
default_tier: free
tiers:
  free: {}
detection:
  rules:
    - name: brute-force
      kind: threshold
      events: [auth_failure]
      by: ip
      count: 20
      within: 60s
      severity: high
      cooldown: 5m
      action: { block: 10m }
    - name: app-logins
      kind: threshold
      events: [login.failed]
      by: ip
      count: 3
      within: 60s
      severity: medium
      cooldown: 5m
`;

let dir: string;
let proc: TollgateProcess;
let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
let keys: ReturnType<typeof createClient<typeof KeyService>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-forge-"));
  writeFileSync(join(dir, "policy.yaml"), POLICY);
  proc = await startTollgateProcess({ TOLLGATE_POLICY_FILE: join(dir, "policy.yaml") });
  const t = createGrpcTransport({ baseUrl: proc.url });
  tollgate = createClient(TollgateService, t);
  keys = createClient(KeyService, t);
}, 30_000);

afterAll(async () => {
  await proc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function refusedFields(call: Promise<unknown>): Promise<string[]> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    expect(e.code).toBe(Code.InvalidArgument);
    return e.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => v.field));
  }
  throw new Error("the forged event was accepted");
}

describe("RecordEvent refuses Tollgate's own event types", () => {
  it("twenty forged auth_failure events neither fire the rule nor block the IP's valid key", async () => {
    const { secret } = await keys.createKey({ owner: "victim" });
    for (let i = 0; i < 20; i++) {
      const fields = await refusedFields(
        tollgate.recordEvent({
          events: [
            {
              id: `forged-${i}`,
              type: EventType.AUTH_FAILURE,
              subject: VICTIM_IP,
              subjectKind: SubjectKind.IP,
              clientIp: VICTIM_IP,
              severity: Severity.LOW,
              attributes: { reason: "UNKNOWN_KEY" },
            },
          ],
        }),
      );
      expect(fields).toEqual(["events[0].type"]);
    }
    await sleep(300);
    expect((await keys.listAlerts({ rule: "brute-force" })).alerts).toEqual([]);
    expect((await keys.listBlocks({})).blocks).toEqual([]);
    const r = await tollgate.authorize({ apiKey: secret, clientIp: VICTIM_IP });
    expect(r).toMatchObject({ allowed: true, reason: Reason.OK });
  });

  it("a forged key_revoked never reaches the audit trail, and the key stays active", async () => {
    const { secret, key } = await keys.createKey({ owner: "acme" });
    const id = key?.id ?? "";
    const fields = await refusedFields(
      tollgate.recordEvent({
        events: [
          {
            id: "forged-revoke",
            type: EventType.KEY_REVOKED,
            subject: id,
            subjectKind: SubjectKind.KEY,
            keyId: id,
            attributes: { actor: "default" },
          },
        ],
      }),
    );
    expect(fields).toEqual(["events[0].type"]);
    await sleep(300);
    const audit = await keys.listEvents({ subject: id, type: EventType.KEY_REVOKED });
    expect(audit.events).toEqual([]);
    expect((await tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
  });

  it("a built-in name smuggled in custom_type is refused too", async () => {
    expect(
      await refusedFields(
        tollgate.recordEvent({
          events: [{ id: "smuggled", customType: "auth_failure", subject: VICTIM_IP }],
        }),
      ),
    ).toEqual(["events[0].custom_type"]);
  });

  it("application events with a custom type are still recorded and can fire rules", async () => {
    const r = await tollgate.recordEvent({
      events: [0, 1, 2].map((i) => ({
        id: `login-${i}`,
        customType: "login.failed",
        subject: "203.0.113.50",
        subjectKind: SubjectKind.IP,
        clientIp: "203.0.113.50",
      })),
    });
    expect(r.acceptedIds).toHaveLength(3);
    expect(r.alerts.map((a) => a.rule)).toEqual(["app-logins"]);
  });
});
