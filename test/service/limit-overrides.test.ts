/**
 * SetLimitOverride, DeleteLimitOverride and ListLimitOverrides through the
 * real handlers over the embedded store: overrides change what Authorize
 * admits at once (key > owner > endpoint > tier), keep the usage counted,
 * expire, show in GetKey (Key field 19) and ListLimitOverrides (with the
 * effective limits and their sources); bad requests are refused with
 * INVALID_ARGUMENT naming the field; the management token gates them; changes
 * are audited.
 */
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readKeyLimits } from "../../src/services/key-limits.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { failure, violatedFields } from "./support.js";

const POLICY = `version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: per-key, by: key, rate: { requests: 3, per: 1h } }
      - { name: daily, by: owner, quota: { requests: 1000, per: day } }
  pro: {}
endpoints:
  - name: search
    path: /v1/search
    limits:
      - { name: searches, by: key, rate: { requests: 100, per: 1h } }
`;

let h: ServiceHarness;
beforeAll(async () => {
  h = await createServiceHarness({
    policyYaml: POLICY,
    extraTokens: [{ name: "viewer", token: "viewer-token-0123456789", readOnly: true }],
  });
});
afterAll(() => h.close());

async function newKey(owner: string) {
  const res = await h.keys.createKey({ owner }, h.auth);
  return { id: res.key?.id ?? "", secret: res.secret };
}

/** How many of `n` Authorize calls with limits are admitted. */
async function admitted(secret: string, n: number, path = "/v1/orders"): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const r = await h.tollgate.authorize({
      apiKey: secret,
      method: "GET",
      path,
      applyLimits: true,
    });
    if (r.allowed) ok++;
  }
  return ok;
}

const setKey = (keyId: string, o: Record<string, unknown>) =>
  h.keys.setLimitOverride(
    { target: { case: "keyId", value: keyId }, limitOverride: { limit: "per-key", ...o } },
    h.auth,
  );
const setOwner = (owner: string, o: Record<string, unknown>) =>
  h.keys.setLimitOverride(
    { target: { case: "owner", value: owner }, limitOverride: { limit: "per-key", ...o } },
    h.auth,
  );

describe("a key override", () => {
  it("raises, lowers and exempts at once, keeping the usage counted; GetKey shows it", async () => {
    const k = await newKey("acme-raise");
    expect(await admitted(k.secret, 4)).toBe(3);
    const set = await setKey(k.id, { requests: 5n });
    expect(set.limitOverride?.target).toEqual({ case: "keyId", value: k.id });
    // 3 of 5 used: 2 more, not 5.
    expect(await admitted(k.secret, 4)).toBe(2);
    const got = await h.keys.getKey({ id: k.id }, h.auth);
    expect(got.key?.limitOverrides.map((o) => [o.limit, o.requests])).toEqual([["per-key", 5n]]);
    await setKey(k.id, { requests: 1n });
    expect(await admitted(k.secret, 2)).toBe(0);
    await setKey(k.id, { exempt: true });
    expect(await admitted(k.secret, 10)).toBe(10);
    const del = await h.keys.deleteLimitOverride(
      { target: { case: "keyId", value: k.id }, limit: "per-key" },
      h.auth,
    );
    expect(del.deleted).toBe(true);
    expect(await admitted(k.secret, 1)).toBe(0);
    const again = await h.keys.deleteLimitOverride(
      { target: { case: "keyId", value: k.id }, limit: "per-key" },
      h.auth,
    );
    expect(again.deleted).toBe(false);
    expect((await h.keys.getKey({ id: k.id }, h.auth)).key?.limitOverrides).toEqual([]);
  });

  it("stops applying at its expiry, is hidden then, and is cleaned up when listed", async () => {
    const k = await newKey("acme-expiry");
    await setKey(k.id, {
      exempt: true,
      expireTime: timestampFromMs(h.clock.now() + 60_000),
    });
    expect(await admitted(k.secret, 5)).toBe(5);
    h.clock.advance(60_000);
    expect(await admitted(k.secret, 4)).toBe(3);
    expect((await h.keys.getKey({ id: k.id }, h.auth)).key?.limitOverrides).toEqual([]);
    const list = await h.keys.listLimitOverrides(
      { target: { case: "keyId", value: k.id } },
      h.auth,
    );
    expect(list.limitOverrides).toEqual([]);
    expect((await h.deps.keys.get(k.id))?.overrides).toBeUndefined();
  });

  it("a new period starts a fresh bucket", async () => {
    const k = await newKey("acme-period");
    expect(await admitted(k.secret, 4)).toBe(3);
    await setKey(k.id, { requests: 2n, period: durationFromMs(60_000) });
    expect(await admitted(k.secret, 3)).toBe(2);
  });
});

