/**
 * Every way in reaches the same handlers on the built server: grpc-js over
 * HTTP/2 on the main port (with grpc.health.v1 and reflection), connect-node's
 * Connect / gRPC-Web / gRPC transports on both ports, `curl` with JSON over
 * HTTP/1.1 for every RPC, and `buf curl` over gRPC, gRPC-Web and Connect. The
 * admin port serves health, readiness and metrics without key ids or secrets.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../src/gen/google/rpc/status_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../../src/gen/health/v1/health_pb.js";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import {
  CreateKeyRequestSchema,
  CreateKeyResponseSchema,
  KeyService,
} from "../../src/gen/tollgate/v1/key_service_pb.js";
import {
  AuthorizeRequestSchema,
  AuthorizeResponseSchema,
  TollgateService,
} from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import {
  bufCurl,
  clientsOver,
  curlJson,
  grpcUnary,
  pollUntil,
  transportsOf,
} from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "e2e-transports-token-0123456789";
const BEARER = { authorization: `Bearer ${TOKEN}` };
let server: TollgateProcess;
let grpcAddr: string;
const secrets: string[] = [];
const keyIds: string[] = [];

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
  });
  grpcAddr = `127.0.0.1:${server.port}`;
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  for (const s of [...secrets, TOKEN]) expect(server.output()).not.toContain(s);
});

/** Creates a key over grpc-js and remembers its secret and id. */
async function mintOverGrpc(owner = "acme"): Promise<{ secret: string; id: string }> {
  const res = await grpcUnary(
    grpcAddr,
    KeyService,
    "CreateKey",
    CreateKeyRequestSchema,
    CreateKeyResponseSchema,
    { owner, scopes: ["orders:read"] },
    BEARER,
  );
  secrets.push(res.secret);
  keyIds.push(res.key?.id ?? "");
  return { secret: res.secret, id: res.key?.id ?? "" };
}

