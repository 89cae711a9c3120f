/**
 * Bad input on every RPC fails the call with INVALID_ARGUMENT and a
 * google.rpc.BadRequest naming each offending field (never echoing its value).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, FieldMaskSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubjectKind } from "../../src/gen/tollgate/v1/event_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY, failure, violatedFields } from "./support.js";

let h: ServiceHarness;
let keyId: string;

beforeAll(async () => {
  h = await createServiceHarness({ policyYaml: EXAMPLE_POLICY });
  keyId = (await h.keys.createKey({ owner: "acme" }, h.auth)).key?.id ?? "";
});
afterAll(() => h.close());

describe("TollgateService input validation", () => {
  it("Authorize names every bad field", async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 65; i++) headers[`h${i}`] = "v";
    expect(
      await violatedFields(
        h.tollgate.authorize({
          headers,
          method: "GET /",
          path: "no-leading-slash",
          clientIp: "not-an-ip",
          requiredScopes: ["has space"],
          endpoint: "no-such-endpoint",
          cost: 1_000_001,
        }),
      ),
    ).toEqual(["headers", "required_scopes[0]", "method", "client_ip", "cost", "path", "endpoint"]);
    expect(
      await violatedFields(
        h.tollgate.authorize({ headers: { "": "x" }, path: `/${"a".repeat(2048)}` }),
      ),
    ).toEqual(["headers[#0]", "path"]);
    expect(
      await violatedFields(h.tollgate.authorize({ requiredScopes: Array(33).fill("a") })),
    ).toEqual(["required_scopes"]);
  });

  it("CheckRateLimit names every bad field", async () => {
    expect(
      await violatedFields(
        h.tollgate.checkRateLimit({
          keyId: "not-a-key-id",
          subject: "s".repeat(257),
          clientIp: "300.1.1.1",
          method: "G E T",
          tier: "gold",
          cost: 2_000_000,
        }),
      ),
    ).toEqual(["key_id", "subject", "tier", "method", "client_ip", "cost"]);
    expect(
      await violatedFields(h.tollgate.checkRateLimit({ endpoint: "no-such-endpoint" })),
    ).toEqual(["endpoint"]);
  });

  it("RecordEvent names the batch and each bad event field by index", async () => {
    expect(await violatedFields(h.tollgate.recordEvent({ events: [] }))).toEqual(["events"]);
    expect(
      await violatedFields(
        h.tollgate.recordEvent({
          events: [
            { id: "ok-1", customType: "login.odd", subject: "u1" },
            { id: "", customType: "NOT VALID", subject: "", clientIp: "nope" },
          ],
        }),
      ),
    ).toEqual([
      "events[1].id",
      "events[1].custom_type",
      "events[1].subject",
      "events[1].client_ip",
    ]);
  });

  it("RotateKey needs exactly one of key_id and current_secret, and a grace period in range", async () => {
    expect(await violatedFields(h.tollgate.rotateKey({}))).toEqual(["key_id"]);
    expect(
      await violatedFields(h.tollgate.rotateKey({ keyId, currentSecret: "tg_live_x" }, h.auth)),
    ).toEqual(["key_id"]);
    expect(
      await violatedFields(
        h.tollgate.rotateKey({ keyId, gracePeriod: durationFromMs(31 * 86_400_000) }, h.auth),
      ),
    ).toEqual(["grace_period"]);
    expect(await violatedFields(h.tollgate.rotateKey({ keyId: "k".repeat(65) }, h.auth))).toEqual([
      "key_id",
    ]);
  });
});

describe("KeyService input validation", () => {
  it("CreateKey names every bad field", async () => {
    expect(
      await violatedFields(
        h.keys.createKey(
          {
            owner: "",
            tier: "gold",
            scopes: ["orders:read", "bad scope"],
            metadata: { "": "v" },
            expireTime: timestampFromMs(h.clock.now() - 1000),
            ipAllow: ["999.0.0.1"],
            ipDeny: ["10.0.0.0/99"],
            environment: "UPPER",
          },
          h.auth,
        ),
      ),
    ).toEqual([
      "owner",
      "tier",
      "scopes[1]",
      "metadata[#0]",
      "ip_allow[0]",
      "ip_deny[0]",
      "environment",
      "expire_time",
    ]);
    expect(
      await violatedFields(
        h.keys.createKey({ owner: "o".repeat(129), scopes: Array(65).fill("a") }, h.auth),
      ),
    ).toEqual(["owner", "scopes"]);
  });

  it("GetKey, RevokeKey and UpdateKey validate the id", async () => {
    expect(await violatedFields(h.keys.getKey({ id: "" }, h.auth))).toEqual(["id"]);
    expect(await violatedFields(h.keys.getKey({ id: "key_short" }, h.auth))).toEqual(["id"]);
    expect(
      await violatedFields(h.keys.revokeKey({ id: "nope", reason: "r".repeat(257) }, h.auth)),
    ).toEqual(["id", "reason"]);
    expect(
      await violatedFields(
        h.keys.updateKey(
          { id: "x", updateMask: create(FieldMaskSchema, { paths: ["owner"] }), owner: "o" },
          h.auth,
        ),
      ),
    ).toEqual(["id"]);
  });

  it("UpdateKey needs a mask of updatable fields, and checks only the masked fields", async () => {
    expect(await violatedFields(h.keys.updateKey({ id: keyId }, h.auth))).toEqual(["update_mask"]);
    expect(
      await violatedFields(
        h.keys.updateKey(
          { id: keyId, updateMask: create(FieldMaskSchema, { paths: ["tier", "status"] }) },
          h.auth,
        ),
      ),
    ).toEqual(["update_mask.paths[1]"]);
    expect(
      await violatedFields(
        h.keys.updateKey(
          {
            id: keyId,
            updateMask: create(FieldMaskSchema, { paths: ["owner", "ip_deny", "expire_time"] }),
            owner: "",
            ipDeny: ["not-a-net"],
            expireTime: timestampFromMs(h.clock.now()),
            // Not in the mask: not checked.
            tier: "gold",
          },
          h.auth,
        ),
      ),
    ).toEqual(["owner", "ip_deny[0]", "expire_time"]);
  });

  it("ListKeys bounds page size, token and owner", async () => {
    expect(
      await violatedFields(
        h.keys.listKeys(
          { pageSize: 501, pageToken: "not-a-token", owner: "o".repeat(129) },
          h.auth,
        ),
      ),
    ).toEqual(["page_size", "owner", "page_token"]);
  });

  it("ListBlocks, DeleteBlock, ListEvents, ListAlerts and GetUsage name their bad fields", async () => {
    expect(await violatedFields(h.keys.listBlocks({ pageSize: 1001 }, h.auth))).toEqual([
      "page_size",
    ]);
    expect(
      await violatedFields(
        h.keys.deleteBlock({ subjectKind: SubjectKind.OWNER, subject: "" }, h.auth),
      ),
    ).toEqual(["subject", "subject_kind"]);
    expect(
      await violatedFields(
        h.keys.deleteBlock({ subjectKind: SubjectKind.IP, subject: "not-an-ip" }, h.auth),
      ),
    ).toEqual(["subject"]);
    expect(
      await violatedFields(h.keys.listEvents({ pageSize: 1001, customType: "Not Valid" }, h.auth)),
    ).toEqual(["page_size", "custom_type"]);
    expect(
      await violatedFields(h.keys.listAlerts({ pageSize: 1001, rule: "r".repeat(65) }, h.auth)),
    ).toEqual(["page_size", "rule"]);
    expect(await violatedFields(h.keys.getUsage({ keyId: "" }, h.auth))).toEqual(["key_id"]);
  });

  it("never echoes the offending value in the error", async () => {
    const secretish = "tg_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const e = await failure(
      h.keys.createKey({ owner: "acme", metadata: { [secretish]: "x".repeat(600) } }, h.auth),
    );
    expect(e.message).not.toContain(secretish);
    expect(JSON.stringify(e.details)).not.toContain(secretish);
  });
});
