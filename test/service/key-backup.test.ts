/**
 * ExportKeys and ImportKeys through the real handlers: exports carry digests
 * and never a secret, page by count and token, and name the pepper; imports
 * are checked record by record (field violations, never the value), refuse
 * another pepper's digests, are idempotent, report conflicts, and bring in
 * foreign SHA-256 keys that authorize and move to the HMAC digest.
 */
import { createHash, randomBytes } from "node:crypto";
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import {
  DigestAlgorithm,
  DigestEncoding,
  type KeyExport,
  KeyExportSchema,
} from "../../src/gen/tollgate/v1/key_export_pb.js";
import { KeyStatus } from "../../src/gen/tollgate/v1/key_pb.js";
import {
  ExportKeysResponseSchema,
  ImportOutcome,
} from "../../src/gen/tollgate/v1/key_service_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";
import { EXAMPLE_POLICY, failure, violatedFields } from "./support.js";

const PEPPER = randomBytes(32);
let h: ServiceHarness;
/** A second deployment with the same pepper: the restore target. */
let target: ServiceHarness;
const secrets: string[] = [];

beforeAll(async () => {
  h = await createServiceHarness({ policyYaml: EXAMPLE_POLICY, pepper: PEPPER });
  target = await createServiceHarness({ policyYaml: EXAMPLE_POLICY, pepper: PEPPER });
});
afterAll(async () => {
  for (const s of secrets) {
    expect(h.logText()).not.toContain(s);
    expect(target.logText()).not.toContain(s);
  }
  await h.close();
  await target.close();
});

async function mint(owner = "acme", extra: { scopes?: string[] } = {}) {
  const r = await h.keys.createKey({ owner, scopes: extra.scopes ?? ["orders:read"] }, h.auth);
  secrets.push(r.secret);
  return { secret: r.secret, id: r.key?.id ?? "" };
}