describe("grpc-js on the main port (HTTP/2)", () => {
  it("CreateKey with the token, then Authorize with the new key", async () => {
    const { secret, id } = await mintOverGrpc();
    expect(secret).toMatch(/^tg_live_[0-9A-Za-z]{30}$/);
    const res = await grpcUnary(
      grpcAddr,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: secret, method: "GET", path: "/v1/orders/42" },
    );
    expect(res.allowed).toBe(true);
    expect(res.reason).toBe(Reason.OK);
    expect(res.httpStatus).toBe(200);
    expect(res.endpoint).toBe("get-order");
    expect(res.identity?.keyId).toBe(id);
  });

  it("CreateKey without the token is UNAUTHENTICATED", async () => {
    const err = (await grpcUnary(
      grpcAddr,
      KeyService,
      "CreateKey",
      CreateKeyRequestSchema,
      CreateKeyResponseSchema,
      { owner: "acme" },
    ).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(16); // UNAUTHENTICATED
    expect(err.details).toContain("management token");
  });

  it("bad input is INVALID_ARGUMENT with a google.rpc.BadRequest in grpc-status-details-bin", async () => {
    const err = (await grpcUnary(
      grpcAddr,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { path: "no-leading-slash", clientIp: "300.0.0.1" },
    ).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(3); // INVALID_ARGUMENT
    const bin = err.metadata.get("grpc-status-details-bin")[0] as Buffer;
    const status = fromBinary(StatusSchema, bin);
    expect(status.code).toBe(3);
    const bad = status.details[0] && anyUnpack(status.details[0], BadRequestSchema);
    expect(bad?.fieldViolations.map((v) => v.field)).toEqual(["client_ip", "path"]);
  });

  it("grpc.health.v1 Check answers SERVING for the server and each service", async () => {
    for (const service of ["", "tollgate.v1.TollgateService", "tollgate.v1.KeyService"]) {
      const res = await grpcUnary(
        grpcAddr,
        Health,
        "Check",
        HealthCheckRequestSchema,
        HealthCheckResponseSchema,
        { service },
      );
      expect(res.status, service).toBe(HealthCheckResponse_ServingStatus.SERVING);
    }
  });
});

describe("connect-node clients on both ports", () => {
  it("every transport authorizes, enforces the token and returns field violations", async () => {
    const { secret, id } = await mintOverGrpc();
    for (const [name, transport] of Object.entries(transportsOf(server))) {
      const { tollgate, keys } = clientsOver(transport);
      const res = await tollgate.authorize({ apiKey: secret });
      expect(res.allowed, name).toBe(true);
      expect(res.identity?.keyId, name).toBe(id);

      const anon = await keys.getKey({ id }).catch((e: unknown) => ConnectError.from(e));
      expect((anon as ConnectError).code, name).toBe(Code.Unauthenticated);
      const got = await keys.getKey({ id }, { headers: BEARER });
      expect(got.key?.owner, name).toBe("acme");

      const bad = await tollgate
        .authorize({ clientIp: "not-an-ip" })
        .catch((e: unknown) => ConnectError.from(e));
      expect((bad as ConnectError).code, name).toBe(Code.InvalidArgument);
      const fields = (bad as ConnectError)
        .findDetails(BadRequestSchema)
        .flatMap((d) => d.fieldViolations.map((v) => v.field));
      expect(fields, name).toEqual(["client_ip"]);
    }
  });
});

describe("curl with JSON over HTTP/1.1", () => {
  const call = (service: "TollgateService" | "KeyService", rpc: string, body: unknown) =>
    curlJson(`${server.url}/tollgate.v1.${service}/${rpc}`, body, BEARER);

  it("reaches every RPC of TollgateService and KeyService", async () => {
    const created = await call("KeyService", "CreateKey", {
      owner: "curl",
      scopes: ["orders:read"],
      metadata: { via: "curl" },
    });
    expect(created.status).toBe(200);
    const secret = String(created.json.secret);
    const key = created.json.key as { id: string; owner: string };
    secrets.push(secret);
    keyIds.push(key.id);
    expect(key.owner).toBe("curl");

    const results: Record<string, { status: number; json: Record<string, unknown> }> = {
      Authorize: await call("TollgateService", "Authorize", {
        apiKey: secret,
        method: "GET",
        path: "/v1/orders",
      }),
      CheckRateLimit: await call("TollgateService", "CheckRateLimit", {
        keyId: key.id,
        method: "GET",
        path: "/v1/orders",
      }),
      RecordEvent: await call("TollgateService", "RecordEvent", {
        events: [{ id: "curl-evt-1", customType: "login.failed", subject: "user-1" }],
      }),
      GetKey: await call("KeyService", "GetKey", { id: key.id }),
      ListKeys: await call("KeyService", "ListKeys", { owner: "curl" }),
      UpdateKey: await call("KeyService", "UpdateKey", {
        id: key.id,
        updateMask: "tier,metadata",
        tier: "pro",
        metadata: { via: "curl", step: "updated" },
      }),
      GetUsage: await call("KeyService", "GetUsage", { keyId: key.id }),
      ListBlocks: await call("KeyService", "ListBlocks", {}),
      DeleteBlock: await call("KeyService", "DeleteBlock", { subject: "nobody" }),
      ListAlerts: await call("KeyService", "ListAlerts", {}),
      RotateKey: await call("TollgateService", "RotateKey", {
        keyId: key.id,
        gracePeriod: "60s",
      }),
    };
    for (const [rpc, r] of Object.entries(results)) expect(r.status, rpc).toBe(200);
    expect(results.Authorize?.json).toMatchObject({ allowed: true, reason: "REASON_OK" });
    expect(results.CheckRateLimit?.json).toMatchObject({ allowed: true, httpStatus: 200 });
    expect(results.RecordEvent?.json).toEqual({ acceptedIds: ["curl-evt-1"] });
    expect(results.GetKey?.json).toMatchObject({ key: { id: key.id, owner: "curl" } });
    expect(results.ListKeys?.json).toMatchObject({ keys: [{ id: key.id }] });
    expect(results.UpdateKey?.json).toMatchObject({
      key: { tier: "pro", metadata: { via: "curl", step: "updated" } },
    });
    expect(results.GetUsage?.json).toHaveProperty("buckets");
    expect(results.ListBlocks?.json).toEqual({});
    expect(results.DeleteBlock?.json).toEqual({}); // lifted: false is omitted
    expect(results.ListAlerts?.json).toEqual({});
    const rotated = String(results.RotateKey?.json.secret);
    secrets.push(rotated);
    expect(rotated).toMatch(/^tg_live_/);
    expect(rotated).not.toBe(secret);

    // Events are flushed in the background; ListEvents sees this one shortly.
    const { value: events } = await pollUntil(
      () => call("KeyService", "ListEvents", { customType: "login.failed" }),
      (r) => JSON.stringify(r.json).includes("curl-evt-1"),
      3000,
      50,
    );
    expect(events.status).toBe(200);
    expect(JSON.stringify(events.json)).toContain("curl-evt-1");

    const revoked = await call("KeyService", "RevokeKey", { id: key.id, reason: "done" });
    expect(revoked.json).toMatchObject({ key: { status: "KEY_STATUS_REVOKED" } });
    // No answer but Create and Rotate carries a secret.
    for (const [rpc, r] of Object.entries({ ...results, revoked, events })) {
      if (rpc === "RotateKey") continue;
      expect(JSON.stringify(r.json), rpc).not.toContain(secret);
      expect(JSON.stringify(r.json), rpc).not.toContain(rotated);
    }
  });

  it("answers Connect errors as JSON with an HTTP status", async () => {
    const anon = await curlJson(`${server.url}/tollgate.v1.KeyService/ListKeys`, {});
    expect(anon.status).toBe(401);
    expect(anon.json.code).toBe("unauthenticated");
    const bad = await curlJson(`${server.url}/tollgate.v1.TollgateService/Authorize`, {
      cost: 2_000_000,
    });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("invalid_argument");
    expect(String(bad.json.message)).toContain("cost: must be 0..1000000");
    const details = bad.json.details as { type: string }[];
    expect(details[0]?.type).toBe("google.rpc.BadRequest");
  });

  it("also works on the HTTP port", async () => {
    const { secret } = await mintOverGrpc();
    const r = await curlJson(`${server.httpUrl}/tollgate.v1.TollgateService/Authorize`, {
      apiKey: secret,
    });
    expect(r.json).toMatchObject({ allowed: true, reason: "REASON_OK" });
  });
});

describe("buf curl", () => {
  it("lists the services through gRPC reflection on the main port", async () => {
    const r = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-services",
      server.url,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const services = r.stdout.trim().split("\n");
    for (const s of [
      "tollgate.v1.TollgateService",
      "tollgate.v1.KeyService",
      "grpc.health.v1.Health",
    ]) {
      expect(services).toContain(s);
    }
    const methods = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--list-methods",
      server.url,
    ]);
    expect(methods.code, methods.stderr).toBe(0);
    expect(methods.stdout.split("\n").filter((m) => m.startsWith("tollgate.v1."))).toEqual(
      expect.arrayContaining([
        "tollgate.v1.TollgateService/Authorize",
        "tollgate.v1.TollgateService/CheckRateLimit",
        "tollgate.v1.TollgateService/RecordEvent",
        "tollgate.v1.TollgateService/RotateKey",
        "tollgate.v1.KeyService/CreateKey",
        "tollgate.v1.KeyService/RevokeKey",
      ]),
    );
  });

  it("calls Authorize over gRPC (reflection), gRPC-Web and Connect (local schema)", async () => {
    const { secret, id } = await mintOverGrpc();
    const body = JSON.stringify({ apiKey: secret, method: "GET", path: "/v1/orders" });
    const authorize = "tollgate.v1.TollgateService/Authorize";
    const runs: Record<string, string[]> = {
      "grpc, main port": [
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        `${server.url}/${authorize}`,
      ],
      "grpcweb, main port": [
        "--schema",
        "proto",
        "--protocol",
        "grpcweb",
        `${server.url}/${authorize}`,
      ],
      "connect, main port": [
        "--schema",
        "proto",
        "--protocol",
        "connect",
        `${server.url}/${authorize}`,
      ],
      "connect h2c, HTTP port": [
        "--schema",
        "proto",
        "--protocol",
        "connect",
        "--http2-prior-knowledge",
        `${server.httpUrl}/${authorize}`,
      ],
      "grpc h2c, HTTP port": [
        "--schema",
        "proto",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        `${server.httpUrl}/${authorize}`,
      ],
    };
    const results = await Promise.all(
      Object.values(runs).map((args) => bufCurl(["-d", body, ...args])),
    );
    for (const [i, name] of Object.keys(runs).entries()) {
      const r = results[i];
      expect(r?.code, `${name}: ${r?.stderr}`).toBe(0);
      expect(JSON.parse(r?.stdout ?? "{}"), name).toMatchObject({
        allowed: true,
        reason: "REASON_OK",
        endpoint: "list-orders",
        identity: { keyId: id },
      });
    }
  });

  it("calls management RPCs with the token header, and reports UNAUTHENTICATED without it", async () => {
    const url = `${server.url}/tollgate.v1.KeyService/ListKeys`;
    const ok = await bufCurl([
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-H",
      `authorization: Bearer ${TOKEN}`,
      "-d",
      '{"owner":"acme"}',
      url,
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
    const anon = await bufCurl(["--protocol", "grpc", "--http2-prior-knowledge", "-d", "{}", url]);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toContain("unauthenticated");
  });
});

describe("the admin port", () => {
  it("serves /healthz and /readyz", async () => {
    const base = `http://127.0.0.1:${server.adminPort}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("ok\n");
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it("serves /metrics with RPC latency and decisions, never a key id, secret or token", async () => {
    // A key created and used here, so the counters have samples.
    const { secret } = await mintOverGrpc();
    await grpcUnary(
      grpcAddr,
      TollgateService,
      "Authorize",
      AuthorizeRequestSchema,
      AuthorizeResponseSchema,
      { apiKey: secret },
    );
    const res = await fetch(`http://127.0.0.1:${server.adminPort}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    const text = await res.text();
    expect(text).toMatch(/^tollgate_rpc_duration_seconds_bucket\{.*rpc="Authorize",code="ok"/m);
    expect(text).toMatch(/^tollgate_rpc_duration_seconds_count\{rpc="CreateKey",code="ok"\} \d+/m);
    expect(text).toMatch(
      /^tollgate_decisions_total\{rpc="Authorize",decision="allow",reason="OK",tier="free"\} \d+/m,
    );
    expect(keyIds.length).toBeGreaterThan(0);
    for (const id of keyIds) expect(text).not.toContain(id);
    expect(text).not.toMatch(/key_[0-9A-Za-z]{16}/);
    for (const s of secrets) expect(text).not.toContain(s);
    expect(text).not.toContain("tg_live_");
    expect(text).not.toContain(TOKEN);
    // Metrics live on the admin port only, not on the RPC port.
    const onRpcPort = await fetch(`${server.url}/metrics`);
    expect(onRpcPort.status).not.toBe(200);
  });
});
