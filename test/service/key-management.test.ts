/**
 * KeyService and RotateKey through the real handlers: the management token
 * gates every management call, secrets are shown once (CreateKey, RotateKey)
 * and never again, and ListKeys pages through keys in id order.
 */
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { durationFromMs, FieldMaskSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { EventType } from "../../src/gen/tollgate/v1/event_pb.js";
import { KeyStatus } from "../../src/gen/tollgate/v1/key_pb.js";
import {
  GetKeyResponseSchema,
  ListKeysResponseSchema,
  RevokeKeyResponseSchema,
  UpdateKeyResponseSchema,
} from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY, failure } from "./support.js";

const SECRET_SHAPE = /^tg_live_[0-9A-Za-z]{30}$/;
let h: ServiceHarness;

beforeAll(async () => {
  h = await createServiceHarness({ policyYaml: EXAMPLE_POLICY });
});
afterAll(() => h.close());

const wrong = { headers: { authorization: "Bearer not-the-management-token" } };

/** Every management RPC with a valid-looking request. */
function managementCalls(
  keys: ServiceHarness["keys"],
  opts: { headers?: Record<string, string> },
  id: string,
): [string, Promise<unknown>][] {
  return [
    ["CreateKey", keys.createKey({ owner: "acme" }, opts)],
    ["GetKey", keys.getKey({ id }, opts)],
    ["ListKeys", keys.listKeys({}, opts)],
    [
      "UpdateKey",
      keys.updateKey(
        { id, updateMask: create(FieldMaskSchema, { paths: ["owner"] }), owner: "x" },
        opts,
      ),
    ],
    ["RevokeKey", keys.revokeKey({ id }, opts)],
    ["ListBlocks", keys.listBlocks({}, opts)],
    ["DeleteBlock", keys.deleteBlock({ subject: "s" }, opts)],
    ["ListEvents", keys.listEvents({}, opts)],
    ["ListAlerts", keys.listAlerts({}, opts)],
    ["GetUsage", keys.getUsage({ keyId: id }, opts)],
    ["ExportKeys", keys.exportKeys({}, opts)],
    ["ImportKeys", keys.importKeys({ keys: [{ key: { id, owner: "x" } }] }, opts)],
  ];
}

describe("the management token", () => {
  it("every KeyService RPC answers UNAUTHENTICATED without a token or with a wrong one", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    for (const [opts, message] of [
      [{}, "this RPC needs the management token: send 'authorization: Bearer <token>'"],
      [wrong, "the management token is not valid"],
      [{ headers: { authorization: `Basic ${h.token}` } }, "the management token is not valid"],
      [{ headers: { authorization: "Bearer" } }, "the management token is not valid"],
    ] as const) {
      for (const [rpc, call] of managementCalls(h.keys, opts, id)) {
        const e = await failure(call);
        expect(e.code, `${rpc} ${JSON.stringify(opts)}`).toBe(Code.Unauthenticated);
        expect(e.rawMessage).toBe(message);
      }
    }
    // Nothing was changed by the refused calls.
    const after = await h.keys.getKey({ id }, h.auth);
    expect(after.key).toMatchObject({ owner: "acme", status: KeyStatus.ACTIVE });
  });

  it("checks the token before the input: anonymous callers learn nothing from validation", async () => {
    const e = await failure(h.keys.getKey({ id: "not an id" }));
    expect(e.code).toBe(Code.Unauthenticated);
  });

  it("accepts the scheme case-insensitively", async () => {
    const res = await h.keys.listKeys({}, { headers: { authorization: `bearer ${h.token}` } });
    expect(res.keys.length).toBeGreaterThan(0);
  });

  it("is not needed when no token is configured (loopback dev mode)", async () => {
    const open = await createServiceHarness({ managementToken: "" });
    try {
      const created = await open.keys.createKey({ owner: "dev" });
      expect(created.secret).toMatch(SECRET_SHAPE);
      expect((await open.keys.listKeys({})).keys).toHaveLength(1);
      expect((await open.tollgate.rotateKey({ keyId: created.key?.id ?? "" })).secret).toMatch(
        SECRET_SHAPE,
      );
    } finally {
      await open.close();
    }
  });
});

