/**
 * Two built Tollgate processes (replicas A and B) sharing one spawned
 * redis-server, with the same pepper: a key minted on one authorizes on the
 * other; a revocation on A is refused by B at once when the invalidation
 * arrives, and within TOLLGATE_CACHE_TTL_MS when B's pub/sub connection was
 * killed right before the revocation (the lost-invalidation case).
 */
import { execFileSync } from "node:child_process";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { clientsOver, pollUntil, transportsOf } from "../helpers/clients.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "e2e-replicas-token-0123456789";
const PEPPER = "e2e-replicas-pepper-0123456789abcdef";
const CACHE_TTL_MS = 1000;
const AUTH = { headers: { authorization: `Bearer ${TOKEN}` } };
let redis: TestRedis;
let a: TollgateProcess;
let b: TollgateProcess;
const secrets: string[] = [];

beforeAll(async () => {
  redis = await spawnRedis();
  const env = {
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: PEPPER,
    TOLLGATE_CACHE_TTL_MS: String(CACHE_TTL_MS),
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
  };
  [a, b] = await Promise.all([startTollgateProcess(env), startTollgateProcess(env)]);
});

afterAll(async () => {
  const codes = await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  expect(codes).toEqual([0, 0]);
  for (const p of [a, b]) {
    for (const s of [...secrets, TOKEN, PEPPER]) expect(p.output()).not.toContain(s);
  }
});

/** Connect over HTTP/1.1 on the main port of a replica. */
const api = (p: TollgateProcess) =>
  clientsOver(transportsOf(p)["Connect over HTTP/1.1 on the main port"] ?? fail());

function fail(): never {
  throw new Error("no such transport");
}

async function mintOn(p: TollgateProcess, owner = "acme") {
  const r = await api(p).keys.createKey({ owner, scopes: ["orders:read"] }, AUTH);
  secrets.push(r.secret);
  return { secret: r.secret, id: r.key?.id ?? "" };
}

/** Polls B until it refuses `secret`; returns the reason and the delay. */
async function untilRefusedOnB(secret: string, timeoutMs: number) {
  const { value, ms } = await pollUntil(
    () => api(b).tollgate.authorize({ apiKey: secret }),
    (r) => !r.allowed,
    timeoutMs,
    10,
  );
  return { reason: value.reason, allowed: value.allowed, ms };
}

/** Redis client ids of B's pub/sub connections (matched by B's local TCP ports). */
async function pubsubClientsOfB(admin: Redis): Promise<string[]> {
  const ss = execFileSync("ss", ["-Htnp", "state", "established", `dport = :${redis.port}`], {
    encoding: "utf8",
  });
  const ports = new Set(
    ss
      .split("\n")
      .filter((l) => l.includes(`pid=${b.child.pid},`))
      .map((l) => /127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:\d+/.exec(l)?.[1]),
  );
  const list = (await admin.call("CLIENT", "LIST", "TYPE", "pubsub")) as string;
  return list
    .split("\n")
    .filter((l) => ports.has(/ addr=127\.0\.0\.1:(\d+) /.exec(l)?.[1]))
    .map((l) => /^id=(\d+) /.exec(l)?.[1] ?? "");
}

