/**
 * A named token marked `read-only` may look (the read RPCs the web console's
 * viewers need) and may change nothing: every other management RPC answers it
 * PERMISSION_DENIED, while the full token keeps every right.
 */
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { READ_ONLY_RPCS } from "../../src/services/key-service.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { failure } from "./support.js";

const VIEWER = "viewer-token-0123456789abcdef";
const viewer = { headers: { authorization: `Bearer ${VIEWER}` } };
let h: ServiceHarness;
let id = "";

beforeAll(async () => {
  h = await createServiceHarness({
    extraTokens: [{ name: "viewer", token: VIEWER, readOnly: true }],
  });
  id = (await h.keys.createKey({ owner: "acme" }, h.auth)).key?.id ?? "";
});
afterAll(() => h.close());

/** Every KeyService RPC (and RotateKey by id) with a valid request, by name. */
function calls(opts: { headers: Record<string, string> }): [string, () => Promise<unknown>][] {
  const k = h.keys;
  return [
    ["GetKey", () => k.getKey({ id }, opts)],
    ["ListKeys", () => k.listKeys({}, opts)],
    ["ListBlocks", () => k.listBlocks({}, opts)],
    ["ListEvents", () => k.listEvents({}, opts)],
    ["ListAlerts", () => k.listAlerts({}, opts)],
    ["GetUsage", () => k.getUsage({ keyId: id }, opts)],
    ["CreateKey", () => k.createKey({ owner: "acme" }, opts)],
    [
      "UpdateKey",
      () =>
        k.updateKey(
          { id, updateMask: create(FieldMaskSchema, { paths: ["owner"] }), owner: "x" },
          opts,
        ),
    ],
    ["DeleteBlock", () => k.deleteBlock({ subject: "203.0.113.9" }, opts)],
    ["ExportKeys", () => k.exportKeys({}, opts)],
    ["ImportKeys", () => k.importKeys({ keys: [{ key: { id, owner: "x" } }] }, opts)],
    ["RotateKey", () => h.tollgate.rotateKey({ keyId: id }, opts)],
    ["RevokeKey", () => k.revokeKey({ id, reason: "test" }, opts)],
  ];
}

describe("a read-only management token", () => {
  it("reads keys, usage, events, alerts and blocks", async () => {
    for (const [rpc, call] of calls(viewer)) {
      if (READ_ONLY_RPCS.has(rpc)) await expect(call(), rpc).resolves.toBeDefined();
    }
  });

  it("is refused PERMISSION_DENIED by every RPC that changes or exports", async () => {
    const refused: string[] = [];
    for (const [rpc, call] of calls(viewer)) {
      if (READ_ONLY_RPCS.has(rpc)) continue;
      const e = await failure(call());
      expect(e.code, rpc).toBe(Code.PermissionDenied);
      expect(e.message).toContain("read-only");
      expect(e.message).not.toContain(VIEWER);
      refused.push(rpc);
    }
    expect(refused).toEqual([
      "CreateKey",
      "UpdateKey",
      "DeleteBlock",
      "ExportKeys",
      "ImportKeys",
      "RotateKey",
      "RevokeKey",
    ]);
    // Nothing changed: the key is still active under its owner.
    const key = (await h.keys.getKey({ id }, h.auth)).key;
    expect(key?.owner).toBe("acme");
    expect(key?.revokeTime).toBeUndefined();
  });

  it("is not counted as a failed authentication (the token is right)", () => {
    expect(h.logText()).not.toContain("management authentication failed");
  });

  it("leaves the full token every right", async () => {
    for (const [rpc, call] of calls(h.auth)) {
      const r = call();
      if (rpc === "DeleteBlock") await r.catch(() => undefined);
      else await expect(r, rpc).resolves.toBeDefined();
    }
  });
});