describe("RotateKey", () => {
  it("by key id needs the management token", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    for (const opts of [{}, wrong]) {
      const e = await failure(h.tollgate.rotateKey({ keyId: id }, opts));
      expect(e.code).toBe(Code.Unauthenticated);
    }
    const ok = await h.tollgate.rotateKey({ keyId: id }, h.auth);
    expect(ok.secret).toMatch(SECRET_SHAPE);
    expect(ok.key?.id).toBe(id);
  });

  it("by current secret needs no token, and only the current secret of an active key", async () => {
    // A client that never sends a token.
    const anonymous = createClient(TollgateService, h.transport);
    const { secret, key } = await h.keys.createKey({ owner: "self" }, h.auth);
    const r = await anonymous.rotateKey({ currentSecret: secret, gracePeriod: durationFromMs(0) });
    expect(r.secret).toMatch(SECRET_SHAPE);
    expect(r.secret).not.toBe(secret);
    expect(r.key?.id).toBe(key?.id);
    // Zero grace: the old secret stops at once.
    expect((await anonymous.authorize({ apiKey: secret })).reason).toBe(Reason.UNKNOWN_KEY);
    expect((await anonymous.authorize({ apiKey: r.secret })).allowed).toBe(true);

    for (const presented of [secret, generateSecret("live"), "tg_live_short"]) {
      const e = await failure(anonymous.rotateKey({ currentSecret: presented }));
      expect(e.code).toBe(Code.Unauthenticated);
      expect(e.rawMessage).toBe("the presented secret is not the current secret of an active key");
      expect(e.message).not.toContain(presented);
    }
  });

  it("uses the default grace period (24 h) when none is given", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const r = await h.tollgate.rotateKey({ keyId: key?.id ?? "" }, h.auth);
    expect(Number(r.graceEndTime?.seconds) * 1000).toBe(h.clock.now() + 86_400_000);
    expect(Number(r.key?.graceEndTime?.seconds) * 1000).toBe(h.clock.now() + 86_400_000);
  });

  it("answers NOT_FOUND for an unknown id and FAILED_PRECONDITION for a revoked key", async () => {
    expect(
      (await failure(h.tollgate.rotateKey({ keyId: "key_0000000000000000" }, h.auth))).code,
    ).toBe(Code.NotFound);
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    await h.keys.revokeKey({ id: key?.id ?? "" }, h.auth);
    expect((await failure(h.tollgate.rotateKey({ keyId: key?.id ?? "" }, h.auth))).code).toBe(
      Code.FailedPrecondition,
    );
  });
});

describe("secrets are shown once", () => {
  it("CreateKey and RotateKey return a secret; Get, List, Update and Revoke never do", async () => {
    const created = await h.keys.createKey(
      { owner: "once", scopes: ["orders:read"], metadata: { team: "web" } },
      h.auth,
    );
    expect(created.secret).toMatch(SECRET_SHAPE);
    const id = created.key?.id ?? "";
    expect(id).toMatch(/^key_[0-9A-Za-z]{16}$/);
    expect(created.key).toMatchObject({
      owner: "once",
      tier: "free",
      scopes: ["orders:read"],
      status: KeyStatus.ACTIVE,
      environment: "live",
    });
    const rotated = await h.tollgate.rotateKey({ keyId: id }, h.auth);
    expect(rotated.secret).toMatch(SECRET_SHAPE);
    expect(rotated.secret).not.toBe(created.secret);

    const got = await h.keys.getKey({ id }, h.auth);
    const listed = await h.keys.listKeys({ owner: "once" }, h.auth);
    const updated = await h.keys.updateKey(
      { id, updateMask: create(FieldMaskSchema, { paths: ["tier"] }), tier: "pro" },
      h.auth,
    );
    const revoked = await h.keys.revokeKey({ id, reason: "done" }, h.auth);
    expect(got.key?.id).toBe(id);
    expect(listed.keys.map((k) => k.id)).toEqual([id]);
    expect(updated.key?.tier).toBe("pro");
    expect(revoked.key?.status).toBe(KeyStatus.REVOKED);
    expect(revoked.key?.revokeTime).toBeDefined();

    const wire = [
      toJsonString(GetKeyResponseSchema, got),
      toJsonString(ListKeysResponseSchema, listed),
      toJsonString(UpdateKeyResponseSchema, updated),
      toJsonString(RevokeKeyResponseSchema, revoked),
      Buffer.from(toBinary(GetKeyResponseSchema, got)).toString("latin1"),
      Buffer.from(toBinary(ListKeysResponseSchema, listed)).toString("latin1"),
    ].join("\n");
    for (const s of [created.secret, rotated.secret]) {
      expect(wire).not.toContain(s);
      expect(wire).not.toContain(s.slice(8, 32)); // not even the random part
      expect(h.logText()).not.toContain(s);
    }
    expect(h.logText()).not.toContain(h.token);
  });
});

