/**
 * HTTP/1.1 servers for connections handed over by the sniffer, with the
 * bounds Node's http.Server has but does not apply to sockets it did not
 * accept itself: its header timeout (a request head must be complete within
 * the header timeout) and request timeout (head and body within header + body
 * timeouts) are checked by a timer Node starts on 'listening' — which a
 * server that never listens never emits, so this emits it. Requests also
 * count against the shared RequestBudget (refused with 503 beyond it), and
 * every 408 / 431 Node answers is counted by kind.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { RequestBudget } from "./request-budget.js";
import type { PortName, TransportObserver } from "./transport-observer.js";

/** Node's keep-alive timeout: the upper bound of an idle HTTP/1.1 connection, ms. */
export const KEEP_ALIVE_MAX_MS = 5000;

/** Options of a guarded HTTP/1.1 server. */
export interface Http1GuardOptions {
  port: PortName;
  headerTimeoutMs: number;
  bodyTimeoutMs: number;
  idleTimeoutMs: number;
  /** Largest request head, bytes (more: 431). */
  maxHeaderListBytes: number;
  /** Largest request message, bytes: what a request without a length may reserve. */
  maxMessageBytes: number;
  budget: RequestBudget;
  observer: TransportObserver;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const kReserved = Symbol("tollgate.http1.reserved");
const kBudget = Symbol("tollgate.http1.budget");
const kSocket = Symbol("tollgate.http1.socket");
/** On a socket: a request of it is being handled (a timeout then is the body's). */
const kInRequest = Symbol("tollgate.http1.inRequest");
interface GuardedSocket extends Socket {
  [kInRequest]?: boolean;
}
interface GuardedResponse extends ServerResponse {
  [kReserved]: number;
  [kBudget]: RequestBudget;
  [kSocket]: GuardedSocket;
}

/** The answers Node itself gives (its socketOnError), since a 'clientError' listener replaces them. */
const ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n",
  ERR_HTTP_REQUEST_TIMEOUT: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n",
};
const BAD_REQUEST = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
const REFUSED_BODY = '{"code":"unavailable","message":"server busy: too many requests in flight"}';

/** An http.Server for handed-over connections, with its timeouts running and the budget applied. */
export function createGuardedHttp1Server(o: Http1GuardOptions, handler: Handler): Server {
  const budget = o.budget;
  const server = createServer(
    {
      maxHeaderSize: o.maxHeaderListBytes,
      headersTimeout: o.headerTimeoutMs,
      // Node's request timeout runs from the request's first byte.
      requestTimeout: o.headerTimeoutMs + o.bodyTimeoutMs,
      keepAliveTimeout: Math.min(o.idleTimeoutMs, KEEP_ALIVE_MAX_MS),
      connectionsCheckingInterval: Math.min(
        1000,
        Math.max(50, Math.floor(Math.min(o.headerTimeoutMs, o.bodyTimeoutMs) / 4)),
      ),
    },
    (req, res) => {
      if (!budget.hasRoom()) return refuse(res, o, "inflight");
      const reserve = bodyReservation(req, o.maxMessageBytes);
      if (budget.bodyBytes + reserve > budget.maxBodyBytes) return refuse(res, o, "body_budget");
      budget.inflight++;
      budget.bodyBytes += reserve;
      const r = res as GuardedResponse;
      r[kReserved] = reserve;
      r[kBudget] = budget;
      r[kSocket] = req.socket;
      r[kSocket][kInRequest] = true;
      res.on("close", onResponseClose);
      handler(req, res);
    },
  );
  server.on("clientError", (err: NodeJS.ErrnoException, socket: GuardedSocket) => {
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      o.observer.timedOut(o.port, socket[kInRequest] ? "body" : "header");
    } else if (err.code === "HPE_HEADER_OVERFLOW") {
      o.observer.headerListRefused(o.port, "http1");
    }
    const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      socket.write(ANSWERS[err.code ?? ""] ?? BAD_REQUEST);
    }
    socket.destroy(err);
  });
  // Starts Node's connection tracking (headersTimeout, requestTimeout,
  // closeIdleConnections) as listen() would have.
  server.emit("listening");
  return server;
}

function refuse(res: ServerResponse, o: Http1GuardOptions, reason: "inflight" | "body_budget") {
  o.observer.requestRefused(o.port, reason);
  res
    .writeHead(503, {
      "content-type": "application/json",
      "retry-after": "1",
      connection: "close",
    })
    .end(REFUSED_BODY);
}

/**
 * Body bytes a request may come to hold: its content-length (capped at the
 * message bound, over which it is refused anyway), nothing without a body,
 * the message bound when chunked.
 */
function bodyReservation(req: IncomingMessage, maxMessageBytes: number): number {
  const length = req.headers["content-length"];
  if (length !== undefined) return Math.min(Number(length) || 0, maxMessageBytes);
  return req.headers["transfer-encoding"] === undefined ? 0 : maxMessageBytes;
}

/** 'close' of a response (shared by all: `this` is the response). */
function onResponseClose(this: GuardedResponse): void {
  const budget = this[kBudget];
  budget.inflight--;
  budget.bodyBytes -= this[kReserved];
  this[kSocket][kInRequest] = false;
}