describe("an owner override", () => {
  it("applies to every key of the owner; the key's own beats it; effective limits say where from", async () => {
    const a = await newKey("globex");
    const b = await newKey("globex");
    await setOwner("globex", { requests: 6n });
    expect(await admitted(a.secret, 7)).toBe(6);
    expect(await admitted(b.secret, 7)).toBe(6);
    await setKey(b.id, { requests: 8n });
    expect(await admitted(b.secret, 3)).toBe(2);
    await setOwner("globex", { exempt: true });
    expect(await admitted(a.secret, 5)).toBe(5);

    const list = await h.keys.listLimitOverrides(
      { target: { case: "keyId", value: b.id } },
      h.auth,
    );
    expect(list.limitOverrides.map((o) => o.target.case)).toEqual(["keyId", "owner"]);
    const eff = Object.fromEntries(list.effectiveLimits.map((e) => [e.name, e]));
    expect(eff["per-key"]).toMatchObject({ source: "key override" });
    expect(eff["per-key"]?.text).toContain("8/1h");
    expect(eff.daily).toMatchObject({ source: "tier" });
    expect(eff.searches).toMatchObject({ source: "endpoint", endpoints: ["search"] });
    const forA = await h.keys.listLimitOverrides(
      { target: { case: "keyId", value: a.id } },
      h.auth,
    );
    expect(forA.effectiveLimits.find((e) => e.name === "per-key")).toMatchObject({
      source: "owner override",
      text: "exempt",
    });

    const all = await h.keys.listLimitOverrides({}, h.auth);
    const targets = all.limitOverrides.map((o) => `${o.target.case}=${o.target.value}`);
    expect(targets).toContain("owner=globex");
    expect(targets).toContain(`keyId=${b.id}`);

    const del = await h.keys.deleteLimitOverride(
      { target: { case: "owner", value: "globex" }, limit: "per-key" },
      h.auth,
    );
    expect(del.deleted).toBe(true);
    // Back to the tier's 3 per hour, 5 + 6 used: none.
    expect(await admitted(a.secret, 1)).toBe(0);
    const owner = await h.keys.listLimitOverrides(
      { target: { case: "owner", value: "globex" } },
      h.auth,
    );
    expect(owner.limitOverrides).toEqual([]);
  });
});

describe("validation", () => {
  it("refuses unknown limits and bad numbers with INVALID_ARGUMENT naming the field", async () => {
    const k = await newKey("acme-bad");
    const target = { case: "keyId" as const, value: k.id };
    const cases: [Record<string, unknown>, string][] = [
      [{ target, limitOverride: { limit: "nope", requests: 1n } }, "limit_override.limit"],
      [{ target, limitOverride: { limit: "", requests: 1n } }, "limit_override.limit"],
      [{ target }, "limit_override"],
      [{ limitOverride: { limit: "per-key", requests: 1n } }, "target"],
      [{ target, limitOverride: { limit: "per-key" } }, "limit_override.requests"],
      [
        { target, limitOverride: { limit: "per-key", exempt: true, requests: 2n } },
        "limit_override.exempt",
      ],
      [
        { target, limitOverride: { limit: "daily", requests: 5n, burst: 9n } },
        "limit_override.burst",
      ],
      [
        { target, limitOverride: { limit: "per-key", requests: 10n ** 13n } },
        "limit_override.requests",
      ],
      [
        {
          target,
          limitOverride: {
            limit: "per-key",
            requests: 1n,
            expireTime: timestampFromMs(h.clock.now() - 1),
          },
        },
        "limit_override.expire_time",
      ],
      [
        {
          target: { case: "keyId", value: "not-a-key" },
          limitOverride: { limit: "per-key", requests: 1n },
        },
        "key_id",
      ],
      [
        { target: { case: "owner", value: "" }, limitOverride: { limit: "per-key", requests: 1n } },
        "owner",
      ],
    ];
    for (const [req, field] of cases) {
      expect(await violatedFields(h.keys.setLimitOverride(req, h.auth)), field).toContain(field);
    }
    const e = await failure(
      h.keys.setLimitOverride({ target, limitOverride: { limit: "nope", requests: 1n } }, h.auth),
    );
    expect(e.message).toContain("per-key");
    expect(await violatedFields(h.keys.deleteLimitOverride({ target, limit: "" }, h.auth))).toEqual(
      ["limit"],
    );
    expect(await violatedFields(h.keys.listLimitOverrides({ pageSize: 5000 }, h.auth))).toEqual([
      "page_size",
    ]);
    // Nothing was stored.
    expect((await h.deps.keys.get(k.id))?.overrides).toBeUndefined();
  });

  it("an unknown or revoked key is refused", async () => {
    const missing = await failure(setKey("key_0000000000000000", { requests: 1n }));
    expect(missing.code).toBe(Code.NotFound);
    const k = await newKey("acme-revoked");
    await h.keys.revokeKey({ id: k.id }, h.auth);
    const revoked = await failure(setKey(k.id, { requests: 1n }));
    expect(revoked.code).toBe(Code.FailedPrecondition);
  });
});