describe("ListKeys", () => {
  it("pages through an owner's keys in id order, then stops", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await h.keys.createKey({ owner: "pager" }, h.auth)).key?.id ?? "");
    }
    ids.sort();
    const seen: string[] = [];
    const tokens: string[] = [];
    let token = "";
    for (let page = 0; page < 10; page++) {
      const res = await h.keys.listKeys({ owner: "pager", pageSize: 2, pageToken: token }, h.auth);
      expect(res.keys.length).toBeLessThanOrEqual(2);
      seen.push(...res.keys.map((k) => k.id));
      token = res.nextPageToken;
      if (token === "") break;
      tokens.push(token);
    }
    expect(seen).toEqual(ids);
    expect(tokens).toHaveLength(2);
    // A token is opaque but reusable: the same page again.
    const again = await h.keys.listKeys(
      { owner: "pager", pageSize: 2, pageToken: tokens[0] ?? "" },
      h.auth,
    );
    expect(again.keys.map((k) => k.id)).toEqual(ids.slice(2, 4));
  });

  it("hides revoked keys unless include_revoked, and filters by owner", async () => {
    const a = (await h.keys.createKey({ owner: "filter" }, h.auth)).key?.id ?? "";
    const b = (await h.keys.createKey({ owner: "filter" }, h.auth)).key?.id ?? "";
    await h.keys.createKey({ owner: "someone-else" }, h.auth);
    await h.keys.revokeKey({ id: b }, h.auth);
    const active = await h.keys.listKeys({ owner: "filter" }, h.auth);
    expect(active.keys.map((k) => k.id)).toEqual([a]);
    const all = await h.keys.listKeys({ owner: "filter", includeRevoked: true }, h.auth);
    expect(all.keys.map((k) => k.id).sort()).toEqual([a, b].sort());
    expect(all.keys.every((k) => k.owner === "filter")).toBe(true);
  });

  it("uses 50 per page by default", async () => {
    for (let i = 0; i < 51; i++) await h.keys.createKey({ owner: "many" }, h.auth);
    const first = await h.keys.listKeys({ owner: "many" }, h.auth);
    expect(first.keys).toHaveLength(50);
    expect(first.nextPageToken).not.toBe("");
    const second = await h.keys.listKeys({ owner: "many", pageToken: first.nextPageToken }, h.auth);
    expect(second.keys).toHaveLength(1);
    expect(second.nextPageToken).toBe("");
  });
});

describe("GetKey, UpdateKey, RevokeKey", () => {
  it("GetKey answers NOT_FOUND for an unknown id", async () => {
    const e = await failure(h.keys.getKey({ id: "key_0000000000000000" }, h.auth));
    expect(e.code).toBe(Code.NotFound);
  });

  it("UpdateKey changes only the masked fields and bumps the version", async () => {
    const { key } = await h.keys.createKey(
      { owner: "acme", scopes: ["orders:read"], metadata: { a: "1" } },
      h.auth,
    );
    const id = key?.id ?? "";
    const r = await h.keys.updateKey(
      {
        id,
        updateMask: create(FieldMaskSchema, { paths: ["scopes", "ip_allow"] }),
        scopes: ["orders:read", "orders:write"],
        ipAllow: ["10.0.0.0/8"],
        owner: "ignored-not-in-mask",
      },
      h.auth,
    );
    expect(r.key).toMatchObject({
      owner: "acme",
      scopes: ["orders:read", "orders:write"],
      ipAllow: ["10.0.0.0/8"],
      metadata: { a: "1" },
    });
    expect(r.key?.version).toBe((key?.version ?? 0n) + 1n);
  });

  it("a revoked key cannot be updated; revoking it again changes nothing", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    const first = await h.keys.revokeKey({ id, reason: "leaked" }, h.auth);
    h.clock.advance(1000);
    const upd = await failure(
      h.keys.updateKey(
        { id, updateMask: create(FieldMaskSchema, { paths: ["owner"] }), owner: "b" },
        h.auth,
      ),
    );
    expect(upd.code).toBe(Code.FailedPrecondition);
    const again = await h.keys.revokeKey({ id }, h.auth);
    expect(again.key?.status).toBe(KeyStatus.REVOKED);
    expect(again.key?.revokeTime).toEqual(first.key?.revokeTime);
    expect(again.key?.version).toBe(first.key?.version);
  });
});

