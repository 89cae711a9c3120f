/**
 * The client against a real Tollgate server: every RPC with typed results
 * (key export and import included), the management token, the Connect
 * protocol, and revocation with and without the allow-cache.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clone } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createTollgateClient,
  ImportOutcome,
  type KeyExport,
  KeyExportSchema,
  KeyService,
  KeyStatus,
  RETRY_SAFE,
  Reason,
  SubjectKind,
  type TollgateClient,
  TollgateService,
} from "../src/index.js";
import { startTollgate, type TollgateServer } from "./helpers/tollgate-server.js";

let server: TollgateServer;
let client: TollgateClient;
const secrets: string[] = [];

beforeAll(async () => {
  server = await startTollgate();
  // A generous deadline: the 2 shared cores of CI can stall a call past the 200 ms default
  // (the default itself is tested in resilience.test.ts).
  client = createTollgateClient({ server: server.url, env: {}, timeoutMs: 2_000 });
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

async function newKey(scopes: string[] = ["orders:read"], c = client) {
  const res = await c.createKey({ owner: "acme", scopes });
  secrets.push(res.secret);
  return res;
}

describe("every RPC", () => {
  it("has a method and a retry rule for every RPC of both services", () => {
    const methods = [...TollgateService.methods, ...KeyService.methods];
    expect(methods.map((m) => m.name)).toEqual(
      expect.arrayContaining(["Authorize", "ExportKeys", "ImportKeys"]),
    );
    for (const m of methods) {
      expect(typeof client[m.localName as keyof TollgateClient], m.name).toBe("function");
      expect(RETRY_SAFE, m.name).toHaveProperty(m.localName);
    }
  });

  it("streams decisions and events, never retried, and ends a stream when its signal aborts", async () => {
    await client.authorize({ apiKey: "" });
    const lines = [];
    for await (const d of client.tailDecisions({ backlog: 1, deniedOnly: true })) lines.push(d);
    expect(lines.map((d) => d.reason)).toEqual(["MISSING_KEY"]);

    const startTime = timestampFromMs(Date.now());
    const events = (async () => {
      const out = [];
      for await (const r of client.followEvents({
        customType: "client_probe",
        startTime,
        limit: 1,
      }))
        out.push(r.event?.subject);
      return out;
    })();
    await client.recordEvent({
      events: [{ id: "client-probe-1", customType: "client_probe", subject: "probe" }],
    });
    expect(await events).toEqual(["probe"]);

    const abort = new AbortController();
    const live = client.tailDecisions({ follow: true }, { signal: abort.signal });
    const first = live[Symbol.asyncIterator]().next();
    abort.abort();
    await expect(first).rejects.toMatchObject({ code: Code.Canceled });
    expect(RETRY_SAFE.tailDecisions()).toBe(false);
    expect(RETRY_SAFE.followEvents()).toBe(false);
  });

  it("exports every key a page at a time and imports the export back unchanged; a dry run reports a conflict", async () => {
    const a = await newKey(["orders:read"]);
    const b = await newKey(["orders:write"]);
    const ids = [a.key?.id ?? "", b.key?.id ?? ""];
    const records: KeyExport[] = [];
    const fingerprints = new Set<string>();
    let pages = 0;
    for await (const page of client.exportAllKeys({ pageSize: 1 })) {
      pages++;
      expect(page.keys.length).toBeLessThanOrEqual(1);
      records.push(...page.keys);
      fingerprints.add(page.pepperFingerprintPrefix);
    }
    expect(pages).toBeGreaterThanOrEqual(records.length);
    const exported = records.map((r) => r.key?.id ?? "");
    expect(exported).toEqual(expect.arrayContaining(ids));
    expect(exported).toEqual([...exported].sort()); // ordered by id
    const mine = records.find((r) => r.key?.id === ids[0]);
    expect(mine?.secretDigest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(mine?.key?.owner).toBe("acme");
    expect([...fingerprints]).toHaveLength(1);
    const [fingerprint = ""] = fingerprints;
    expect(fingerprint).toMatch(/^[0-9a-f]{8}$/);

    // Restoring into the same server changes nothing.
    const restored = await client.importKeys({
      keys: records,
      pepperFingerprintPrefix: fingerprint,
    });
    expect(restored.results.map((r) => r.index)).toEqual(records.map((_, i) => i));
    expect(restored.results.map((r) => r.keyId)).toEqual(exported);
    expect(restored.results.every((r) => r.outcome === ImportOutcome.UNCHANGED)).toBe(true);

    // A modified record is a conflict; a dry run writes nothing.
    const changed = clone(KeyExportSchema, mine as KeyExport);
    if (changed.key) changed.key.owner = "someone-else";
    const dry = await client.importKeys({
      keys: [changed],
      dryRun: true,
      pepperFingerprintPrefix: fingerprint,
    });
    expect(dry.results).toHaveLength(1);
    expect(dry.results[0]?.outcome).toBe(ImportOutcome.CONFLICT);
    expect(dry.results[0]?.detail).toContain("owner");
    expect((await client.getKey({ id: ids[0] })).key?.owner).toBe("acme");
  });

  it("manages keys: create, get, list, update, rotate (by id and by secret), revoke", async () => {
    const created = await newKey(["orders:read"]);
    expect(created.secret).toMatch(/^tg_live_/);
    const id = created.key?.id ?? "";
    expect((await client.getKey({ id })).key?.owner).toBe("acme");
    const listed = await client.listKeys({ owner: "acme" });
    expect(listed.keys.map((k) => k.id)).toContain(id);
    const updated = await client.updateKey({
      id,
      updateMask: { paths: ["scopes"] },
      scopes: ["orders:read", "orders:write"],
    });
    expect(updated.key?.scopes).toEqual(["orders:read", "orders:write"]);
    const byId = await client.rotateKey({ keyId: id, gracePeriod: { seconds: 60n } });
    secrets.push(byId.secret);
    const bySecret = await client.rotateKey({ currentSecret: byId.secret });
    secrets.push(bySecret.secret);
    expect(bySecret.key?.id).toBe(id);
    const revoked = await client.revokeKey({ id, reason: "test" });
    expect(revoked.key?.status).toBe(KeyStatus.REVOKED);
  });

  it("authorizes, checks rate limits, records events, lists blocks, events, alerts and usage", async () => {
    const { secret, key } = await newKey();
    const id = key?.id ?? "";
    const a = await client.authorize({ apiKey: secret, method: "GET", path: "/v1/orders" });
    expect(a.allowed).toBe(true);
    expect(a.reason).toBe(Reason.OK);
    expect(a.identity?.keyId).toBe(id);
    expect(a.endpoint).toBe("list-orders");
    const r = await client.checkRateLimit({ keyId: id, endpoint: "create-order" });
    expect(r.allowed).toBe(true);
    expect(r.result?.deciding?.limit).toBe(2n);
    // A cost known after the response: charged past the limit, once per id.
    const report = { id: `resp-${id}`, keyId: id, endpoint: "create-order", cost: 5 };
    const u = await client.reportUsage(report);
    expect(u.duplicate).toBe(false);
    expect(u.limits.find((l) => l.name === "per-key")?.exceeded).toBe(true);
    expect((await client.reportUsage(report)).duplicate).toBe(true);
    expect((await client.checkRateLimit({ keyId: id, endpoint: "create-order" })).allowed).toBe(
      false,
    );
    const ev = await client.recordEvent({
      events: [
        {
          id: `ev-${Date.now()}`,
          customType: "login.failed",
          subject: id,
          subjectKind: SubjectKind.KEY,
        },
      ],
    });
    expect(ev.acceptedIds).toHaveLength(1);
    expect((await client.listBlocks({})).blocks).toEqual([]);
    expect((await client.deleteBlock({ subjectKind: SubjectKind.KEY, subject: id })).lifted).toBe(
      false,
    );
    const events = await client.listEvents({ subject: id });
    expect(events.events.length).toBeGreaterThan(0);
    await client.listAlerts({});
    const usage = await client.getUsage({ keyId: id });
    expect(usage.totalRequests).toBeGreaterThanOrEqual(0n);
  });

  it("answers a denial as data: an unknown key is allowed=false with http_status 401", async () => {
    const a = await client.authorize({ apiKey: "tg_live_000000000000000000000000000000" });
    expect(a.allowed).toBe(false);
    expect(a.httpStatus).toBe(401);
  });

  it("surfaces bad input as INVALID_ARGUMENT naming the field", async () => {
    const err = await client.authorize({ clientIp: "not-an-ip" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("client_ip");
  });

  it("speaks Connect over HTTP/1.1 too", async () => {
    const connect = createTollgateClient({
      server: server.url,
      protocol: "connect",
      env: {},
      timeoutMs: 2_000,
    });
    const { secret } = await newKey([], connect);
    expect((await connect.authorize({ apiKey: secret })).allowed).toBe(true);
  });
});

describe("revocation", () => {
  it("without the allow-cache, a revoked key is refused at once", async () => {
    const { secret, key } = await newKey();
    expect((await client.authorize({ apiKey: secret })).allowed).toBe(true);
    await client.revokeKey({ id: key?.id ?? "" });
    const a = await client.authorize({ apiKey: secret });
    expect(a.allowed).toBe(false);
    expect(a.reason).toBe(Reason.REVOKED_KEY);
  });

  it("with the allow-cache, a key revoked elsewhere is refused once the (clamped) TTL has passed", async () => {
    const cached = createTollgateClient({
      server: server.url,
      env: {},
      timeoutMs: 2_000,
      allowCache: { ttlMs: 400 },
    });
    const { secret, key } = await newKey();
    const first = await cached.authorize({ apiKey: secret, method: "GET", path: "/v1/orders" });
    expect(first.allowed).toBe(true);
    // Revoked through another client (another replica, an operator): this cache does not know.
    await client.revokeKey({ id: key?.id ?? "" });
    const hit = await cached.authorize({ apiKey: secret, method: "GET", path: "/v1/orders" });
    expect(hit.allowed).toBe(true);
    expect(hit.decisionId).toBe(first.decisionId);
    await new Promise((r) => setTimeout(r, 450));
    const after = await cached.authorize({ apiKey: secret, method: "GET", path: "/v1/orders" });
    expect(after.allowed).toBe(false);
    expect(after.reason).toBe(Reason.REVOKED_KEY);
    // Charging calls never use the cache.
    cached.close();
  });

  it("the allow-cache TTL is clamped to the server's 5 s revocation bound", async () => {
    const { AllowCache } = await import("../src/allow-cache.js");
    expect(new AllowCache({ ttlMs: 60_000 }).ttlMs).toBe(5_000);
  });
});

describe("management token", () => {
  it("is read from TOLLGATE_MANAGEMENT_TOKEN_FILE, sent on KeyService calls, and never in an error", async () => {
    const token = "test-management-token-0123456789abcdef";
    const guarded = await startTollgate({ env: { TOLLGATE_MANAGEMENT_TOKEN: token } });
    try {
      const file = join(tmpdir(), `tollgate-ts-token-${process.pid}`);
      writeFileSync(file, `${token}\n`);
      const withToken = createTollgateClient({
        env: { TOLLGATE_SERVER: guarded.url, TOLLGATE_MANAGEMENT_TOKEN_FILE: file },
      });
      const created = await withToken.createKey({ owner: "acme" });
      secrets.push(created.secret);
      expect(created.key?.id).toMatch(/^key_/);
      const without = createTollgateClient({ server: guarded.url, env: {} });
      const err = (await without.listKeys({}).catch((e: unknown) => e)) as ConnectError;
      expect(err.code).toBe(Code.Unauthenticated);
      const wrong = createTollgateClient({
        server: guarded.url,
        managementToken: "wrong-token-xyz",
        env: {},
      });
      const err2 = (await wrong.listKeys({}).catch((e: unknown) => e)) as ConnectError;
      expect(err2.code).toBe(Code.Unauthenticated);
      expect(String(err2)).not.toContain("wrong-token-xyz");
      // Authorize needs no token, and the self-rotation none either.
      expect((await without.authorize({ apiKey: created.secret })).allowed).toBe(true);
      withToken.close();
      without.close();
      wrong.close();
      expect(guarded.output()).not.toContain(token);
    } finally {
      await guarded.stop();
    }
  });
});

describe("no secret in any log", () => {
  it("the server's output never contains a key created or used here", () => {
    const out = server.output();
    expect(out.length).toBeGreaterThan(0);
    for (const s of secrets) expect(out).not.toContain(s);
  });
});
