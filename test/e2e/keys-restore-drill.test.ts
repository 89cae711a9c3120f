/**
 * The restore drill, as an operator runs it: a real redis-server, the built
 * server as a process, the CLI. Keys are created (one rotated with its grace
 * period still running, one revoked with a reason, one with IP rules and an
 * expiry, one imported from another system by its SHA-256 digest from a
 * CSV), exported to a file, Redis is flushed, the file is imported (first as
 * a dry run, then for real), and every key behaves as before: the current
 * secrets authorize with the same identity, the grace secret until its
 * original end time, the revoked key stays REVOKED_KEY with its reason, the
 * foreign key authorizes and moves to the HMAC digest (its SHA-256 index
 * entry gone from Redis). Importing again changes nothing. The flush also
 * fires the emptied-store detection (another feature), as it should.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, curlJson, pollUntil } from "../helpers/clients.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const PEPPER = "restore-drill-pepper-0123456789abcdef";
const TOKEN = "restore-drill-management-token-0123";
const AS_ADMIN = { TOLLGATE_MANAGEMENT_TOKEN: TOKEN };
const FOREIGN = `sk_live_${randomBytes(20).toString("base64url")}`;

let redis: TestRedis;
let client: Redis;
let server: TollgateProcess;
let dir: string;
const secrets: string[] = [FOREIGN];

interface Minted {
  id: string;
  secret: string;
}
const k: {
  plain?: Minted;
  rotated?: Minted & { old: string; graceEndTime: string };
  revoked?: Minted;
  fenced?: Minted & { expireTime: string };
  foreignId?: string;
} = {};
let listedBefore = "";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-drill-"));
  redis = await spawnRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  server = await startTollgateProcess({
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: PEPPER,
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    // Short cache lifetimes, so what the drill sees is the store's state.
    TOLLGATE_CACHE_TTL_MS: "200",
    TOLLGATE_NEGATIVE_CACHE_TTL_MS: "100",
    TOLLGATE_STORE_CHECK_INTERVAL_MS: "500",
    TOLLGATE_LOG_LEVEL: "debug",
  });
}, 60_000);

afterAll(async () => {
  const code = await server?.stop();
  await client?.quit();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  expect(code).toBe(0);
  for (const s of secrets) expect(server.output()).not.toContain(s);
});

const keys = (args: string[]) => cli(["keys", ...args, "--server", server.url], AS_ADMIN);

async function mint(args: string[]): Promise<Minted> {
  const r = await keys(["create", "--json", ...args]);
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { secret: string; key: { id: string } };
  secrets.push(out.secret);
  return { id: out.key.id, secret: out.secret };
}

async function authorize(apiKey: string, clientIp = "10.1.2.3") {
  const res = await curlJson(`${server.url}/tollgate.v1.TollgateService/Authorize`, {
    apiKey,
    clientIp,
  });
  return res.json as {
    allowed?: boolean;
    reason: string;
    identity?: { keyId: string; owner: string; scopes?: string[] };
    hints?: { inGracePeriod?: boolean; graceEndTime?: string; expireTime?: string };
  };
}

/** The digest index entries of `secret` in Redis: Tollgate's HMAC and the foreign SHA-256. */
function indexKeys(secret: string) {
  const hmac = createHmac("sha256", PEPPER).update(secret).digest("base64url");
  const sha = createHash("sha256").update(secret).digest("hex");
  return { hmac: `tg:kd:{${hmac}}`, sha: `tg:kd:{sha256:${sha}}` };
}