describe("GetUsage", () => {
  it("answers NOT_FOUND for an unknown key id, like GetKey", async () => {
    const e = await failure(h.keys.getUsage({ keyId: "key_0000000000000000" }, h.auth));
    expect(e.code).toBe(Code.NotFound);
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const u = await h.keys.getUsage({ keyId: key?.id ?? "" }, h.auth);
    expect(u.buckets.length).toBeGreaterThan(0);
  });
});

describe("the revocation reason", () => {
  it("is kept on the key (revoked_reason, revoke_time), in the key_revoked event and the audit line", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    expect(key?.revokedReason).toBe("");
    const at = h.clock.now();
    const revoked = await h.keys.revokeKey({ id, reason: "leaked in a CI log" }, h.auth);
    expect(revoked.key?.revokedReason).toBe("leaked in a CI log");
    const got = await h.keys.getKey({ id }, h.auth);
    expect(got.key?.status).toBe(KeyStatus.REVOKED);
    expect(got.key?.revokedReason).toBe("leaked in a CI log");
    expect(got.key?.revokeTime && timestampMs(got.key.revokeTime)).toBe(at);
    expect(toJsonString(GetKeyResponseSchema, got)).toContain(
      '"revokedReason":"leaked in a CI log"',
    );

    await h.deps.events.recorder.flush();
    const events = await h.keys.listEvents({ subject: id, type: EventType.KEY_REVOKED }, h.auth);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]?.attributes).toMatchObject({ reason: "leaked in a CI log" });
    const audit = h
      .logText()
      .split("\n")
      .filter((l) => l.includes('"audit":"revoke"') && l.includes(id));
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0] as string)).toMatchObject({
      keyId: id,
      reason: "leaked in a CI log",
    });
  });

  it("revoking again is idempotent: the key as it was, the first reason kept, no second event", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const id = key?.id ?? "";
    const first = await h.keys.revokeKey({ id, reason: "first" }, h.auth);
    h.clock.advance(5000);
    const again = await h.keys.revokeKey({ id, reason: "second" }, h.auth);
    expect(again.key).toEqual(first.key);
    expect(again.key?.revokedReason).toBe("first");
    await h.deps.events.recorder.flush();
    const events = await h.keys.listEvents({ subject: id, type: EventType.KEY_REVOKED }, h.auth);
    expect(events.events).toHaveLength(1);
    const audit = h
      .logText()
      .split("\n")
      .filter((l) => l.includes('"audit":"revoke"') && l.includes(id));
    expect(audit).toHaveLength(1);
  });

  it("is empty when no reason was given", async () => {
    const { key } = await h.keys.createKey({ owner: "acme" }, h.auth);
    const r = await h.keys.revokeKey({ id: key?.id ?? "" }, h.auth);
    expect(r.key?.status).toBe(KeyStatus.REVOKED);
    expect(r.key?.revokedReason).toBe("");
  });
});

describe("CheckRateLimit and RecordEvent", () => {
  // These RPCs were UNIMPLEMENTED when the core issue landed; the rate-limit
  // and events issues have since landed, so they answer for real.
  it("CheckRateLimit answers with a decision, not UNIMPLEMENTED", async () => {
    const { key } = await h.keys.createKey({ owner: "acme", scopes: ["orders:read"] }, h.auth);
    const r = await h.tollgate.checkRateLimit({
      keyId: key?.id ?? "",
      method: "GET",
      path: "/v1/orders",
    });
    expect(r.allowed).toBe(true);
    expect(r.reason).toBe(Reason.OK);
    expect(r.httpStatus).toBe(200);
    expect(r.decisionId).toMatch(/^[0-9a-f]{24}$/);
    expect(r.responseHeaders.map((x) => x.name)).toContain("ratelimit");
  });

  it("RecordEvent accepts an event once and reports the duplicate", async () => {
    const ev = { id: "evt-1", customType: "login.failed", subject: "user-1" };
    const first = await h.tollgate.recordEvent({ events: [ev] });
    expect(first.acceptedIds).toEqual(["evt-1"]);
    const second = await h.tollgate.recordEvent({ events: [ev] });
    expect(second.acceptedIds).toEqual([]);
    expect(second.duplicateIds).toEqual(["evt-1"]);
  });
});
