/**
 * The RPC listeners. One set of handlers, two engines:
 *  - the main port sniffs each connection: HTTP/2 goes to grpc-js (gRPC, the
 *    fast path for Envoy and polyglot clients), HTTP/1.1 to connect-node
 *    (Connect JSON/binary and gRPC-Web, so plain `curl` works; JSON is parsed
 *    strictly, see strict-json.ts);
 *  - the optional HTTP port is connect-node only, over h2c and HTTP/1.1,
 *    speaking Connect, gRPC-Web and gRPC.
 */
import { createServer as createHttp1Server, type Server as Http1Server } from "node:http";
import { createServer as createHttp2Server, type Http2Server } from "node:http2";
import type { AddressInfo, Server as NetServer } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { Health } from "../gen/health/v1/health_pb.js";
import { withCors } from "./cors.js";
import { withDecodeErrorCodes } from "./decode-error-codes.js";
import { toGrpcService } from "./grpc-adapter.js";
import type { HttpRoutes } from "./http-routes.js";
import { createProtocolSniffer } from "./protocol-sniffer.js";
import { reflectionPackage } from "./reflection.js";
import { routeStrictJson } from "./strict-json.js";
import { type TlsFiles, tlsServerOptions, watchTlsFiles } from "./tls-context.js";

/** A service and its implementation. */
export interface ServiceBinding<S extends DescService = DescService> {
  desc: S;
  impl: ServiceImpl<S>;
  /** Keep unknown fields of requests (off by default: less work, less memory). */
  readUnknownFields?: boolean;
}

/** Options of startRpcServers. */
export interface RpcServersOptions {
  services: ServiceBinding[];
  /** Main port address, host:port. */
  addr: string;
  /** Connect-only port address, host:port; empty for none. */
  httpAddr: string;
  /** Largest request message, bytes. */
  maxMessageBytes: number;
  /** TLS 1.3 on both RPC ports (and mTLS when a client CA is given); undefined: plaintext. */
  tls?: TlsFiles;
  /** Called when reloaded certificate files are refused (the old ones stay). */
  onTlsReloadError?: (err: Error) => void;
  /** Called after certificates were reloaded. */
  onTlsReload?: () => void;
  /** Browser origins allowed by CORS; empty: CORS off. */
  corsOrigins?: readonly string[];
  /** Plain-HTTP routes (forward-auth, OpenAPI) ahead of connect-node on the HTTP port; see http-routes.ts. */
  httpRoutes?: HttpRoutes;
}

/** Running listeners. */
export interface RpcServers {
  /** Bound main port. */
  port: number;
  /** Bound HTTP port, or undefined. */
  httpPort?: number;
  /** Sets the gRPC health status of the whole server ("" service). */
  setServing(serving: boolean): void;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then closes everything. */
  close(graceMs: number): Promise<void>;
}

