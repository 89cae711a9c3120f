/**
 * Two Tollgate processes on one Redis: a key revoked through one is refused by
 * the other — at once when the invalidation message arrives, and within
 * TOLLGATE_CACHE_TTL_MS (the documented bound) when that message is lost.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const CACHE_TTL_MS = 1000;
let redis: TestRedis;
let a: TollgateProcess;
let b: TollgateProcess;

beforeAll(async () => {
  redis = await startTestRedis();
  const env = {
    REDIS_URL: redis.url,
    // Its own namespace: a shared REDIS_URL keeps each file's pepper apart.
    TOLLGATE_REDIS_PREFIX: "revocation:",
    TOLLGATE_PEPPER: "two-process-pepper-0123456789",
    TOLLGATE_CACHE_TTL_MS: String(CACHE_TTL_MS),
    TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "500",
    TOLLGATE_LOG_LEVEL: "info",
  };
  [a, b] = await Promise.all([startTollgateProcess(env), startTollgateProcess(env)]);
}, 30_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

const clients = (p: TollgateProcess) => {
  const t = createGrpcTransport({ baseUrl: p.url });
  return { tollgate: createClient(TollgateService, t), keys: createClient(KeyService, t) };
};

/** The two doors a key reaches B through: its secret (Authorize) or its id (CheckRateLimit). */
type Probe = (tollgate: ReturnType<typeof clients>["tollgate"]) => Promise<{
  allowed: boolean;
  reason: Reason;
}>;
const bySecret =
  (secret: string): Probe =>
  (t) =>
    t.authorize({ apiKey: secret });
const byId =
  (id: string): Probe =>
  (t) =>
    t.checkRateLimit({ keyId: id });

/** Polls B until the key is refused; returns the milliseconds it took. */
async function msUntilRefused(probe: Probe, limitMs: number): Promise<number> {
  const start = Date.now();
  const { tollgate } = clients(b);
  for (;;) {
    const r = await probe(tollgate);
    if (!r.allowed) {
      expect(r.reason).toBe(Reason.REVOKED_KEY);
      return Date.now() - start;
    }
    if (Date.now() - start > limitMs) throw new Error(`still allowed after ${limitMs} ms`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe.each([
  ["Authorize by secret", (secret: string, _id: string) => bySecret(secret)],
  ["CheckRateLimit by key id", (_secret: string, id: string) => byId(id)],
])("revocation across replicas: %s", (_door, probeOf) => {
  it("a key created on A is accepted on B; revoked on A, B refuses it at once (pub/sub)", async () => {
    const { secret, key } = await clients(a).keys.createKey({ owner: "acme" });
    const probe = probeOf(secret, key?.id ?? "");
    expect((await probe(clients(b).tollgate)).allowed).toBe(true); // now cached on B
    await clients(a).keys.revokeKey({ id: key?.id ?? "" });
    const ms = await msUntilRefused(probe, CACHE_TTL_MS);
    console.log(`revocation seen by the other process after ${ms} ms (invalidation delivered)`);
    expect(ms).toBeLessThan(CACHE_TTL_MS);
  });

  it("with the invalidation lost, B refuses the revoked key within TOLLGATE_CACHE_TTL_MS", async () => {
    const { secret, key } = await clients(a).keys.createKey({ owner: "acme" });
    const probe = probeOf(secret, key?.id ?? "");
    expect((await probe(clients(b).tollgate)).allowed).toBe(true);
    // A lost invalidation: the record is revoked in Redis with no message at
    // all (as if the publish never arrived), so only the cache TTL can help.
    const admin = new Redis(redis.url);
    try {
      const recordKey = `revocation:key:{${key?.id}}`;
      const rec = JSON.parse((await admin.get(recordKey)) ?? "{}") as Record<string, unknown>;
      rec.status = "revoked";
      rec.version = Number(rec.version) + 1;
      await admin.set(recordKey, JSON.stringify(rec));
    } finally {
      admin.disconnect();
    }
    const ms = await msUntilRefused(probe, CACHE_TTL_MS + 1500);
    console.log(
      `revocation seen by the other process after ${ms} ms (invalidation lost; bound ${CACHE_TTL_MS} ms)`,
    );
    // The bound: cache TTL, plus the time of the lookups themselves.
    expect(ms).toBeLessThanOrEqual(CACHE_TTL_MS + 250);
  });
});
