/**
 * Tools of the direct unary gRPC path's tests (grpc-direct.test.ts): the RPC
 * servers started in-process with handlers the test controls, a grpc-js
 * client call that settles instead of throwing, and a raw HTTP/2 gRPC call
 * whose body the test writes itself (in pieces, never ended, or reset), so it
 * can send what no generated client would and see every header and trailer.
 */
import { connect, type IncomingHttpHeaders } from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Handlers } from "../../src/services/call-context.js";
import { bindService, type RpcServers, startRpcServers } from "../../src/transport/servers.js";
import type { TransportLimits } from "../../src/transport/transport-limits.js";

/** The settings' defaults, small enough to reason about; tests override what they probe. */
export function testLimits(overrides: Partial<TransportLimits> = {}): TransportLimits {
  return {
    maxConnections: 100,
    headerTimeoutMs: 10_000,
    bodyTimeoutMs: 30_000,
    idleTimeoutMs: 300_000,
    maxHeaderListBytes: 65_536,
    maxStreamsPerConnection: 100,
    maxInflightRequests: 500,
    maxInflightBodyBytes: 32 * 1024 * 1024,
    ...overrides,
  };
}

/** Servers of one service on 127.0.0.1, port 0, no HTTP port, serving (health SERVING). */
export async function startServers<S extends DescService>(
  desc: S,
  impl: Handlers<S>,
  o: { maxMessageBytes: number; limits?: Partial<TransportLimits> },
): Promise<RpcServers & { address: string; url: string }> {
  const servers = await startRpcServers({
    services: [bindService(desc, impl)],
    addr: "127.0.0.1:0",
    httpAddr: "",
    maxMessageBytes: o.maxMessageBytes,
    limits: testLimits(o.limits),
  });
  servers.setServing(true);
  const address = `127.0.0.1:${servers.port}`;
  return { ...servers, address, url: `http://${address}` };
}

/** How a grpc-js unary call ended: the response, or the error grpc-js reported. */
export interface UnaryOutcome<O extends DescMessage> {
  response?: MessageShape<O>;
  error?: grpc.ServiceError;
}

/** Options of grpcCall. */
export interface GrpcCallOptions {
  metadata?: grpc.Metadata;
  /** Client deadline, ms from now; none by default (then no grpc-timeout is sent). */
  deadlineMs?: number;
  /** Channel options of the client (e.g. grpc.default_compression_algorithm). */
  channel?: grpc.ChannelOptions;
  /** Called with the call object once started (to cancel it). */
  onCall?: (call: grpc.ClientUnaryCall) => void;
}

/**
 * One unary call with a fresh @grpc/grpc-js client (protobuf-es
 * serialisers); never rejects: a failed call resolves with its ServiceError.
 */
export function grpcCall<I extends DescMessage, O extends DescMessage>(
  address: string,
  path: string,
  input: I,
  output: O,
  request: MessageShape<I>,
  o: GrpcCallOptions = {},
): Promise<UnaryOutcome<O>> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), o.channel ?? {});
  return new Promise((resolve) => {
    const call = client.makeUnaryRequest(
      path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      request,
      o.metadata ?? new grpc.Metadata(),
      o.deadlineMs === undefined ? {} : { deadline: Date.now() + o.deadlineMs },
      (err, res) => {
        client.close();
        resolve(err ? { error: err } : { ...(res !== undefined && { response: res }) });
      },
    );
    o.onCall?.(call);
  });
}

/** A raw HTTP/2 gRPC answer, everything kept. */
export interface RawAnswer {
  /** The response headers (a trailers-only answer's status is here). */
  headers: IncomingHttpHeaders;
  /** The trailers, or undefined for a trailers-only answer. */
  trailers: IncomingHttpHeaders | undefined;
  /** grpc-status from trailers or headers; -1 if none. */
  grpcStatus: number;
  /** grpc-message, decoded with decodeURI as grpc-js clients do. */
  grpcMessage: string;
  body: Buffer;
  /** The RST_STREAM code the stream closed with (0: closed normally, or still open). */
  rstCode: number;
  /** ms from the request's start to the answer. */
  ms: number;
}

/** A raw call in progress: write the body with `req`, then await `answer`. */
export interface RawCall {
  req: import("node:http2").ClientHttp2Stream;
  answer: Promise<RawAnswer>;
  /** Ends the call's own session (each raw call has one). */
  close(): void;
}

/**
 * Opens a fresh HTTP/2 session and a gRPC request on `path` (POST,
 * application/grpc+proto, te: trailers, plus `headers`); the body is the
 * caller's to write. The answer settles when the response ends or the
 * stream closes, whichever comes first.
 */
export function rawCall(
  url: string,
  path: string,
  headers: Record<string, string | string[]> = {},
): RawCall {
  const session = connect(url);
  session.on("error", () => {});
  const started = Date.now();
  const req = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc+proto",
    te: "trailers",
    ...headers,
  });
  const answer = new Promise<RawAnswer>((resolve) => {
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      responseHeaders = h;
    });
    req.on("trailers", (h) => {
      trailers = h;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    // The answer is complete at the end of the response (a trailers-only one
    // may come while the request body is still open) or when the stream closes.
    let done = false;
    const settle = () => {
      if (done) return;
      done = true;
      const last = trailers ?? responseHeaders;
      const status = last["grpc-status"];
      const message = last["grpc-message"];
      resolve({
        headers: responseHeaders,
        trailers,
        grpcStatus: status === undefined ? -1 : Number(status),
        grpcMessage: typeof message === "string" ? decodeURI(message) : "",
        body: Buffer.concat(chunks),
        rstCode: req.rstCode ?? 0,
        ms: Date.now() - started,
      });
    };
    req.on("end", settle);
    req.on("close", settle);
  });
  return { req, answer, close: () => session.destroy() };
}

/** Sends `body` as the whole request and awaits the answer. */
export async function rawUnary(
  url: string,
  path: string,
  body: Buffer,
  headers: Record<string, string | string[]> = {},
): Promise<RawAnswer> {
  const call = rawCall(url, path, headers);
  call.req.end(body);
  const answer = await call.answer;
  call.close();
  return answer;
}

/** The one message of an uncompressed answer body, decoded. */
export function decodeAnswer<O extends DescMessage>(output: O, body: Buffer): MessageShape<O> {
  if (body.length < 5 || body[0] !== 0)
    throw new Error(`not one uncompressed message: ${body.length} bytes`);
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) throw new Error(`body of ${body.length} bytes, frame of ${len}`);
  return fromBinary(output, body.subarray(5));
}

/** The encoded message (no frame) of `init` in `schema`. */
export function encode<I extends DescMessage>(
  schema: I,
  init: Parameters<typeof create<I>>[1],
): Buffer {
  return Buffer.from(toBinary(schema, create(schema, init)));
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