/** Starts the listeners and resolves once both are bound. */
export async function startRpcServers(o: RpcServersOptions): Promise<RpcServers> {
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": o.maxMessageBytes,
    "grpc.max_send_message_length": o.maxMessageBytes,
    "grpc.max_concurrent_streams": 1000,
    "grpc.http2.max_header_list_size": 65536,
  } as grpc.ServerOptions);
  // In-flight calls on every engine, so shutdown can wait for them: grpc-js's
  // tryShutdown does not reliably wait for injected sessions (seen on Node 26),
  // and the HTTP servers never listen themselves (sockets are handed to
  // them), so their close() callbacks say nothing about running requests.
  let inflight = 0;
  let onIdle: (() => void) | undefined;
  const track = {
    start() {
      inflight++;
    },
    end() {
      inflight--;
      if (inflight === 0) onIdle?.();
    },
  };
  const idle = () => (inflight === 0 ? Promise.resolve() : new Promise<void>((r) => (onIdle = r)));
  for (const s of o.services) {
    const { definition, implementation } = toGrpcService(
      s.desc,
      s.impl as ServiceImpl<DescService>,
      s.readUnknownFields,
      track,
    );
    grpcServer.addService(definition, implementation);
  }
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  for (const s of o.services) health.setStatus(s.desc.typeName, "NOT_SERVING");
  health.addToServer(grpcServer);
  // Reflection describes our services and grpc.health.v1, so `buf curl` and
  // `grpcurl` need no local schema for either.
  const reflected = reflectionPackage([...o.services.map((s) => s.desc), Health]);
  new ReflectionService(reflected as never).addToServer(grpcServer);
  const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  const connectHandler = withCors(
    o.corsOrigins ?? [],
    withDecodeErrorCodes(
      connectNodeAdapter({
        routes: (router: ConnectRouter) => {
          // Strict JSON: unknown fields and enum values are INVALID_ARGUMENT.
          for (const s of o.services) routeStrictJson(router, s.desc, s.impl);
        },
        readMaxBytes: o.maxMessageBytes,
        connect: true,
        grpcWeb: true,
        grpc: true,
      }),
    ),
  );

  const tracked: typeof connectHandler = (req, res) => {
    track.start();
    res.once("close", () => track.end());
    connectHandler(req, res);
  };
  const mainHttp1 = createHttp1Server({ maxHeaderSize: 65536 }, tracked);
  const tlsServers: TlsServer[] = [];
  // With TLS, ALPN says the protocol; without, the first bytes do.
  const front = (http2: (s: Duplex) => void, http1: (s: Duplex) => void): NetServer => {
    if (!o.tls) return createProtocolSniffer(http2, http1);
    const server = createTlsServer(tlsServerOptions(o.tls), (socket) => {
      (socket.alpnProtocol === "h2" ? http2 : http1)(socket);
    });
    tlsServers.push(server);
    return server;
  };
  // Connections handed to grpc-js: after GOAWAY a client finishes its streams
  // and closes, so their closing — not grpc-js's tryShutdown, which on Node 26
  // returns while a request is still being received — says the drain is done.
  const grpcSockets = new Set<Duplex>();
  const grpcClosed = () =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (grpcSockets.size === 0) resolve();
      };
      for (const sock of grpcSockets) sock.once("close", check);
      check();
    });
  const main = front(
    (socket) => {
      grpcSockets.add(socket);
      socket.once("close", () => grpcSockets.delete(socket));
      injector.injectConnection(socket);
    },
    (socket) => mainHttp1.emit("connection", socket),
  );
  const port = await listen(main, o.addr);

  let http: { net: NetServer; h1: Http1Server; h2: Http2Server } | undefined;
  let httpPort: number | undefined;
  if (o.httpAddr !== "") {
    const onHttp = (o.httpRoutes?.(tracked, track) ?? tracked) as typeof tracked;
    const h1 = createHttp1Server({ maxHeaderSize: 65536 }, onHttp);
    const h2 = createHttp2Server(
      { settings: { maxConcurrentStreams: 1000, maxHeaderListSize: 65536 } },
      onHttp,
    );
    const net = front(
      (socket) => h2.emit("connection", socket),
      (socket) => h1.emit("connection", socket),
    );
    httpPort = await listen(net, o.httpAddr);
    http = { net, h1, h2 };
  }

  const stopWatching = o.tls
    ? watchTlsFiles(
        o.tls,
        () => {
          for (const t of tlsServers) t.setSecureContext(tlsServerOptions(o.tls as TlsFiles));
          o.onTlsReload?.();
        },
        (err) => o.onTlsReloadError?.(err),
      )
    : () => {};

  const setServing = (serving: boolean) => {
    const status = serving ? "SERVING" : "NOT_SERVING";
    health.setStatus("", status);
    for (const s of o.services) health.setStatus(s.desc.typeName, status);
  };

  return {
    port,
    ...(httpPort !== undefined && { httpPort }),
    setServing,
    async close(graceMs: number) {
      stopWatching();
      main.close();
      http?.net.close();
      // Keep-alive connections get "Connection: close" on their next response.
      for (const h of [mainHttp1, http?.h1]) h?.closeIdleConnections();
      const drained = Promise.all([
        new Promise<void>((r) => grpcServer.tryShutdown(() => r())),
        idle(),
        grpcClosed(),
      ]);
      injector.drain(graceMs);
      const timer = new Promise<void>((r) => setTimeout(r, graceMs).unref());
      await Promise.race([drained, timer]);
      injector.destroy();
      grpcServer.forceShutdown();
      mainHttp1.closeAllConnections();
      http?.h1.closeAllConnections();
      http?.h2.close();
    },
  };
}

/** Listens on host:port (IPv6 hosts in brackets); resolves to the bound port. */
export function listen(server: NetServer, addr: string): Promise<number> {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  const port = Number(addr.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
