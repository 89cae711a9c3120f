/**
 * Limit overrides across two built Tollgate processes on one private Redis:
 * a key limited on process B is raised through process A, and B admits
 * within the documented bound — the invalidation bus, not a TTL: B's key
 * cache and owner-override cache are trusted for 10 minutes here, so only
 * the bus can make B see the change, and nothing B remembers of its earlier
 * denials holds the raised key back. Then lower, exempt, expiry and removal,
 * an owner override likewise (B cached "no overrides" for that owner), the
 * CLI (`keys override`, `keys get`, `owners override`) and `check-config
 * --server`.
 */
import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { cli, pollUntil } from "../helpers/clients.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "e2e-overrides-management-token-0123";
const POLICY = "test/fixtures/policies/overrides-e2e.yaml";
/** B trusts its caches this long: far beyond the test, so only the bus can refresh them. */
const CACHE_TTL_MS = 600_000;
/** The documented bound with the bus up: "at once" — a generous 3 s on a loaded 2-core machine. */
const BUS_BOUND_MS = 3000;

let redis: TestRedis;
let a: TollgateProcess;
let b: TollgateProcess;
const auth = { headers: { authorization: `Bearer ${TOKEN}` } };

function clientsOf(p: TollgateProcess) {
  const transport = createGrpcTransport({ baseUrl: p.url });
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}
let A: ReturnType<typeof clientsOf>;
let B: ReturnType<typeof clientsOf>;

