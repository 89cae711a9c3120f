import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyService } from "../gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../gen/tollgate/v1/tollgate_service_pb.js";

/** Where the CLI talks to, and with which management token. */
export interface ClientOptions {
  server?: string;
  tokenFile?: string;
}

/** The management token: --token-file, else $TOLLGATE_MANAGEMENT_TOKEN_FILE, else $TOLLGATE_MANAGEMENT_TOKEN. */
export function readToken(file: string | undefined): string {
  const f = file ?? process.env.TOLLGATE_MANAGEMENT_TOKEN_FILE;
  if (f) return readFileSync(f, "utf8").trim();
  return process.env.TOLLGATE_MANAGEMENT_TOKEN ?? "";
}

/** gRPC clients of a running server, sending the management token when there is one. */
export function createClients(o: ClientOptions) {
  const token = readToken(o.tokenFile);
  const baseUrl = o.server ?? process.env.TOLLGATE_SERVER ?? "http://127.0.0.1:50051";
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [
      (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  return {
    baseUrl,
    keys: createClient(KeyService, transport),
    tollgate: createClient(TollgateService, transport),
  };
}

/** Clients for a command's parsed `--server` and `--token-file` options. */
export function clientsFromOptions(o: Record<string, unknown>) {
  return createClients({
    ...(typeof o.server === "string" && { server: o.server }),
    ...(typeof o["token-file"] === "string" && { tokenFile: o["token-file"] }),
  });
}

/** Prints a failed call as `<label>: <Code>: <message>` (with a hint when nothing answers); returns exit code 1. */
export function reportRpcError(label: string, err: unknown, baseUrl: string): number {
  const ce = ConnectError.from(err);
  const hint = ce.code === Code.Unavailable ? ` (is tollgate serving at ${baseUrl}?)` : "";
  process.stderr.write(`${label}: ${Code[ce.code]}: ${ce.rawMessage}${hint}\n`);
  return 1;
}
