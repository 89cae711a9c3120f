/**
 * Unary gRPC straight on node:http2: the main port's hot path. grpc-js serves
 * each call through an intercepting-call object, a Metadata copy of the
 * headers, a stream decoder, a promise chain and channelz tracking — about a
 * third of a cached Authorize's CPU (docs/performance.md, with the profile).
 * Here a unary call of one of our services is read, decoded, run and
 * answered on the HTTP/2 stream itself: one body buffer, the headers object
 * Node already built, one frame written, constant response headers.
 *
 * Only what this path knows how to serve exactly is taken: POST, content-type
 * `application/grpc` or `application/grpc+proto`, no message compression
 * (`grpc-encoding` absent or identity). Everything else — compressed
 * requests, other methods, health, reflection, streams, wrong content types —
 * goes to grpc-js as before, so its answers there are unchanged. Answers
 * here follow grpc-js's for the same input (status codes, the same
 * messages, trailers-only errors, `encodeURI`d grpc-message, deadline
 * handling, response headers), so a client sees the same answers.
 */
import type {
  Http2Server,
  IncomingHttpHeaders,
  OutgoingHttpHeaders,
  ServerHttp2Stream,
} from "node:http2";
import type { CallContext } from "../services/call-context.js";

/** One unary method, as this path runs it. */
export interface DirectUnaryMethod {
  /** Decodes the request message; throws on bytes that are not one. */
  decode(bytes: Uint8Array): unknown;
  /** The handler. */
  call(request: unknown, ctx: CallContext): Promise<unknown>;
  /** The response as a whole gRPC message frame (prefix + bytes). */
  frame(response: unknown): Buffer;
  /** A thrown error as a gRPC status and its extra trailers (grpc-status-details-bin). */
  status(err: unknown): { code: number; message: string; trailers?: OutgoingHttpHeaders };
}

/** Options of serveUnaryDirectly. */
export interface DirectOptions {
  /** Largest request and response message, bytes (grpc-js's max receive/send lengths). */
  maxMessageBytes: number;
  /** Told when a call starts running and when it is answered (the shutdown drain). */
  track: { start(): void; end(): void };
}

type StreamListener = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

const OK = 0;
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const INVALID_ARGUMENT = 3;

/** grpc-js's response headers (its defaults, with the compressions it accepts). */
const RESPONSE_HEADERS: OutgoingHttpHeaders = {
  ":status": 200,
  "content-type": "application/grpc+proto",
  "grpc-accept-encoding": "identity,deflate,gzip",
  "grpc-encoding": "identity",
};
const OK_TRAILERS: OutgoingHttpHeaders = { "grpc-status": String(OK), "grpc-message": "OK" };
/** grpc-timeout as grpc-js parses it (gRPC spec: up to 8 digits and a unit). */
const TIMEOUT = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};
/** Request headers grpc-js keeps out of the metadata a handler sees. */
const NOT_METADATA = new Set([
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "accept-encoding",
  "te",
  "content-type",
]);

const kCall = Symbol("tollgate.grpc.direct");

/** One call in progress; kept on its stream so the listeners are shared functions. */
class DirectCall {
  /** Body received so far: none, one chunk (the usual case), or several. */
  body: Buffer | Buffer[] | undefined;
  received = 0;
  answered = false;
  deadline = Number.POSITIVE_INFINITY;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController | undefined;

  constructor(
    readonly stream: ServerHttp2Stream,
    readonly headers: IncomingHttpHeaders,
    readonly method: DirectUnaryMethod,
    readonly o: DirectOptions,
  ) {}

  /** The request bytes, once the body ended. */
  bytes(): Buffer {
    const b = this.body;
    if (b === undefined) return Buffer.alloc(0);
    return Array.isArray(b) ? Buffer.concat(b, this.received) : b;
  }
}

interface DirectStream extends ServerHttp2Stream {
  [kCall]: DirectCall;
}

/**
 * Puts the direct path in front of grpc-js on `server` (the HTTP/2 server of
 * grpc-js's connection injector): streams for `methods` (by `:path`) that
 * this path can serve are answered here; every other stream goes to grpc-js's
 * own listener. Call before anything else wraps the server's 'stream'
 * listeners (the 415 hook, the HTTP/2 guard).
 */
