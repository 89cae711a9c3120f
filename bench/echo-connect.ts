/**
 * Baseline 1b, the Connect transport ceiling: a bare connect-node server over
 * h2c (like Tollgate's HTTP port) answering Authorize with a fixed
 * AuthorizeResponse (from `--response FILE`), over the Connect (JSON or
 * binary), gRPC and gRPC-Web protocols.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { fromJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  AuthorizeResponseSchema,
  TollgateService,
} from "../src/gen/tollgate/v1/tollgate_service_pb.js";
import { announce, exitOnSignal, serverArgs } from "./server-args.js";

const args = serverArgs();
const response = fromJsonString(AuthorizeResponseSchema, readFileSync(args.response, "utf8"));

const handler = connectNodeAdapter({
  routes: (router: ConnectRouter) => {
    router.service(TollgateService, {
      authorize: async (req) => {
        if (req.apiKey === "") throw new ConnectError("api_key is required", Code.InvalidArgument);
        return response;
      },
    });
  },
  connect: true,
  grpc: true,
  grpcWeb: true,
});
const server = createServer(
  { settings: { maxConcurrentStreams: 1000, maxHeaderListSize: 65536 } },
  handler,
);
server.listen(args.port, "127.0.0.1", () => announce((server.address() as AddressInfo).port));
exitOnSignal(() => server.close());