beforeAll(async () => {
  redis = await startTestRedis();
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_REDIS_PREFIX: "e2eov:",
    TOLLGATE_PEPPER: "e2e-overrides-pepper-0123456789ab",
    TOLLGATE_POLICY_FILE: POLICY,
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
    TOLLGATE_BREAKER_TIMEOUT_MS: "2000",
  };
  [a, b] = await Promise.all([
    startTollgateProcess(env),
    startTollgateProcess({ ...env, TOLLGATE_CACHE_TTL_MS: String(CACHE_TTL_MS) }),
  ]);
  A = clientsOf(a);
  B = clientsOf(b);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

async function mint(owner = `o-${randomUUID()}`) {
  const r = await A.keys.createKey({ owner }, auth);
  return { id: r.key?.id ?? "", secret: r.secret, owner };
}

const onB = async (secret: string) =>
  (await B.tollgate.authorize({ apiKey: secret, method: "GET", path: "/v1/x", applyLimits: true }))
    .allowed;

async function admittedOnB(secret: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if (await onB(secret)) ok++;
  return ok;
}

/** Polls B until a decision is `allowed`; returns how long it took (the propagation). */
async function untilB(secret: string, allowed: boolean): Promise<number> {
  const r = await pollUntil(
    () => onB(secret),
    (v) => v === allowed,
    BUS_BOUND_MS + 2000,
    25,
  );
  expect(r.value, `B never ${allowed ? "admitted" : "denied"}`).toBe(allowed);
  return r.ms;
}

const setKey = (id: string, o: Record<string, unknown>) =>
  A.keys.setLimitOverride(
    { target: { case: "keyId", value: id }, limitOverride: { limit: "per-key", ...o } },
    auth,
  );
const setOwner = (owner: string, o: Record<string, unknown>) =>
  A.keys.setLimitOverride(
    { target: { case: "owner", value: owner }, limitOverride: { limit: "per-key", ...o } },
    auth,
  );

describe("a key override set on A applies on B within the bound", () => {
  it("raise: B admits the denied key at once, keeping its usage; then lower, exempt, expiry, removal", async () => {
    const k = await mint();
    expect(await admittedOnB(k.secret, 5)).toBe(3);
    // B has denied it twice and cached the key for 10 minutes.
    await setKey(k.id, { requests: 5n });
    expect(await untilB(k.secret, true)).toBeLessThan(BUS_BOUND_MS);
    // 3 + 1 of 5 used: exactly one more (the usage counted before was kept).
    expect(await admittedOnB(k.secret, 3)).toBe(1);

    // Exempt: unlimited on B.
    await setKey(k.id, { exempt: true });
    expect(await untilB(k.secret, true)).toBeLessThan(BUS_BOUND_MS);
    expect(await admittedOnB(k.secret, 10)).toBe(10);

    // Lower below the usage (5 counted; exempt requests are not): B denies.
    await setKey(k.id, { requests: 4n });
    expect(await untilB(k.secret, false)).toBeLessThan(BUS_BOUND_MS);

    // An exemption expiring in 2 s: admitted, then denied once it expires (B's own clock).
    const ends = Date.now() + 2000;
    await setKey(k.id, { exempt: true, expireTime: timestampFromMs(ends) });
    expect(await untilB(k.secret, true)).toBeLessThan(BUS_BOUND_MS);
    const r = await pollUntil(
      () => onB(k.secret),
      (v) => v === false,
      6000,
      50,
    );
    expect(r.value).toBe(false);
    expect(Date.now()).toBeGreaterThanOrEqual(ends - 50);
    expect(Date.now() - ends).toBeLessThan(BUS_BOUND_MS);
    // Expired: hidden by GetKey on either process.
    expect((await B.keys.getKey({ id: k.id }, auth)).key?.limitOverrides).toEqual([]);

    // Removal: back to the tier's 3 per hour.
    await setKey(k.id, { exempt: true });
    expect(await untilB(k.secret, true)).toBeLessThan(BUS_BOUND_MS);
    const del = await A.keys.deleteLimitOverride(
      { target: { case: "keyId", value: k.id }, limit: "per-key" },
      auth,
    );
    expect(del.deleted).toBe(true);
    expect(await untilB(k.secret, false)).toBeLessThan(BUS_BOUND_MS);
  });
});

describe("an owner override set on A applies on B within the bound", () => {
  it("B cached 'no overrides' for the owner; the raise reaches it over the bus; the key's own beats it", async () => {
    const owner = `o-${randomUUID()}`;
    const k1 = await mint(owner);
    const k2 = await mint(owner);
    expect(await admittedOnB(k1.secret, 4)).toBe(3);
    await setOwner(owner, { requests: 6n });
    expect(await untilB(k1.secret, true)).toBeLessThan(BUS_BOUND_MS);
    expect(await admittedOnB(k1.secret, 5)).toBe(2);
    // Every key of the owner: k2 is new, 6 of its own.
    expect(await admittedOnB(k2.secret, 8)).toBe(6);
    // The key's own override beats the owner's.
    await setKey(k2.id, { requests: 8n });
    expect(await untilB(k2.secret, true)).toBeLessThan(BUS_BOUND_MS);
    // Lower the owner's: k1 stays denied, k2 (key override) unaffected by it.
    await setOwner(owner, { exempt: true });
    expect(await untilB(k1.secret, true)).toBeLessThan(BUS_BOUND_MS);
    const del = await A.keys.deleteLimitOverride(
      { target: { case: "owner", value: owner }, limit: "per-key" },
      auth,
    );
    expect(del.deleted).toBe(true);
    expect(await untilB(k1.secret, false)).toBeLessThan(BUS_BOUND_MS);
    // An owner override expiring: B stops applying it by its clock.
    const ends = Date.now() + 1500;
    await setOwner(owner, { exempt: true, expireTime: timestampFromMs(ends) });
    expect(await untilB(k1.secret, true)).toBeLessThan(BUS_BOUND_MS);
    const r = await pollUntil(
      () => onB(k1.secret),
      (v) => v === false,
      6000,
      50,
    );
    expect(r.value).toBe(false);
    expect(Date.now() - ends).toBeLessThan(BUS_BOUND_MS);
  });
});

describe("the CLI", () => {
  const env = { TOLLGATE_MANAGEMENT_TOKEN: TOKEN };

  it("keys override on A reaches B; keys get shows the sources; owners override; check-config --server", async () => {
    const k = await mint();
    expect(await admittedOnB(k.secret, 4)).toBe(3);
    const set = await cli(
      [
        "keys",
        "override",
        k.id,
        "--limit",
        "per-key",
        "--requests",
        "10",
        "--expires",
        "1h",
        "--server",
        a.url,
      ],
      env,
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(new RegExp(`key ${k.id}\\s+per-key\\s+10`));
    expect(await untilB(k.secret, true)).toBeLessThan(BUS_BOUND_MS);

    const own = await cli(
      [
        "owners",
        "override",
        k.owner,
        "--limit",
        "per-owner",
        "--requests",
        "50",
        "--server",
        b.url,
      ],
      env,
    );
    expect(own.code, own.stderr).toBe(0);

    const got = await cli(["keys", "get", k.id, "--server", b.url], env);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toContain("key override > owner override > endpoint > tier");
    expect(got.stdout).toMatch(/per-key: rate 10\/1h burst 10 by key \[enforce\]\s+key override/);
    expect(got.stdout).toMatch(
      /per-owner: quota 50\/day \(UTC\) by owner \[enforce\]\s+owner override/,
    );

    const list = await cli(["owners", "overrides", k.owner, "--server", a.url], env);
    expect(list.stdout).toMatch(new RegExp(`owner ${k.owner}\\s+per-owner\\s+50\\s+never`));

    const cc = await cli(["check-config", POLICY, "--server", a.url], env);
    expect(cc.code, cc.stderr).toBe(0);
    expect(cc.stdout).toContain(
      "precedence, per limit name: key override > owner override > endpoint > tier",
    );
    expect(cc.stdout).toContain(`runtime overrides active at ${a.url}`);
    expect(cc.stdout).toMatch(new RegExp(`key ${k.id}\\s+per-key\\s+10`));
    expect(cc.stdout).toMatch(new RegExp(`owner ${k.owner}\\s+per-owner\\s+50`));

    const bad = await cli(
      ["keys", "override", k.id, "--limit", "nope", "--requests", "1", "--server", a.url],
      env,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("InvalidArgument");
    expect(bad.stderr).toContain("limit_override.limit");

    const rm = await cli(
      ["keys", "override", k.id, "--limit", "per-key", "--remove", "--server", a.url],
      env,
    );
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe("override of per-key removed\n");
    expect(await untilB(k.secret, false)).toBeLessThan(BUS_BOUND_MS);
  });
});
