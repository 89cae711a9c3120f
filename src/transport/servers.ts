/**
 * The RPC listeners. One set of handlers, two engines:
 *  - the main port sniffs each connection: HTTP/2 goes to grpc-js's HTTP/2
 *    server (gRPC, the fast path for Envoy and polyglot clients), where our
 *    uncompressed unary calls are answered directly (grpc-direct.ts) and
 *    grpc-js serves the rest; HTTP/1.1 goes to connect-node
 *    (Connect JSON/binary and gRPC-Web, so plain `curl` works; JSON is parsed
 *    strictly, see strict-json.ts);
 *  - the optional HTTP port is connect-node only, over h2c and HTTP/1.1,
 *    speaking Connect, gRPC-Web and gRPC.
 *
 * Each port is a plain TCP listener that admits the connection (the cap),
 * then hands it over — by its first bytes, or by ALPN after TLS — to an
 * engine that never listens itself. The bounds Node and grpc-js would apply to
 * connections they accept are applied by the guards instead (see
 * transport-limits.ts and docs/security-bounds.md).
 */
import type { Server as Http1Server } from "node:http";
import { createServer as createHttp2Server, type Http2Server } from "node:http2";
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from "node:net";
import type { Duplex } from "node:stream";
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { Health } from "../gen/health/v1/health_pb.js";
import type { Handlers } from "../services/call-context.js";
import { createConnectDirect } from "./connect-direct.js";
import { ConnectionGuard } from "./connection-guard.js";
import { withCors } from "./cors.js";
import { withDecodeErrorCodes } from "./decode-error-codes.js";
import { toGrpcService } from "./grpc-adapter.js";
import { type DirectUnaryMethod, serveUnaryDirectly } from "./grpc-direct.js";
import { createGuardableInjector } from "./grpc-injector.js";
import { withReadableGrpcPortRefusal } from "./grpc-port-refusal.js";
import { withReadableRefusals } from "./http-fallback.js";
import type { HttpRoutes } from "./http-routes.js";
import { createGuardedHttp1Server } from "./http1-guard.js";
import { Http2Guard, SESSION_MEMORY_MB } from "./http2-guard.js";
import { createProtocolSniffer } from "./protocol-sniffer.js";
import { reflectionPackage } from "./reflection.js";
import { RequestBudget } from "./request-budget.js";
import { routeStrictJson } from "./strict-json.js";
import { type TlsFiles, tlsServerOptions, watchTlsFiles } from "./tls-context.js";
import { connectionCap, type TransportLimits } from "./transport-limits.js";
import {
  type PortName,
  silentTransportObserver,
  type TransportObserver,
} from "./transport-observer.js";

/** A service and its implementation. */
export interface ServiceBinding<S extends DescService = DescService> {
  desc: S;
  impl: Handlers<S>;
  /** Keep unknown fields of requests (off by default: less work, less memory). */
  readUnknownFields?: boolean;
}

/**
 * Binds a service to its implementation, checked against each other at the
 * call site, for the untyped list startRpcServers takes.
 */
