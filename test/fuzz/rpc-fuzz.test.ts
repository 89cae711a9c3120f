/**
 * Property-based fuzzing of every unary RPC of the built server (TollgateService,
 * KeyService, ext_authz Check, Envoy ShouldRateLimit): random well-typed
 * messages, random bytes and random JSON. The process never crashes, answers
 * only with the codes a caller is meant to see (never INTERNAL / UNKNOWN), and
 * never echoes a secret it was sent. Bounded: a few hundred runs per property.
 */
import { type ClientHttp2Session, connect, constants } from "node:http2";
import { type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authorization } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitService } from "../../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame } from "../security/support.js";
import { messageArb } from "./arbitraries.js";

const TOKEN = "fuzz-management-token-0123456789";

/** gRPC codes a caller may legitimately get for hostile input. */
const EXPECTED_GRPC = new Set([0, 3, 5, 6, 8, 9, 10, 16]);
/** The same, as Connect HTTP statuses. */
const EXPECTED_HTTP = new Set([200, 400, 401, 404, 409, 412, 413, 415, 429]);

interface Rpc {
  path: string;
  input: DescMessage;
}
const RPCS: Rpc[] = [TollgateService, KeyService, Authorization, RateLimitService].flatMap(
  (s: DescService) =>
    s.methods
      .filter((m) => m.methodKind === "unary")
      .map((m) => ({ path: `/${s.typeName}/${m.name}`, input: m.input })),
);

let proc: TollgateProcess;
let session: ClientHttp2Session;
let secrets: string[];

beforeAll(async () => {
  proc = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
    TOLLGATE_LOG_LEVEL: "info",
    TOLLGATE_ACCESS_LOG: "false",
    // Half the calls carry no token: held back up to 1 s each by the guessing
    // delay (tested in test/security/management-guessing.test.ts), they
    // would spend the time budget waiting instead of fuzzing.
    TOLLGATE_MANAGEMENT_FAILURE_DELAY_MAX_MS: "0",
  });
  session = connect(proc.url);
  session.on("error", () => {});
  const keys = createClient(
    KeyService,
    createGrpcTransport({
      baseUrl: proc.url,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${TOKEN}`);
          return next(req);
        },
      ],
    }),
  );
  const a = await keys.createKey({ owner: "fuzz", scopes: ["*"] });
  const b = await keys.createKey({ owner: "fuzz", environment: "test" });
  secrets = [a.secret, b.secret];
}, 60_000);

afterAll(async () => {
  session?.close();
  await proc?.stop();
});

/** One gRPC call on the shared connection. */
function call(
  path: string,
  body: Uint8Array,
  withToken: boolean,
): Promise<{ grpcStatus: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: path,
      "content-type": "application/grpc",
      te: "trailers",
      ...(withToken && { authorization: `Bearer ${TOKEN}` }),
    });
    req.setTimeout(10_000, () => req.close());
    let grpcStatus = -1;
    let text = "";
    const take = (h: Record<string, unknown>) => {
      text += JSON.stringify(h);
      if (h["grpc-status"] !== undefined) grpcStatus = Number(h["grpc-status"]);
    };
    req.on("response", take);
    req.on("trailers", take);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      resolve({ grpcStatus, text: text + Buffer.concat(chunks).toString("latin1") }),
    );
    req.on("error", reject);
    req.end(Buffer.from(body));
  });
}

const rpcArb = fc.constantFrom(...RPCS);

function expectNoSecret(text: string): void {
  for (const s of [...secrets, TOKEN]) {
    expect(text.includes(s)).toBe(false);
    expect(text.includes(encodeURIComponent(s))).toBe(false);
  }
}

describe("every RPC under random input", () => {
  it("answers random well-typed messages with expected codes and never echoes a secret", async () => {
    await fc.assert(
      fc.asyncProperty(
        rpcArb.chain((rpc) =>
          fc.tuple(
            fc.constant(rpc),
            messageArb(rpc.input, { secrets: secrets, maxDepth: 4 }),
            fc.boolean(),
          ),
        ),
        async ([rpc, msg, withToken]) => {
          const bytes = toBinary(rpc.input, msg as never);
          const r = await call(rpc.path, grpcFrame(bytes), withToken);
          expect({ rpc: rpc.path, code: EXPECTED_GRPC.has(r.grpcStatus) }).toEqual({
            rpc: rpc.path,
            code: true,
          });
          expectNoSecret(r.text);
        },
      ),
      { numRuns: 400, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    expect(proc.child.exitCode).toBeNull();
  }, 60_000);

  it("answers random bytes (framed as one gRPC message) with expected codes", async () => {
    await fc.assert(
      fc.asyncProperty(
        rpcArb,
        fc.uint8Array({ maxLength: 256 }),
        fc.boolean(),
        async (rpc, bytes, withToken) => {
          const r = await call(rpc.path, grpcFrame(bytes), withToken);
          expect({ rpc: rpc.path, code: EXPECTED_GRPC.has(r.grpcStatus) }).toEqual({
            rpc: rpc.path,
            code: true,
          });
        },
      ),
      { numRuns: 300 },
    );
    expect(proc.child.exitCode).toBeNull();
  }, 60_000);

  it("survives random bytes that are not even a gRPC frame", async () => {
    await fc.assert(
      fc.asyncProperty(rpcArb, fc.uint8Array({ maxLength: 64 }), async (rpc, bytes) => {
        const r = await call(rpc.path, bytes, false);
        // Whatever the framing error, a gRPC status comes back, never INTERNAL or UNKNOWN.
        expect(r.grpcStatus).toBeGreaterThanOrEqual(0);
        expect([2, 13]).not.toContain(r.grpcStatus);
      }),
      { numRuns: 100 },
    );
    expect(proc.child.exitCode).toBeNull();
  }, 60_000);

  it("answers random JSON over Connect with client-error statuses only", async () => {
    await fc.assert(
      fc.asyncProperty(rpcArb, fc.jsonValue({ maxDepth: 3 }), async (rpc, value) => {
        const res = await fetch(`${proc.url}${rpc.path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify(value),
        });
        const text = await res.text();
        expect({ rpc: rpc.path, status: res.status, ok: EXPECTED_HTTP.has(res.status) }).toEqual({
          rpc: rpc.path,
          status: res.status,
          ok: true,
        });
        expectNoSecret(text);
      }),
      { numRuns: 200 },
    );
    expect(proc.child.exitCode).toBeNull();
  }, 60_000);

  it("answers random binary protobuf over Connect with client-error statuses only", async () => {
    await fc.assert(
      fc.asyncProperty(rpcArb, fc.uint8Array({ maxLength: 128 }), async (rpc, bytes) => {
        const res = await fetch(`${proc.url}${rpc.path}`, {
          method: "POST",
          headers: { "content-type": "application/proto", authorization: `Bearer ${TOKEN}` },
          body: bytes,
        });
        await res.arrayBuffer();
        expect({ rpc: rpc.path, status: res.status, ok: EXPECTED_HTTP.has(res.status) }).toEqual({
          rpc: rpc.path,
          status: res.status,
          ok: true,
        });
      }),
      { numRuns: 100 },
    );
    expect(proc.child.exitCode).toBeNull();
  }, 60_000);
});
