/**
 * Baseline 1a, the gRPC transport ceiling: a bare grpc-js server answering
 * `/tollgate.v1.TollgateService/Authorize` with a fixed AuthorizeResponse
 * (the one Tollgate returned for the bench key, from `--response FILE` as
 * JSON). Requests are parsed and responses serialised with protobuf-es on
 * every call, exactly as Tollgate's grpc-js adapter does, so the only
 * difference left is Tollgate's own work.
 */
import { readFileSync } from "node:fs";
import { fromBinary, fromJsonString, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  AuthorizeRequestSchema,
  type AuthorizeResponse,
  AuthorizeResponseSchema,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { AUTHORIZE_PATH } from "./messages.js";
import { announce, exitOnSignal, serverArgs } from "./server-args.js";

const args = serverArgs();
const response = fromJsonString(AuthorizeResponseSchema, readFileSync(args.response, "utf8"));

const server = new grpc.Server({
  "grpc.max_concurrent_streams": 1000,
  "grpc.http2.max_header_list_size": 65536,
} as grpc.ServerOptions);
const definition: grpc.ServiceDefinition = {
  authorize: {
    path: AUTHORIZE_PATH,
    requestStream: false,
    responseStream: false,
    originalName: "Authorize",
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (m: AuthorizeResponse) => Buffer.from(toBinary(AuthorizeResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(AuthorizeResponseSchema, b),
  },
};
server.addService(definition, {
  authorize: (
    call: grpc.ServerUnaryCall<Buffer, AuthorizeResponse>,
    callback: grpc.sendUnaryData<AuthorizeResponse>,
  ) => {
    const req = fromBinary(AuthorizeRequestSchema, call.request);
    if (req.apiKey === "") {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: "api_key is required" });
      return;
    }
    callback(null, response);
  },
});
server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  announce(port);
});
exitOnSignal(() => server.forceShutdown());