/** Every key behaves as it should, before the flush and after the restore. */
async function expectEveryKeyAsBefore(): Promise<void> {
  const { plain, rotated, revoked, fenced } = k as Required<typeof k>;
  expect(await authorize(plain.secret)).toMatchObject({
    allowed: true,
    identity: { keyId: plain.id, owner: "plain" },
  });
  expect(await authorize(rotated.secret)).toMatchObject({
    allowed: true,
    identity: { keyId: rotated.id, owner: "rotated" },
  });
  expect(await authorize(rotated.old)).toMatchObject({
    allowed: true,
    identity: { keyId: rotated.id },
    hints: { inGracePeriod: true, graceEndTime: rotated.graceEndTime },
  });
  expect(await authorize(revoked.secret)).toMatchObject({ reason: "REASON_REVOKED_KEY" });
  const got = await keys(["get", revoked.id, "--json"]);
  expect(JSON.parse(got.stdout)).toMatchObject({
    status: "KEY_STATUS_REVOKED",
    revokedReason: "leaked in a CI log",
  });
  expect(await authorize(fenced.secret, "10.1.2.3")).toMatchObject({
    allowed: true,
    hints: { expireTime: fenced.expireTime },
  });
  expect((await authorize(fenced.secret, "10.9.1.1")).reason).toBe("REASON_IP_DENIED");
  expect((await authorize(fenced.secret, "192.168.1.1")).reason).toBe("REASON_IP_DENIED");
}