export function serveUnaryDirectly(
  server: Http2Server,
  methods: ReadonlyMap<string, DirectUnaryMethod>,
  o: DirectOptions,
): void {
  const engines = server.listeners("stream") as StreamListener[];
  if (engines.length !== 1) {
    throw new Error(
      `grpc direct path: expected grpc-js's one 'stream' listener, found ${engines.length}`,
    );
  }
  const grpcJs = engines[0] as StreamListener;
  server.removeAllListeners("stream");
  server.on("stream", ((stream, headers, flags, raw) => {
    const method = servable(headers) ? methods.get(headers[":path"] as string) : undefined;
    if (method === undefined) {
      grpcJs.call(server, stream, headers, flags, raw);
      return;
    }
    start(stream, headers, method, o);
  }) satisfies StreamListener);
}

/** Whether this path serves a stream with these headers (else grpc-js does). */
function servable(h: IncomingHttpHeaders): boolean {
  if (h[":method"] !== "POST") return false;
  const ct = h["content-type"];
  if (ct !== "application/grpc" && ct !== "application/grpc+proto") return false;
  const enc = h["grpc-encoding"];
  return enc === undefined || enc === "identity";
}

function start(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  method: DirectUnaryMethod,
  o: DirectOptions,
): void {
  // A reset stream emits 'error'; its 'close' is what matters (see signal).
  stream.on("error", ignore);
  const call = new DirectCall(stream, headers, method, o);
  (stream as DirectStream)[kCall] = call;
  const timeout = headers["grpc-timeout"];
  if (timeout !== undefined) {
    const m = TIMEOUT.exec(String(timeout));
    if (m === null) {
      // grpc-js answers this before reading the request.
      process.nextTick(
        answerStatus,
        call,
        INTERNAL,
        `Invalid grpc-timeout value "${String(timeout)}"`,
        undefined,
      );
    } else {
      const ms = (Number(m[1]) * (UNIT_MS[m[2] as string] as number)) | 0;
      call.deadline = Date.now() + ms;
      call.timer = setTimeout(deadlineExceeded, ms, call);
    }
  }
  stream.on("data", onData);
  stream.on("end", onEnd);
}

/** 'data': collects the body; refuses a frame over the bound or a second message at once. */
function onData(this: DirectStream, chunk: Buffer): void {
  const call = this[kCall];
  if (call.answered) return;
  const b = call.body;
  if (b === undefined) call.body = chunk;
  else if (Array.isArray(b)) b.push(chunk);
  else call.body = [b, chunk];
  call.received += chunk.length;
  if (call.received < 5) return;
  const len = messageLength(call);
  if (len > call.o.maxMessageBytes) {
    answerStatus(
      call,
      RESOURCE_EXHAUSTED,
      `Received message larger than max (${len} vs ${call.o.maxMessageBytes})`,
    );
  } else if (call.received > 5 + len) {
    answerStatus(
      call,
      UNIMPLEMENTED,
      `Received a second request message for unary method ${call.headers[":path"]}`,
    );
  }
}

/** The length in the first frame's prefix (at least 5 bytes received). */
function messageLength(call: DirectCall): number {
  const b = call.body as Buffer | Buffer[];
  if (!Array.isArray(b)) return b.readUInt32BE(1);
  const head = Buffer.concat(b, 5);
  return head.readUInt32BE(1);
}

/** 'end': the request is complete; decode it and run the handler. */
function onEnd(this: DirectStream): void {
  const call = this[kCall];
  if (call.answered) return;
  const bytes = call.bytes();
  if (bytes.length < 5 || bytes.length < 5 + bytes.readUInt32BE(1)) {
    answerStatus(
      call,
      UNIMPLEMENTED,
      `Received no request message for unary method ${call.headers[":path"]}`,
    );
    return;
  }
  if (bytes[0] !== 0) {
    answerStatus(
      call,
      INTERNAL,
      'Received compressed message but "grpc-encoding" header was identity',
    );
    return;
  }
  let request: unknown;
  try {
    request = call.method.decode(bytes.subarray(5));
  } catch {
    answerStatus(call, INVALID_ARGUMENT, "request is not a valid protobuf message");
    return;
  }
  // The drain tracks the handler, not the answer: past the deadline or a
  // cancel the answer is out but the handler's work (a Redis write) is not
  // done, and shutdown waits for it as it does on grpc-js's path.
  call.o.track.start();
  let result: Promise<unknown>;
  try {
    result = call.method.call(request, new DirectContext(call));
  } catch (err) {
    result = Promise.reject(err);
  }
  result.then(
    (res) => {
      try {
        answerMessage(call, res);
      } finally {
        call.o.track.end();
      }
    },
    (err: unknown) => {
      try {
        const s = statusOf(call.method, err);
        answerStatus(call, s.code, s.message, s.trailers);
      } finally {
        call.o.track.end();
      }
    },
  );
}

