/**
 * Baseline 2, what a user would build instead of Tollgate: a bare grpc-js
 * server whose CheckRateLimit handler calls rate-limiter-flexible's
 * `RateLimiterRedis.consume` (one limit, one Lua EVALSHA) on the same Redis,
 * with ioredis at its defaults, and answers a CheckRateLimitResponse with the
 * remaining points and a `RateLimit` header. Requests and responses go
 * through the protobuf-es serialisers, as in Tollgate.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { Reason } from "../src/gen/tollgate/v1/common_pb.js";
import { LimitBy, LimitKind } from "../src/gen/tollgate/v1/ratelimit_pb.js";
import {
  CheckRateLimitRequestSchema,
  type CheckRateLimitResponse,
  CheckRateLimitResponseSchema,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { CHECK_RATE_LIMIT_PATH } from "./messages.js";
import { announce, exitOnSignal, serverArgs } from "./server-args.js";

const args = serverArgs();
const redis = new Redis(args.redis);
const POINTS = 1_000_000_000;
const limiter = new RateLimiterRedis({
  storeClient: redis,
  keyPrefix: "rlf",
  points: POINTS,
  duration: 1,
});

function respond(allowed: boolean, r: RateLimiterRes): CheckRateLimitResponse {
  const status = {
    name: "per-key",
    by: LimitBy.KEY,
    kind: LimitKind.RATE,
    limit: BigInt(POINTS),
    remaining: BigInt(Math.max(0, r.remainingPoints)),
    reset: durationFromMs(r.msBeforeNext),
    window: durationFromMs(1000),
    exceeded: !allowed,
  };
  return create(CheckRateLimitResponseSchema, {
    allowed,
    reason: allowed ? Reason.OK : Reason.RATE_LIMITED,
    httpStatus: allowed ? 200 : 429,
    result: { allowed, deciding: status, limits: [status] },
    responseHeaders: [
      {
        name: "RateLimit",
        value: `"per-key";r=${Math.max(0, r.remainingPoints)};t=${Math.ceil(r.msBeforeNext / 1000)}`,
      },
    ],
  });
}

const server = new grpc.Server({
  "grpc.max_concurrent_streams": 1000,
  "grpc.http2.max_header_list_size": 65536,
} as grpc.ServerOptions);
const definition: grpc.ServiceDefinition = {
  checkRateLimit: {
    path: CHECK_RATE_LIMIT_PATH,
    requestStream: false,
    responseStream: false,
    originalName: "CheckRateLimit",
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (m: CheckRateLimitResponse) =>
      Buffer.from(toBinary(CheckRateLimitResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(CheckRateLimitResponseSchema, b),
  },
};
server.addService(definition, {
  checkRateLimit: (
    call: grpc.ServerUnaryCall<Buffer, CheckRateLimitResponse>,
    callback: grpc.sendUnaryData<CheckRateLimitResponse>,
  ) => {
    const req = fromBinary(CheckRateLimitRequestSchema, call.request);
    const subject = req.keyId || req.subject;
    if (subject === "") {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "key_id or subject is required" });
      return;
    }
    limiter.consume(subject, req.cost || 1).then(
      (r) => callback(null, respond(true, r)),
      (err: unknown) => {
        if (err instanceof RateLimiterRes) callback(null, respond(false, err));
        else callback({ code: grpc.status.UNAVAILABLE, details: "store unavailable" });
      },
    );
  },
});
server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
exitOnSignal(() => {
  server.forceShutdown();
  redis.disconnect();
});