export function bindService<S extends DescService>(
  desc: S,
  impl: Handlers<S>,
  options: { readUnknownFields?: boolean } = {},
): ServiceBinding {
  // Typed by S first, so a mismatched implementation fails here, not at runtime.
  const binding: ServiceBinding<S> = { desc, impl, ...options };
  return binding;
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
  /** Bounds of connections and requests on both ports (transportLimitsFromSettings). */
  limits: TransportLimits;
  /** Told of refusals, cut-offs and timeouts (metrics, log); default: nothing reported. */
  observer?: TransportObserver;
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
  const limits = o.limits;
  const observer = o.observer ?? silentTransportObserver;
  const cap = connectionCap(limits.maxConnections);
  if (cap.loweredForFileLimit !== undefined) {
    observer.connectionCapLowered(limits.maxConnections, cap.max, cap.loweredForFileLimit);
  }
  const connections = new ConnectionGuard({ maxConnections: cap.max, observer });
  const budget = new RequestBudget(limits.maxInflightRequests, limits.maxInflightBodyBytes);
  observer.watchBudget(() => budget);
  // Bidi RPCs (RLQS): one request body for the life of the call.
  const requestStreamPaths = new Set(
    o.services.flatMap((s) =>
      s.desc.methods
        .filter((m) => m.methodKind === "bidi_streaming" || m.methodKind === "client_streaming")
        .map((m) => `/${s.desc.typeName}/${m.name}`),
    ),
  );
  const http2Guard = new Http2Guard({ ...limits, requestStreamPaths, budget, observer });
  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": o.maxMessageBytes,
    "grpc.max_send_message_length": o.maxMessageBytes,
    "grpc.max_concurrent_streams": limits.maxStreamsPerConnection,
    // grpc-js turns Node's per-session memory bound off unless given one.
    "grpc-node.max_session_memory": SESSION_MEMORY_MB,
  } as grpc.ServerOptions);
  // In-flight calls on every engine, so shutdown can wait for them: grpc-js's
  // tryShutdown does not reliably wait for injected sessions (seen on Node 26),
  // and the HTTP servers never listen themselves (sockets are handed to
  // them), so their close() callbacks say nothing about running requests.
  let inflight = 0;
  let onIdle: (() => void) | undefined;
  // Aborted when close() begins: bidi streams (RLQS) end OK instead of
  // holding the drain until its grace runs out.
  const closing = new AbortController();
  const track = {
    closing: closing.signal,
    start() {
      inflight++;
    },
    end() {
      inflight--;
      if (inflight === 0) onIdle?.();
    },
  };
  const idle = () => (inflight === 0 ? Promise.resolve() : new Promise<void>((r) => (onIdle = r)));
  const direct = new Map<string, DirectUnaryMethod>();
  for (const s of o.services) {
    const service = toGrpcService(s.desc, s.impl, s.readUnknownFields, track);
    grpcServer.addService(service.definition, service.implementation);
    for (const [path, m] of service.direct) direct.set(path, m);
  }
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  for (const s of o.services) health.setStatus(s.desc.typeName, "NOT_SERVING");
  health.addToServer(grpcServer);
  // Reflection describes our services and grpc.health.v1, so `buf curl` and
  // `grpcurl` need no local schema for either.
  const reflected = reflectionPackage([...o.services.map((s) => s.desc), Health]);
  new ReflectionService(reflected as never).addToServer(grpcServer);
  const { injector, http2Server: grpcHttp2 } = createGuardableInjector(grpcServer);
  // Our unary calls are answered on the HTTP/2 stream itself; grpc-js keeps the rest.
  serveUnaryDirectly(grpcHttp2, direct, { maxMessageBytes: o.maxMessageBytes, track });
  withReadableGrpcPortRefusal(grpcHttp2);
  http2Guard.attach(grpcHttp2, "main");

  const connectNode = withReadableRefusals(
    o.services.map((s) => s.desc),
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
  // Plain Connect JSON unary calls are answered directly (connect-direct.ts);
  // connect-node serves everything else. Both inside CORS.
  const connectDirect = createConnectDirect(o.services, o.maxMessageBytes);
  const connectHandler = withCors(o.corsOrigins ?? [], (req, res) => {
    if (!connectDirect(req, res)) connectNode(req, res);
  });

  // Counts connect-node calls for the shutdown drain; one shared listener, no
  // closure per request.
  const trackEnd = () => track.end();
  const tracked: typeof connectHandler = (req, res) => {
    track.start();
    res.on("close", trackEnd);
    connectHandler(req, res);
  };
  const http1Server = (port: PortName, handler: typeof tracked = tracked) =>
    createGuardedHttp1Server(
      { port, ...limits, maxMessageBytes: o.maxMessageBytes, budget, observer },
      handler,
    );
  const mainHttp1 = http1Server("main");
  const tlsServers: TlsServer[] = [];
  // Every connection is admitted (or refused at the cap) first; then, with
  // TLS, ALPN says the protocol, and without it the first bytes do.
  const front = (
    port: PortName,
    http2: (s: Duplex) => void,
    http1: (s: Duplex) => void,
  ): NetServer => {
    let handle: (socket: Socket) => void;
    if (!o.tls) {
      handle = createProtocolSniffer(http2, http1, limits.headerTimeoutMs, () =>
        observer.timedOut(port, "header"),
      );
    } else {
      const tls = createTlsServer(
        { ...tlsServerOptions(o.tls), handshakeTimeout: limits.headerTimeoutMs },
        (socket: TLSSocket) => (socket.alpnProtocol === "h2" ? http2 : http1)(socket),
      );
      // Node leaves a socket whose handshake failed or timed out open.
      tls.on("tlsClientError", (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        if (err.code === "ERR_TLS_HANDSHAKE_TIMEOUT") observer.timedOut(port, "header");
        socket.destroy();
      });
      tlsServers.push(tls);
      handle = (socket) => tls.emit("connection", socket);
    }
    return createNetServer((socket) => {
      if (connections.admit(socket, port)) handle(socket);
    });
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
    "main",
    (socket) => {
      grpcSockets.add(socket);
      socket.once("close", () => grpcSockets.delete(socket));
      http2Guard.handOver(socket, (s) => injector.injectConnection(s as Socket));
    },
    (socket) => mainHttp1.emit("connection", socket),
  );
  const port = await listen(main, o.addr);

  let http: { net: NetServer; h1: Http1Server; h2: Http2Server } | undefined;
  let httpPort: number | undefined;
  if (o.httpAddr !== "") {
    const onHttp = (o.httpRoutes?.(tracked, track) ?? tracked) as typeof tracked;
    const h1 = http1Server("http", onHttp);
    const h2 = createHttp2Server({ maxSessionMemory: SESSION_MEMORY_MB }, onHttp);
    http2Guard.attach(h2, "http");
    const net = front(
      "http",
      (socket) => http2Guard.handOver(socket, (s) => h2.emit("connection", s)),
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
      closing.abort();
      stopWatching();
      main.close();
      http?.net.close();
      // Idle keep-alive connections close now; busy ones get "Connection:
      // close" on their next response. HTTP/2 sessions get GOAWAY: running
      // streams finish, new ones are refused.
      for (const h of [mainHttp1, http?.h1]) h?.closeIdleConnections();
      http2Guard.closeSessions();
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
      // Whatever is still open — a client that never closed after GOAWAY, a
      // half-sent request — is destroyed: no descriptor outlives close().
      connections.destroyAll();
      http2Guard.stop();
      for (const h of [mainHttp1, http?.h1]) h?.close();
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
