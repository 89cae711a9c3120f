/**
 * The requests the benchmark sends, as protobuf-es messages, and their two
 * wire forms: a gRPC frame (1-byte flag + 4-byte big-endian length + the
 * protobuf bytes) and Connect JSON. h2load sends one pre-encoded body per run.
 */
import {
  create,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { CheckRequestSchema } from "../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { RateLimitRequestSchema } from "../src/gen/envoy/service/ratelimit/v3/rls_pb.js";
import {
  AuthorizeRequestSchema,
  CheckRateLimitRequestSchema,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";

/** One RPC the benchmark can load: its URL path and request bodies in both encodings. */
export interface Workload {
  /** Short name used in the table, e.g. "CheckRateLimit". */
  name: string;
  /** `/package.Service/Method`. */
  path: string;
  /** gRPC frame of the request (5-byte prefix + protobuf). */
  grpcBody: Buffer;
  /** Connect JSON body of the request. */
  jsonBody: Buffer;
}

/** The caller's address in every request (limits by IP, Envoy's remote_address). */
export const CLIENT_IP = "10.1.2.3";

/** A gRPC length-prefixed message frame (uncompressed). */
export function grpcFrame(bytes: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

function workload<D extends DescMessage>(
  name: string,
  path: string,
  schema: D,
  init: MessageInitShape<D>,
): Workload {
  const msg = create(schema, init) as MessageShape<D>;
  return {
    name,
    path,
    grpcBody: grpcFrame(toBinary(schema, msg)),
    jsonBody: Buffer.from(toJsonString(schema, msg)),
  };
}

/** The AuthorizeRequest of the echo servers and the Authorize rows. */
export function authorizeInit(
  secret: string,
  applyLimits: boolean,
): MessageInitShape<typeof AuthorizeRequestSchema> {
  return {
    apiKey: secret,
    method: "GET",
    path: "/v1/items/42",
    clientIp: CLIENT_IP,
    requiredScopes: ["items:read"],
    applyLimits,
  };
}

/** Path of the Authorize RPC (also served by the echo servers). */
export const AUTHORIZE_PATH = "/tollgate.v1.TollgateService/Authorize";
/** Path of the CheckRateLimit RPC (also served by the rate-limiter-flexible server). */
export const CHECK_RATE_LIMIT_PATH = "/tollgate.v1.TollgateService/CheckRateLimit";

/**
 * Every Tollgate workload, for a key with `secret` and id `keyId` in tier
 * `bench` (two limits) and a key `oneLimitKeyId` in tier `bench1` (one limit,
 * the like-for-like comparison with rate-limiter-flexible).
 */
export function tollgateWorkloads(
  secret: string,
  keyId: string,
  oneLimitKeyId: string,
): Workload[] {
  return [
    workload(
      "Authorize (cached key)",
      AUTHORIZE_PATH,
      AuthorizeRequestSchema,
      authorizeInit(secret, false),
    ),
    workload("CheckRateLimit (1 limit)", CHECK_RATE_LIMIT_PATH, CheckRateLimitRequestSchema, {
      keyId: oneLimitKeyId,
      endpoint: "items",
    }),
    workload("CheckRateLimit (2 limits)", CHECK_RATE_LIMIT_PATH, CheckRateLimitRequestSchema, {
      keyId,
      endpoint: "items",
    }),
    workload(
      "Authorize (apply_limits)",
      AUTHORIZE_PATH,
      AuthorizeRequestSchema,
      authorizeInit(secret, true),
    ),
    workload("Envoy Check", "/envoy.service.auth.v3.Authorization/Check", CheckRequestSchema, {
      attributes: {
        source: {
          address: {
            address: {
              case: "socketAddress",
              value: { address: CLIENT_IP, portSpecifier: { case: "portValue", value: 40000 } },
            },
          },
        },
        request: {
          http: {
            method: "GET",
            path: "/v1/items/42",
            host: "api.example.com",
            headers: { "x-api-key": secret, "user-agent": "bench" },
          },
        },
      },
    }),
    workload(
      "Envoy ShouldRateLimit",
      "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
      RateLimitRequestSchema,
      {
        domain: "bench",
        descriptors: [
          { entries: [{ key: "remote_address", value: CLIENT_IP }] },
          { entries: [{ key: "tenant", value: "acme" }] },
        ],
      },
    ),
  ];
}

/** CheckRateLimit for a key of tier `bench-batched`: one `sync: batched` limit. */
export function batchedWorkload(keyId: string): Workload {
  return workload(
    "CheckRateLimit (batched limit)",
    CHECK_RATE_LIMIT_PATH,
    CheckRateLimitRequestSchema,
    {
      keyId,
      endpoint: "items",
    },
  );
}

/** The echo servers' request: the same AuthorizeRequest Tollgate gets. */
export function echoWorkload(secret: string): Workload {
  return workload("echo", AUTHORIZE_PATH, AuthorizeRequestSchema, authorizeInit(secret, false));
}

/** The rate-limiter-flexible server's request: the same CheckRateLimitRequest. */
export function rlfWorkload(keyId: string): Workload {
  return workload("rlf", CHECK_RATE_LIMIT_PATH, CheckRateLimitRequestSchema, {
    keyId,
    endpoint: "items",
  });
}
