/**
 * grpc-js's connection injector, together with the node:http2 server behind
 * it. grpc-js serves injected connections on an Http2Server of its own that it
 * does not expose, and sets none of the header-list, idle or rapid-reset
 * bounds on it (its `grpc.http2.max_header_list_size` is a client option, and
 * it switches Node's per-session memory bound off unless
 * `grpc-node.max_session_memory` is given); the HTTP/2 guard needs that server
 * to apply them. It is found in grpc-js's private `http2Servers` map — checked
 * here at startup, so a grpc-js upgrade that changes this fails loudly
 * instead of serving unguarded.
 */
import type { Http2Server } from "node:http2";
import * as grpc from "@grpc/grpc-js";

/** An injector and the HTTP/2 server its connections land on. */
export interface GuardableInjector {
  injector: grpc.ConnectionInjector;
  http2Server: Http2Server;
}

/** Creates a plaintext connection injector on `server` and finds its HTTP/2 server. */
export function createGuardableInjector(server: grpc.Server): GuardableInjector {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) {
    throw new Error("grpc-js internals changed: Server.http2Servers is gone; cannot guard gRPC");
  }
  const before = new Set(servers.keys());
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const created = [...servers.keys()].filter((s) => !before.has(s));
  if (created.length !== 1 || typeof (created[0] as Http2Server).updateSettings !== "function") {
    throw new Error(
      "grpc-js internals changed: no HTTP/2 server behind the injector; cannot guard gRPC",
    );
  }
  return { injector, http2Server: created[0] as Http2Server };
}