describe("the restore drill", () => {
  it("creates keys: rotated (grace running), revoked, IP-fenced with expiry, foreign from a CSV", async () => {
    k.plain = await mint(["--owner", "plain"]);
    const r = await mint(["--owner", "rotated"]);
    const rot = await keys(["rotate", r.id, "--grace", "10m", "--json"]);
    expect(rot.code, rot.stderr).toBe(0);
    const rotOut = JSON.parse(rot.stdout) as { secret: string; graceEndTime: string };
    secrets.push(rotOut.secret);
    k.rotated = {
      id: r.id,
      secret: rotOut.secret,
      old: r.secret,
      graceEndTime: rotOut.graceEndTime,
    };
    k.revoked = await mint(["--owner", "revoked"]);
    const rev = await keys(["revoke", k.revoked.id, "--reason", "leaked in a CI log"]);
    expect(rev.code, rev.stderr).toBe(0);
    const f = await mint([
      "--owner",
      "fenced",
      "--allow",
      "10.0.0.0/8",
      "--deny",
      "10.9.0.0/16",
      "--ttl",
      "30d",
    ]);
    const fenced = JSON.parse((await keys(["get", f.id, "--json"])).stdout) as {
      expireTime: string;
    };
    k.fenced = { ...f, expireTime: fenced.expireTime };

    // A key from another system: its SHA-256 (hex), owner, scopes and expiry, as CSV.
    const sha = createHash("sha256").update(FOREIGN).digest("hex");
    const csv = join(dir, "legacy.csv");
    writeFileSync(
      csv,
      `key_hash,owner,scopes,expires,metadata.source\n${sha},legacy-co,"orders:read orders:write",2099-01-01T00:00:00Z,legacy\n`,
    );
    const imp = await keys(["import", csv, "--map", "hash=key_hash", "--prefix", "sk_live_"]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout).toMatch(/^1 created, 0 unchanged, 0 conflicts, 0 invalid/m);
    const list = await keys(["list", "--all", "--owner", "legacy-co", "--json"]);
    k.foreignId = (JSON.parse(list.stdout) as { keys: { id: string }[] }).keys[0]?.id;
    expect(k.foreignId).toMatch(/^key_/);
    expect(await client.exists(indexKeys(FOREIGN).sha)).toBe(1);

    await expectEveryKeyAsBefore();
    listedBefore = (await keys(["list", "--all", "--json"])).stdout;
  });

  it("exports every key to a 0600 file: header, one line per key, trailer; no secret in it", async () => {
    const file = join(dir, "backup.jsonl");
    const r = await keys(["export", "--out", file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^exported 5 keys to .*backup\.jsonl in /m);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(7);
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      format: "tollgate-keys",
      version: 1,
      pepper_fingerprint_prefix: expect.stringMatching(/^[0-9a-f]{8}$/),
    });
    expect(JSON.parse(lines[6] as string)).toEqual({ end: true, keys: 5 });
    const text = lines.join("\n");
    for (const s of secrets) expect(text).not.toContain(s);
    // A second export to the same file is refused without --force.
    expect((await keys(["export", "--out", file])).code).toBe(2);
  });

  it("after FLUSHALL every key is gone (and the emptied store is noticed)", async () => {
    await client.flushall();
    const { value } = await pollUntil(
      () => authorize((k.plain as Minted).secret),
      (v) => v.reason === "REASON_UNKNOWN_KEY",
      5000,
      50,
    );
    expect(value.reason).toBe("REASON_UNKNOWN_KEY");
    expect(JSON.parse((await keys(["list", "--all", "--json"])).stdout)).toEqual({});
    await pollUntil(
      async () => server.logs.some((l) => String(l.msg).includes("the store was emptied")),
      (seen) => seen,
      5000,
      50,
    );
    expect(server.logs.some((l) => String(l.msg).includes("the store was emptied"))).toBe(true);
  });

  it("a dry run reports 5 to create and writes nothing", async () => {
    const r = await keys(["import", join(dir, "backup.jsonl"), "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^dry run \(nothing written\): 5 to create, 0 unchanged, 0 conflicts, 0 invalid in /m,
    );
    // No key record, digest entry or listing (events and the store epoch may be there).
    expect(await client.keys("tg:key*")).toEqual([]);
    expect(await client.keys("tg:kd:*")).toEqual([]);
    expect((await authorize((k.plain as Minted).secret)).reason).toBe("REASON_UNKNOWN_KEY");
  });

  it("the import restores every key: each behaves as before", async () => {
    const r = await keys(["import", join(dir, "backup.jsonl")]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^5 created, 0 unchanged, 0 conflicts, 0 invalid in /m);
    expect(r.stderr).toBe("");
    await expectEveryKeyAsBefore();
    expect((await keys(["list", "--all", "--json"])).stdout).toBe(listedBefore);
    // The grace secret's index entry expires at the original grace end, not later.
    const { rotated } = k as Required<typeof k>;
    const ttl = await client.pttl(indexKeys(rotated.old).hmac);
    expect(Math.abs(ttl - (Date.parse(rotated.graceEndTime) - Date.now()))).toBeLessThan(1500);
  });

  it("the foreign key authorizes and moves to the HMAC digest: its SHA-256 entry leaves Redis", async () => {
    const idx = indexKeys(FOREIGN);
    expect(await client.exists(idx.sha)).toBe(1);
    expect(await authorize(FOREIGN)).toMatchObject({
      allowed: true,
      identity: { keyId: k.foreignId, owner: "legacy-co", scopes: ["orders:read", "orders:write"] },
    });
    const moved = await pollUntil(
      () => client.exists(idx.sha),
      (n) => n === 0,
      5000,
      20,
    );
    expect(moved.value).toBe(0);
    expect(await client.get(idx.hmac)).toBe(k.foreignId);
    expect((await authorize(FOREIGN)).allowed).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_key_foreign_migrated_total 1$/m);
  });

  it("importing the same file again: every key unchanged, nothing written", async () => {
    const r = await keys(["import", join(dir, "backup.jsonl"), "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      created: 0,
      unchanged: 5,
      conflicts: 0,
      invalid: 0,
      warnings: [],
    });
    // Not even the moved foreign key's SHA-256 entry comes back.
    expect(await client.exists(indexKeys(FOREIGN).sha)).toBe(0);
    await expectEveryKeyAsBefore();
    expect((await authorize(FOREIGN)).allowed).toBe(true);
    // A new export equals the first, but for the foreign key, now under its HMAC digest.
    const again = join(dir, "again.jsonl");
    expect((await keys(["export", "--out", again])).code).toBe(0);
    const records = (file: string) => readFileSync(file, "utf8").trimEnd().split("\n").slice(1);
    const first = records(join(dir, "backup.jsonl"));
    const second = records(again);
    expect(second).toHaveLength(first.length);
    for (const [i, line] of second.entries()) {
      if (line.includes(k.foreignId as string)) {
        expect(line).toContain('"secret_digest"');
        expect(line).not.toContain('"foreign_digest"');
        expect(line).toContain('"foreign_prefix":"sk_live_"');
      } else expect(line).toBe(first[i]);
    }
  });
});