describe("access and audit", () => {
  it("needs the management token; a read-only one may only list", async () => {
    const k = await newKey("acme-auth");
    const target = { case: "keyId" as const, value: k.id };
    const calls = (opts: { headers?: Record<string, string> }) => [
      h.keys.setLimitOverride({ target, limitOverride: { limit: "per-key", requests: 9n } }, opts),
      h.keys.deleteLimitOverride({ target, limit: "per-key" }, opts),
      h.keys.listLimitOverrides({ target }, opts),
    ];
    for (const call of calls({})) expect((await failure(call)).code).toBe(Code.Unauthenticated);
    const viewer = { headers: { authorization: "Bearer viewer-token-0123456789" } };
    const [set, del, list] = calls(viewer);
    expect((await failure(set as Promise<unknown>)).code).toBe(Code.PermissionDenied);
    expect((await failure(del as Promise<unknown>)).code).toBe(Code.PermissionDenied);
    await expect(list).resolves.toBeDefined();
    expect((await h.deps.keys.get(k.id))?.overrides).toBeUndefined();
  });

  it("audits key and owner changes with the actor", async () => {
    const k = await newKey("acme-audit");
    await setKey(k.id, { requests: 4n });
    await setOwner("acme-audit", { requests: 4n });
    const lines = h
      .logText()
      .split("\n")
      .filter((l) => l.includes('"audit"') && l.includes("set per-key"));
    expect(lines.some((l) => l.includes(k.id) && l.includes('"actor":"default"'))).toBe(true);
    expect(lines.some((l) => l.includes('"owner":"acme-audit"') && l.includes('"actor"'))).toBe(
      true,
    );
  });
});

describe("backup and restore", () => {
  it("ExportKeys carries a key's overrides; ImportKeys restores them and lists the key", async () => {
    const pepper = Buffer.alloc(32, 7);
    const [from, to] = await Promise.all([
      createServiceHarness({ policyYaml: POLICY, pepper }),
      createServiceHarness({ policyYaml: POLICY, pepper }),
    ]);
    try {
      const { key } = await from.keys.createKey({ owner: "acme-backup" }, from.auth);
      const id = key?.id ?? "";
      await from.keys.setLimitOverride(
        {
          target: { case: "keyId", value: id },
          limitOverride: { limit: "per-key", requests: 9n, burst: 12n },
        },
        from.auth,
      );
      const exported = await from.keys.exportKeys({}, from.auth);
      const res = await to.keys.importKeys(
        { keys: exported.keys, pepperFingerprintPrefix: exported.pepperFingerprintPrefix },
        to.auth,
      );
      expect(res.results.map((r) => r.keyId)).toContain(id);
      expect((await to.deps.keys.get(id))?.overrides).toMatchObject([
        { limit: "per-key", requests: 9, burst: 12 },
      ]);
      const all = await to.keys.listLimitOverrides({}, to.auth);
      expect(all.limitOverrides.map((o) => o.target.value)).toEqual([id]);
    } finally {
      await Promise.all([from.close(), to.close()]);
    }
  });
});

describe("the console's key limits (readKeyLimits)", () => {
  it("apply the overrides, say where each comes from, and peek the same bucket", async () => {
    const k = await newKey("acme-console");
    expect(await admitted(k.secret, 2)).toBe(2);
    await setKey(k.id, { requests: 10n });
    await setOwner("acme-console", { limit: "daily", exempt: true });
    const limits = await readKeyLimits(h.deps, k.id);
    const byName = Object.fromEntries(limits.limits.map((l) => [l.name, l]));
    expect(byName["per-key"]).toMatchObject({
      source: "key override",
      requests: 10,
      usage: { used: 2, capacity: 10 },
    });
    expect(byName.daily).toMatchObject({ source: "owner override", exempt: true, text: "exempt" });
    expect(byName.daily?.usage).toBeUndefined();
    expect(byName.searches).toMatchObject({ source: "endpoint" });
  });
});
