/**
 * Cache poisoning (issue "Hardening", point 7): unknown keys must never push
 * valid keys out of the key cache. With a small cache, 20 valid keys are
 * authorized (so cached), then 20 000 distinct unknown keys — 20 × the cache —
 * are presented; then Redis goes away and the endpoint fails open. Every valid
 * key must still be allowed, decided locally from its cached copy: if the flood
 * had evicted them, fail-open would have turned into fail-closed for exactly
 * the callers it exists for. Built server, its own redis-server, 127.0.0.1.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeRequestSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { flood } from "./flood.js";
import { sleep } from "./support.js";

const TOKEN = "cache-poisoning-management-token";
/** Found keys the cache holds. */
const CACHE = 1000;
const VALID = 20;
const UNKNOWN = 20 * CACHE;
/** Fresh-cache TTL: past it, a lookup needs Redis, so the outage decides. */
const TTL_MS = 300;

let redis: TestRedis;
let proc: TollgateProcess;
let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
const secrets: string[] = [];

beforeAll(async () => {
  redis = await spawnRedis();
  proc = await startTollgateProcess({
    REDIS_URL: redis.url,
    TOLLGATE_PEPPER: "cache-poisoning-pepper-0123456789",
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_FAIL_MODE: "open",
    TOLLGATE_CACHE_MAX_ENTRIES: String(CACHE),
    TOLLGATE_CACHE_TTL_MS: String(TTL_MS),
    TOLLGATE_ACCESS_LOG: "false",
    TOLLGATE_LOG_LEVEL: "info",
  });
  const transport = createGrpcTransport({ baseUrl: proc.url });
  tollgate = createClient(TollgateService, transport);
  const keys = createClient(KeyService, transport);
  for (let i = 0; i < VALID; i++) {
    const k = await keys.createKey(
      { owner: `tenant-${i}` },
      { headers: { authorization: `Bearer ${TOKEN}` } },
    );
    secrets.push(k.secret);
  }
}, 60_000);

afterAll(async () => {
  await proc?.stop("SIGKILL");
  await redis?.stop();
});

const authorize = (apiKey: string) => tollgate.authorize({ apiKey, method: "GET", path: "/v1/x" });

describe("unknown keys never evict valid keys from the key cache", () => {
  it(`keeps ${VALID} valid keys working through a Redis outage (fail open) after ${UNKNOWN} unknown keys`, async () => {
    // Cached, and allowed by Redis.
    for (const s of secrets) expect((await authorize(s)).allowed).toBe(true);

    const r = await flood(
      proc.url,
      "/tollgate.v1.TollgateService/Authorize",
      UNKNOWN,
      () =>
        toBinary(
          AuthorizeRequestSchema,
          create(AuthorizeRequestSchema, { apiKey: generateSecret("live"), path: "/v1/x" }),
        ),
      { timeoutMs: 60_000 },
    );
    expect(r.timedOut).toBe(false);
    expect(r.statuses.get(0)).toBe(UNKNOWN);

    // Redis goes away; past the fresh TTL every lookup needs it and fails.
    redis.process?.kill("SIGKILL");
    await sleep(TTL_MS * 2);

    const during = await Promise.all(secrets.map(authorize));
    const allowed = during.filter((d) => d.allowed && d.decidedLocally).length;
    console.log(`valid keys allowed during the outage: ${allowed} of ${VALID}`);
    for (const d of during) {
      expect(d.reason).toBe(Reason.OK);
      expect(d.decidedLocally).toBe(true);
    }
    // An unknown key is still never guessed to be valid.
    const unknown = await authorize(generateSecret("live"));
    expect(unknown.allowed).toBe(false);
    expect(unknown.reason).toBe(Reason.UNKNOWN_KEY);
  }, 120_000);
});