/**
 * The status of a handler's error; INTERNAL "internal error" when mapping it
 * throws (a ConnectError detail that cannot be encoded): the call is still
 * answered, and no rejection goes unhandled (Node ends the process on one).
 */
function statusOf(
  method: DirectUnaryMethod,
  err: unknown,
): ReturnType<DirectUnaryMethod["status"]> {
  try {
    return method.status(err);
  } catch {
    return { code: INTERNAL, message: "internal error" };
  }
}

/**
 * The handler's view of the call: headers without a copy, the signal only
 * when asked for. A class, not an object literal with a getter and closures:
 * that literal was 1 % of a cached Authorize's CPU (a getter makes V8 define
 * the property the slow way on every call).
 */
class DirectContext implements CallContext {
  readonly requestHeader: DirectHeaders;

  constructor(private readonly call: DirectCall) {
    this.requestHeader = new DirectHeaders(call.headers);
  }

  get signal(): AbortSignal {
    const call = this.call;
    if (call.abort === undefined) {
      const abort = new AbortController();
      call.abort = abort;
      if (call.stream.closed || call.stream.destroyed) abort.abort();
      else call.stream.once("close", onClose);
    }
    return call.abort.signal;
  }

  timeoutMs(): number | undefined {
    const deadline = this.call.deadline;
    return Number.isFinite(deadline) ? deadline - Date.now() : undefined;
  }
}

/** The request headers as metadata: what grpc-js would hand the handler. */
class DirectHeaders {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  get(name: string): string | null {
    const key = name.toLowerCase();
    if (key.startsWith(":") || NOT_METADATA.has(key)) return null;
    const v = this.headers[key];
    if (v === undefined) return null;
    if (key.endsWith("-bin")) return binaryValue(key, v);
    return Array.isArray(v) ? v.join(", ") : v;
  }
}

/**
 * A binary (-bin) header as grpc-js hands it over: decoded from base64 into
 * Metadata, re-encoded by the adapter, so unpadded base64 (which the gRPC
 * spec allows) reads padded, and a custom key's comma-separated values are
 * separate values. The same request reads the same on both paths.
 */
function binaryValue(key: string, v: string | string[]): string {
  const values = Array.isArray(v) ? v : key.startsWith("grpc-") ? [v] : v.split(",");
  return values.map((b) => Buffer.from(b.trim(), "base64").toString("base64")).join(", ");
}

/** 'close' of a stream whose signal was asked for: a close before the answer is a cancel. */
function onClose(this: DirectStream): void {
  const call = this[kCall];
  if (!call.answered) call.abort?.abort();
}

function deadlineExceeded(call: DirectCall): void {
  call.timer = undefined;
  if (call.answered) return;
  call.abort?.abort();
  answerStatus(call, DEADLINE_EXCEEDED, "Deadline exceeded");
}

/** Answers the call (once): stops the deadline timer; false if there is no one to answer. */
function settle(call: DirectCall): boolean {
  if (call.answered) return false;
  call.answered = true;
  if (call.timer !== undefined) clearTimeout(call.timer);
  call.body = undefined;
  return !(call.stream.closed || call.stream.destroyed);
}

function answerMessage(call: DirectCall, response: unknown): void {
  if (call.answered) return;
  let frame: Buffer;
  try {
    frame = call.method.frame(response);
  } catch {
    answerStatus(call, INTERNAL, "Error serializing response");
    return;
  }
  if (frame.length - 5 > call.o.maxMessageBytes) {
    answerStatus(
      call,
      RESOURCE_EXHAUSTED,
      `Sent message larger than max (${frame.length} vs. ${call.o.maxMessageBytes})`,
    );
    return;
  }
  if (!settle(call)) return;
  const stream = call.stream;
  try {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once("wantTrailers", sendOkTrailers);
    stream.end(frame);
  } catch {
    // The client reset the stream between the check and the write: nothing to answer.
  }
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** A trailers-only answer, as grpc-js sends errors. */
function answerStatus(
  call: DirectCall,
  code: number,
  message: string,
  trailers?: OutgoingHttpHeaders,
): void {
  if (!settle(call)) return;
  const headers: OutgoingHttpHeaders = {
    ":status": 200,
    "content-type": "application/grpc+proto",
    "grpc-status": String(code),
    "grpc-message": encodeURI(message),
    ...trailers,
  };
  try {
    call.stream.respond(headers, { endStream: true });
  } catch {
    // Reset meanwhile: nothing to answer.
  }
}

function ignore(): void {}