describe("two replicas on one Redis", () => {
  it("a key created on A authorizes on B, and one created on B on A", async () => {
    const fromA = await mintOn(a);
    const fromB = await mintOn(b);
    const onB = await api(b).tollgate.authorize({
      apiKey: fromA.secret,
      method: "GET",
      path: "/v1/orders",
    });
    expect(onB).toMatchObject({ allowed: true, reason: Reason.OK, endpoint: "list-orders" });
    expect(onB.identity).toMatchObject({ keyId: fromA.id, owner: "acme", tier: "free" });
    const onA = await api(a).tollgate.authorize({ apiKey: fromB.secret });
    expect(onA.identity?.keyId).toBe(fromB.id);
    // Management sees the same keys from either side.
    const listed = await api(b).keys.listKeys({ owner: "acme" }, AUTH);
    expect(listed.keys.map((k) => k.id)).toEqual(expect.arrayContaining([fromA.id, fromB.id]));
  });

  it("revoked on A, the key is refused by B (REVOKED_KEY) well within the cache TTL", async () => {
    const { secret, id } = await mintOn(a);
    // Cached on B now.
    expect((await api(b).tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    await api(a).keys.revokeKey({ id, reason: "leaked" }, AUTH);
    const seen = await untilRefusedOnB(secret, CACHE_TTL_MS + 2000);
    console.log(`B refused the key revoked on A after ${seen.ms} ms (invalidation delivered)`);
    expect(seen).toMatchObject({ allowed: false, reason: Reason.REVOKED_KEY });
    expect(seen.ms).toBeLessThan(CACHE_TTL_MS);
  });

  it("updated on A (scopes, IP deny list), B applies the change well within the cache TTL", async () => {
    const { secret, id } = await mintOn(a);
    const asked = { apiKey: secret, method: "GET", path: "/v1/orders", clientIp: "203.0.113.9" };
    expect((await api(b).tollgate.authorize(asked)).allowed).toBe(true);
    await api(a).keys.updateKey(
      { id, updateMask: create(FieldMaskSchema, { paths: ["scopes"] }), scopes: ["exports:run"] },
      AUTH,
    );
    const scoped = await pollUntil(
      () => api(b).tollgate.authorize(asked),
      (r) => !r.allowed,
      CACHE_TTL_MS + 2000,
      10,
    );
    expect(scoped.value).toMatchObject({
      reason: Reason.INSUFFICIENT_SCOPE,
      httpStatus: 403,
      missingScopes: ["orders:read"],
    });
    expect(scoped.ms).toBeLessThan(CACHE_TTL_MS);
    await api(a).keys.updateKey(
      {
        id,
        updateMask: create(FieldMaskSchema, { paths: ["scopes", "ip_deny"] }),
        scopes: ["orders:read"],
        ipDeny: ["203.0.113.0/24"],
      },
      AUTH,
    );
    const denied = await pollUntil(
      () => api(b).tollgate.authorize(asked),
      (r) => r.reason === Reason.IP_DENIED,
      CACHE_TTL_MS + 2000,
      10,
    );
    expect(denied.value).toMatchObject({ reason: Reason.IP_DENIED, httpStatus: 403 });
    expect(denied.ms).toBeLessThan(CACHE_TTL_MS);
  });

  it("rotated on A, B accepts the new secret and, during the grace period, the old one", async () => {
    const { secret: old, id } = await mintOn(a);
    expect((await api(b).tollgate.authorize({ apiKey: old })).allowed).toBe(true);
    const rotated = await api(a).tollgate.rotateKey(
      { keyId: id, gracePeriod: durationFromMs(60_000) },
      AUTH,
    );
    secrets.push(rotated.secret);
    const viaNew = await api(b).tollgate.authorize({ apiKey: rotated.secret });
    expect(viaNew.identity?.keyId).toBe(id);
    const viaOld = await api(b).tollgate.authorize({ apiKey: old });
    expect(viaOld.allowed).toBe(true);
    // The grace hint reaches B once its cached copy is replaced (invalidation or TTL).
    const { value } = await pollUntil(
      () => api(b).tollgate.authorize({ apiKey: old }),
      (r) => r.hints?.inGracePeriod === true,
      CACHE_TTL_MS + 2000,
    );
    expect(value.hints?.inGracePeriod).toBe(true);
  });

  it("with B's pub/sub connection killed right before the revocation, B refuses within TOLLGATE_CACHE_TTL_MS", async () => {
    const { secret, id } = await mintOn(a);
    expect((await api(b).tollgate.authorize({ apiKey: secret })).allowed).toBe(true);
    const admin = new Redis(redis.url);
    try {
      const victims = await pubsubClientsOfB(admin);
      expect(victims).toHaveLength(1);
      const logLinesBefore = b.logs.length;
      await admin.call("CLIENT", "KILL", "ID", victims[0] ?? "");
      const killedAt = Date.now();
      await api(a).keys.revokeKey({ id, reason: "leaked" }, AUTH);
      const seen = await untilRefusedOnB(secret, CACHE_TTL_MS + 2000);
      // Did B notice? Its re-subscription clears its cache, since messages sent meanwhile are gone.
      const resubscribed = await pollUntil(
        async () =>
          b.logs
            .slice(logLinesBefore)
            .find((l) => String(l.msg).startsWith("invalidation channel re-subscribed")),
        (line) => line !== undefined,
        2000,
      );
      const resubscribedAfterMs =
        resubscribed.value === undefined
          ? "never"
          : `${Date.parse(String(resubscribed.value.time)) - killedAt} ms`;
      console.log(
        `B refused the key revoked on A ${seen.ms} ms after the revocation, its invalidation lost (bound: TOLLGATE_CACHE_TTL_MS=${CACHE_TTL_MS}); B re-subscribed ${resubscribedAfterMs} after its pub/sub connection was killed`,
      );
      expect(seen).toMatchObject({ allowed: false, reason: Reason.REVOKED_KEY });
      // The bound is the cache TTL, plus one lookup round trip on a loaded machine.
      expect(seen.ms).toBeLessThanOrEqual(CACHE_TTL_MS + 250);
      expect(resubscribed.value?.level).toBe("warn");
      // B's subscription comes back, so later revocations are delivered again.
      const back = await pollUntil(
        () => pubsubClientsOfB(admin),
        (ids) => ids.length === 1,
        3000,
        50,
      );
      expect(back.value).toHaveLength(1);
      const next = await mintOn(a);
      expect((await api(b).tollgate.authorize({ apiKey: next.secret })).allowed).toBe(true);
      await api(a).keys.revokeKey({ id: next.id }, AUTH);
      const again = await untilRefusedOnB(next.secret, CACHE_TTL_MS + 2000);
      expect(again.reason).toBe(Reason.REVOKED_KEY);
      expect(again.ms).toBeLessThan(CACHE_TTL_MS);
    } finally {
      admin.disconnect();
    }
  });

  it("keeps secrets out of Redis: only digests are stored", async () => {
    const { secret } = await mintOn(a);
    const admin = new Redis(redis.url);
    try {
      const keys = await admin.keys("*");
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) {
        expect(k).not.toContain(secret);
        const type = await admin.type(k);
        if (type === "string") expect(await admin.get(k)).not.toContain(secret);
        if (type === "hash") expect(JSON.stringify(await admin.hgetall(k))).not.toContain(secret);
      }
    } finally {
      admin.disconnect();
    }
  });
});
