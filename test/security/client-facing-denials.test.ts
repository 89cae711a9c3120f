/**
 * What reaches the end user through Envoy: a client cannot smuggle headers in
 * Tollgate's identity namespace (`x-tollgate-*`) past Check to the
 * application, and a denial body never tells the holder of an old leaked key
 * that it was real (revoked / expired read like unknown / malformed), unless
 * TOLLGATE_DENIAL_DETAIL=detailed. Against the built server, 127.0.0.1 only.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CheckRequest,
  CheckRequestSchema,
  type CheckResponse,
  Authorization as EnvoyAuthorization,
} from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../src/keys/key-format.js";
import { startTollgateProcess } from "../helpers/tollgate-process.js";
import { sleep } from "./support.js";

function checkRequest(headers: Record<string, string>): CheckRequest {
  return create(CheckRequestSchema, {
    attributes: { request: { http: { method: "GET", path: "/v1/orders", headers } } },
  });
}

function body(r: CheckResponse): { error: string; message: string } {
  if (r.httpResponse.case !== "deniedResponse") throw new Error("expected a denial");
  return JSON.parse(r.httpResponse.value.body) as { error: string; message: string };
}

async function start(env: Record<string, string>) {
  const proc = await startTollgateProcess({
    TOLLGATE_ENVOY_IDENTITY_HEADERS: "key-id,owner",
    ...env,
  });
  const t = createGrpcTransport({ baseUrl: proc.url });
  return {
    proc,
    tollgate: createClient(TollgateService, t),
    keys: createClient(KeyService, t),
    envoy: createClient(EnvoyAuthorization, t),
  };
}

/** A malformed, an unknown, an expired and a revoked key. */
async function badKeys(s: Awaited<ReturnType<typeof start>>): Promise<Record<string, string>> {
  const revoked = await s.keys.createKey({ owner: "acme" });
  await s.keys.revokeKey({ id: revoked.key?.id ?? "" });
  const expired = await s.keys.createKey({
    owner: "acme",
    expireTime: timestampFromMs(Date.now() + 300),
  });
  await sleep(400);
  return {
    MALFORMED_KEY: "tg_live_nope",
    UNKNOWN_KEY: generateSecret("live"),
    EXPIRED_KEY: expired.secret,
    REVOKED_KEY: revoked.secret,
  };
}

describe("by default", () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start({});
  }, 30_000);
  afterAll(async () => s?.proc.stop());

  it("removes every x-tollgate-* header the client sent that Tollgate does not set", async () => {
    const { secret, key } = await s.keys.createKey({ owner: "acme" });
    const r = await s.envoy.check(
      checkRequest({
        "x-api-key": secret,
        "x-tollgate-key-id": "spoofed",
        "x-tollgate-environment": "spoofed",
        "X-Tollgate-Tier": "enterprise",
        "x-tollgate-anything": "1",
        "x-other": "kept",
      }),
    );
    expect(r.httpResponse.case).toBe("okResponse");
    if (r.httpResponse.case !== "okResponse") return;
    const ok = r.httpResponse.value;
    expect(ok.headers.map((h) => [h.header?.key, h.header?.value])).toEqual([
      ["x-tollgate-key-id", key?.id],
      ["x-tollgate-owner", "acme"],
    ]);
    expect([...ok.headersToRemove].sort()).toEqual([
      "x-api-key",
      "x-tollgate-anything",
      "x-tollgate-environment",
      "x-tollgate-tier",
    ]);
  });

  it("answers malformed, unknown, expired and revoked keys with one body; the reason stays for the app", async () => {
    const keys = await badKeys(s);
    const bodies = new Set<string>();
    for (const [reason, secret] of Object.entries(keys)) {
      const r = await s.envoy.check(checkRequest({ "x-api-key": secret }));
      const b = body(r);
      expect(b, reason).toEqual({
        ...b,
        error: "invalid_key",
        message: "the API key is not valid",
      });
      bodies.add(`${b.error}|${b.message}`);
      const a = await s.tollgate.authorize({ apiKey: secret });
      expect(a.reason).toBe(Reason[reason as keyof typeof Reason]);
      expect(a.message).toBe("the API key is not valid");
    }
    expect(bodies.size).toBe(1);
    // A missing key still says so: that tells a caller nothing about any key.
    expect(body(await s.envoy.check(checkRequest({}))).error).toBe("missing_key");
    // The log keeps the exact reason.
    const reasons = s.proc.logs.filter((l) => l.access === "Check").map((l) => l.reason);
    expect(reasons).toEqual(expect.arrayContaining(Object.keys(keys)));
  });
});

describe("with TOLLGATE_DENIAL_DETAIL=detailed", () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start({ TOLLGATE_DENIAL_DETAIL: "detailed" });
  }, 30_000);
  afterAll(async () => s?.proc.stop());

  it("tells the exact reason", async () => {
    const keys = await badKeys(s);
    for (const [reason, secret] of Object.entries(keys)) {
      expect(body(await s.envoy.check(checkRequest({ "x-api-key": secret }))).error).toBe(
        reason.toLowerCase(),
      );
    }
  });
});