async function exportAll(from: ServiceHarness, pageSize = 0): Promise<KeyExport[]> {
  const out: KeyExport[] = [];
  let pageToken = "";
  do {
    const page = await from.keys.exportKeys({ pageSize, pageToken }, from.auth);
    out.push(...page.keys);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

function authorize(on: ServiceHarness, apiKey: string) {
  return on.tollgate.authorize({ apiKey, method: "GET", path: "/v1/orders" });
}

/** A foreign import record for `secret` with its SHA-256 in `encoding`. */
function foreign(
  secret: string,
  encoding: "hex" | "base64",
  over: Record<string, unknown> = {},
  prefix = "sk_test_",
) {
  return create(KeyExportSchema, {
    key: { owner: "migrated", scopes: ["orders:read"], ...over },
    foreignDigest: {
      algorithm: DigestAlgorithm.SHA256,
      encoding: encoding === "hex" ? DigestEncoding.HEX : DigestEncoding.BASE64,
      value: createHash("sha256").update(secret).digest(encoding),
    },
    foreignPrefix: prefix,
  });
}

describe("ExportKeys", () => {
  it("returns every key, revoked ones too, with digests and never a secret", async () => {
    const a = await mint("export-a");
    const b = await mint("export-b");
    await h.keys.revokeKey({ id: b.id, reason: "gone" }, h.auth);
    const rotated = await h.tollgate.rotateKey({ keyId: a.id }, h.auth);
    secrets.push(rotated.secret);
    const all = await exportAll(h);
    const byId = new Map(all.map((k) => [k.key?.id, k]));
    const ea = byId.get(a.id) as KeyExport;
    expect(ea).toMatchObject({ formatVersion: 1, foreignPrefix: "" });
    expect(ea.secretDigest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ea.graceSecretDigest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(ea.key?.graceEndTime).toBeDefined();
    expect(byId.get(b.id)?.key).toMatchObject({
      status: KeyStatus.REVOKED,
      revokedReason: "gone",
    });
    const json = all.map((k) => toJsonString(KeyExportSchema, k)).join("\n");
    for (const s of secrets) expect(json).not.toContain(s);
  });

  it("pages by page_size and token, in id order, and names the pepper by its fingerprint", async () => {
    for (let i = 0; i < 5; i++) await mint(`page-${i}`);
    const first = await h.keys.exportKeys({ pageSize: 2 }, h.auth);
    expect(first.keys).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    expect(first.pepperFingerprintPrefix).toMatch(/^[0-9a-f]{8}$/);
    const paged = await exportAll(h, 2);
    const ids = paged.map((k) => k.key?.id as string);
    expect(ids).toEqual([...ids].sort());
    expect(ids.length).toBe((await exportAll(h)).length);
  });

  it("refuses page_size past 1000 and a foreign token, naming the field", async () => {
    expect(await violatedFields(h.keys.exportKeys({ pageSize: 1001 }, h.auth))).toEqual([
      "page_size",
    ]);
    expect(await violatedFields(h.keys.exportKeys({ pageToken: "bm90LWFuLWlk" }, h.auth))).toEqual([
      "page_token",
    ]);
  });
});

describe("ImportKeys: restore", () => {
  it("restores another deployment's export: every key behaves as before", async () => {
    const plain = await mint("restore-plain");
    const gone = await mint("restore-revoked");
    await h.keys.revokeKey({ id: gone.id, reason: "leaked" }, h.auth);
    const exported = await exportAll(h);
    const fingerprint = (await h.keys.exportKeys({ pageSize: 1 }, h.auth)).pepperFingerprintPrefix;

    const dry = await target.keys.importKeys(
      { keys: exported, dryRun: true, pepperFingerprintPrefix: fingerprint },
      target.auth,
    );
    expect(new Set(dry.results.map((r) => r.outcome))).toEqual(new Set([ImportOutcome.CREATED]));
    expect((await target.keys.listKeys({ includeRevoked: true }, target.auth)).keys).toEqual([]);

    const res = await target.keys.importKeys(
      { keys: exported, pepperFingerprintPrefix: fingerprint },
      target.auth,
    );
    expect(res.results.map((r) => r.index)).toEqual(exported.map((_, i) => i));
    expect(res.results.every((r) => r.outcome === ImportOutcome.CREATED)).toBe(true);
    expect(await authorize(target, plain.secret)).toMatchObject({
      allowed: true,
      identity: { keyId: plain.id, owner: "restore-plain" },
    });
    expect((await authorize(target, gone.secret)).reason).toBe(Reason.REVOKED_KEY);
    expect((await target.keys.getKey({ id: gone.id }, target.auth)).key?.revokedReason).toBe(
      "leaked",
    );
    // The same export again: unchanged, every one.
    const again = await target.keys.importKeys(
      { keys: exported, pepperFingerprintPrefix: fingerprint },
      target.auth,
    );
    expect(again.results.every((r) => r.outcome === ImportOutcome.UNCHANGED)).toBe(true);
    expect(await exportAll(target)).toEqual(await exportAll(h));
  });

  it("reports a conflict by id and reason, and replaces only with overwrite", async () => {
    const k = await mint("conflict-before");
    const [rec] = (await exportAll(h)).filter((x) => x.key?.id === k.id) as [KeyExport];
    const fingerprint = (await h.keys.exportKeys({ pageSize: 1 }, h.auth)).pepperFingerprintPrefix;
    (rec.key as { owner: string }).owner = "conflict-after";
    const res = await h.keys.importKeys(
      { keys: [rec], pepperFingerprintPrefix: fingerprint },
      h.auth,
    );
    expect(res.results[0]).toMatchObject({
      keyId: k.id,
      outcome: ImportOutcome.CONFLICT,
      detail: "differs in: owner",
    });
    expect((await h.keys.getKey({ id: k.id }, h.auth)).key?.owner).toBe("conflict-before");
    const over = await h.keys.importKeys(
      { keys: [rec], overwrite: true, pepperFingerprintPrefix: fingerprint },
      h.auth,
    );
    expect(over.results[0]?.outcome).toBe(ImportOutcome.REPLACED);
    expect((await authorize(h, k.secret)).identity?.owner).toBe("conflict-after");
  });

  it("refuses digests made with another pepper (FAILED_PRECONDITION) and requires the fingerprint", async () => {
    await mint("pepper");
    const exported = await exportAll(h);
    const other = await createServiceHarness({ policyYaml: EXAMPLE_POLICY });
    try {
      const fingerprint = (await h.keys.exportKeys({ pageSize: 1 }, h.auth))
        .pepperFingerprintPrefix;
      const e = await failure(
        other.keys.importKeys(
          { keys: exported.slice(0, 3), pepperFingerprintPrefix: fingerprint },
          other.auth,
        ),
      );
      expect(e.code).toBe(Code.FailedPrecondition);
      expect(e.rawMessage).toContain("another pepper");
      expect(
        await violatedFields(other.keys.importKeys({ keys: exported.slice(0, 1) }, other.auth)),
      ).toEqual(["pepper_fingerprint_prefix"]);
      expect((await other.keys.listKeys({ includeRevoked: true }, other.auth)).keys).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it("bounds the batch: 1..500 records", async () => {
    expect(await violatedFields(h.keys.importKeys({ keys: [] }, h.auth))).toEqual(["keys"]);
    const many = Array.from({ length: 501 }, (_, i) =>
      foreign(`sk_test_bound-${i}-0123456789`, "hex"),
    );
    expect(await violatedFields(h.keys.importKeys({ keys: many }, h.auth))).toEqual(["keys"]);
    expect(
      await violatedFields(
        h.keys.importKeys({ keys: [many[0] as KeyExport], pepperFingerprintPrefix: "XYZ" }, h.auth),
      ),
    ).toEqual(["pepper_fingerprint_prefix"]);
  });

  it("answers each invalid record with its field violations and imports the valid ones", async () => {
    const base = (over: Record<string, unknown>) =>
      foreign(`sk_test_${randomBytes(12).toString("hex")}`, "hex", over);
    const bad: [KeyExport, string[]][] = [
      [base({ owner: "" }), ["key.owner"]],
      [base({ tier: "platinum" }), ["key.tier"]],
      [base({ scopes: ["has space"] }), ["key.scopes[0]"]],
      [base({ ipAllow: ["10.0.0.0/33"] }), ["key.ip_allow[0]"]],
      [base({ environment: "PROD" }), ["key.environment"]],
      [base({ id: "not-an-id" }), ["key.id"]],
      [base({ status: 7 }), ["key.status"]],
      [base({ revokeTime: timestampFromMs(Date.UTC(2025, 0)) }), ["key.revoke_time"]],
      [base({ revokedReason: "why" }), ["key.revoked_reason"]],
      [base({ graceEndTime: timestampFromMs(Date.UTC(2030, 0)) }), ["key.grace_end_time"]],
      [base({ expireTime: timestampFromMs(Date.UTC(10000, 0)) }), ["key.expire_time"]],
    ];
    const noPrefix = base({});
    noPrefix.foreignPrefix = "";
    bad.push([noPrefix, ["foreign_prefix"]]);
    const ours = base({});
    ours.foreignPrefix = "tg";
    bad.push([ours, ["foreign_prefix"]]);
    const wrongAlgo = base({});
    (wrongAlgo.foreignDigest as { algorithm: number }).algorithm = DigestAlgorithm.UNSPECIFIED;
    bad.push([wrongAlgo, ["foreign_digest.algorithm"]]);
    const shortDigest = base({});
    (shortDigest.foreignDigest as { value: string }).value = "abc";
    bad.push([shortDigest, ["foreign_digest.value"]]);
    const both = base({});
    both.secretDigest = "A".repeat(43);
    bad.push([both, ["secret_digest"]]);
    const future = base({});
    future.formatVersion = 2;
    bad.push([future, ["format_version"]]);
    const missing = create(KeyExportSchema, { key: { id: "key_0123456789abcdef", owner: "x" } });
    bad.push([missing, ["secret_digest"]]);
    const good = foreign("sk_test_valid-one-0123456789", "hex");
    const fingerprint = (await h.keys.exportKeys({ pageSize: 1 }, h.auth)).pepperFingerprintPrefix;
    const res = await h.keys.importKeys(
      { keys: [...bad.map(([r]) => r), good], pepperFingerprintPrefix: fingerprint },
      h.auth,
    );
    bad.forEach(([, fields], i) => {
      const r = res.results[i];
      expect({ i, outcome: r?.outcome }).toEqual({ i, outcome: ImportOutcome.INVALID });
      expect({ i, fields: r?.violations.map((v) => v.field) }).toEqual({ i, fields });
    });
    expect(res.results.at(-1)?.outcome).toBe(ImportOutcome.CREATED);
    // Descriptions name the bound, never the value.
    const text = JSON.stringify(res.results.flatMap((r) => r.violations));
    expect(text).not.toContain("has space");
    expect(text).not.toContain("platinum");
  });
});

describe("ImportKeys: keys from another system", () => {
  it("a base64 SHA-256 key authorizes with its identity, then moves to the HMAC digest", async () => {
    const secret = `sk_mig_${randomBytes(18).toString("base64url")}`;
    secrets.push(secret);
    // Until an import registers its prefix, such a secret is malformed.
    expect((await authorize(h, secret)).reason).toBe(Reason.MALFORMED_KEY);
    const res = await h.keys.importKeys(
      { keys: [foreign(secret, "base64", { metadata: { source: "unkey" } }, "sk_mig_")] },
      h.auth,
    );
    const [r] = res.results;
    expect(r?.outcome).toBe(ImportOutcome.CREATED);
    const id = r?.keyId as string;
    expect(id).toMatch(/^key_[0-9A-Za-z]{16}$/);
    const hex = createHash("sha256").update(secret).digest("hex");
    const before = (await exportAll(h)).find((k) => k.key?.id === id);
    expect(before?.foreignDigest).toMatchObject({ encoding: DigestEncoding.HEX, value: hex });
    expect(before?.secretDigest).toBe("");

    expect(await authorize(h, secret)).toMatchObject({
      allowed: true,
      identity: { keyId: id, owner: "migrated", metadata: { source: "unkey" } },
    });
    let after: KeyExport | undefined;
    for (let i = 0; i < 100 && !after?.secretDigest; i++) {
      await new Promise((r) => setTimeout(r, 10));
      after = (await exportAll(h)).find((k) => k.key?.id === id);
    }
    expect(after?.secretDigest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(after?.foreignDigest).toBeUndefined();
    expect(after?.foreignPrefix).toBe("sk_mig_");
    expect((await authorize(h, secret)).allowed).toBe(true);

    // The same record again: its id is derived from the digest, so it is the same key.
    const again = await h.keys.importKeys(
      { keys: [foreign(secret, "hex", {}, "sk_mig_")] },
      h.auth,
    );
    expect(again.results[0]).toMatchObject({ keyId: id, outcome: ImportOutcome.CONFLICT });
    expect(again.results[0]?.detail).toBe("differs in: metadata");
    const same = await h.keys.importKeys(
      { keys: [foreign(secret, "hex", { metadata: { source: "unkey" } }, "sk_mig_")] },
      h.auth,
    );
    expect(same.results[0]?.outcome).toBe(ImportOutcome.UNCHANGED);

    // Self-rotation with the foreign secret issues a Tollgate secret.
    const rotated = await h.tollgate.rotateKey({ currentSecret: secret });
    secrets.push(rotated.secret);
    expect(rotated.secret).toMatch(/^tg_live_/);
    expect(rotated.key?.id).toBe(id);
    const ok = await authorize(h, rotated.secret);
    expect(ok).toMatchObject({ allowed: true, identity: { keyId: id } });
  });

  it("exports round-trip as proto JSON, the form of the JSON Lines backup", async () => {
    const page = await h.keys.exportKeys({ pageSize: 3 }, h.auth);
    const json = toJsonString(ExportKeysResponseSchema, page, { useProtoFieldName: true });
    expect(json).toContain('"secret_digest"');
    expect(json).toContain('"pepper_fingerprint_prefix"');
  });
});
