/**
 * Serves protobuf-es services on grpc-js: the gRPC fast path. The handlers are
 * the same handler objects connect-node serves; this adapter gives grpc-js
 * protobuf-es (de)serialisers and the handlers' narrow CallContext, and maps
 * ConnectErrors (with their details) to gRPC statuses.
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import type { CallContext, Handlers } from "../services/call-context.js";
import type { DirectUnaryMethod } from "./grpc-direct.js";
import {
  type AnyBidiImpl,
  type AnyStreamImpl,
  serveBidiStream,
  serveServerStream,
} from "./grpc-stream.js";
import { createHotDecoders } from "./hot-decoders.js";
import { createHotEncoders } from "./hot-encoders.js";

type AnyImpl = (req: unknown, ctx: CallContext) => Promise<unknown>;

/**
 * Builds a grpc-js service definition and implementation for the unary,
 * server-streaming and bidi-streaming methods of `desc` (streams: grpc-stream.ts). Requests are kept as raw bytes until inside the handler,
 * so a malformed message is answered INVALID_ARGUMENT (grpc-js would say
 * INTERNAL if its deserialiser threw). `direct` holds the unary methods by
 * path for the direct HTTP/2 path (grpc-direct.ts), which serves most unary
 * calls; grpc-js serves the rest with `definition` and `implementation`.
 */
export function toGrpcService<S extends DescService>(
  desc: S,
  impl: Handlers<S>,
  readUnknownFields = false,
  /**
   * Told when a call starts and when it is answered (shutdown drains on it);
   * `closing` aborts when shutdown begins (bidi streams then end OK).
   */
  track: { start(): void; end(): void; closing?: AbortSignal } = { start() {}, end() {} },
): {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  direct: Map<string, DirectUnaryMethod>;
} {
  const definition: Record<string, grpc.MethodDefinition<Buffer, unknown>> = {};
  const direct = new Map<string, DirectUnaryMethod>();
  const implementation: grpc.UntypedServiceImplementation = {};
  const hot = createHotEncoders();
  const hotDecoders = createHotDecoders();
  for (const method of desc.methods) {
    if (method.methodKind === "server_streaming") {
      definition[method.localName] = streamDefinition(desc, method, false);
      const stream = (impl as Record<string, AnyStreamImpl>)[method.localName] as AnyStreamImpl;
      implementation[method.localName] = (call: grpc.ServerWritableStream<Buffer, unknown>) => {
        // Streams live long: the context is built in full, the signal at once.
        const abort = new AbortController();
        const onCancel = () => abort.abort();
        call.once("cancelled", onCancel);
        track.start();
        let request: unknown;
        try {
          request = fromBinary(method.input, call.request, { readUnknownFields });
        } catch {
          call.off("cancelled", onCancel);
          call.emit("error", {
            code: grpc.status.INVALID_ARGUMENT,
            details: "request is not a valid protobuf message",
          });
          track.end();
          return;
        }
        const deadline = call.getDeadline();
        const ctx: CallContext = {
          requestHeader: metadataHeaders(call.metadata),
          signal: abort.signal,
          timeoutMs: () => remainingMs(deadline),
        };
        void serveServerStream(method, stream, call, request, ctx, abort).finally(() => {
          call.off("cancelled", onCancel);
          track.end();
        });
      };
      continue;
    }
    if (method.methodKind === "bidi_streaming") {
      definition[method.localName] = streamDefinition(desc, method, true);
      const bidi = (impl as Record<string, AnyBidiImpl>)[method.localName] as AnyBidiImpl;
      const decode = (bytes: Uint8Array) => fromBinary(method.input, bytes, { readUnknownFields });
      implementation[method.localName] = (call: grpc.ServerDuplexStream<Buffer, unknown>) => {
        // As a server stream: the context in full, the signal at once; each
        // request is decoded as it is read (a bad one: INVALID_ARGUMENT).
        const abort = new AbortController();
        const onCancel = () => abort.abort();
        call.once("cancelled", onCancel);
        track.start();
        const deadline = call.getDeadline();
        const ctx: CallContext = {
          requestHeader: metadataHeaders(call.metadata),
          signal: abort.signal,
          timeoutMs: () => remainingMs(deadline),
        };
        void serveBidiStream(method, bidi, call, decode, ctx, abort, track.closing).finally(() => {
          call.off("cancelled", onCancel);
          track.end();
        });
      };
      continue;
    }
    if (method.methodKind !== "unary") continue;
    const path = `/${desc.typeName}/${method.name}`;
    const output = method.output;
    definition[method.localName] = {
      path,
      requestStream: false,
      responseStream: false,
      originalName: method.name,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      // The hottest responses have hand encoders (hot-encoders.ts); byte-identical to toBinary.
      responseSerialize:
        hot.forSchema(output) ?? ((m: unknown) => Buffer.from(toBinary(output, m as never))),
      responseDeserialize: (b: Buffer) => fromBinary(output, b),
    };
    const fn = (impl as Record<string, AnyImpl>)[method.localName] as AnyImpl;
    const input = method.input;
    // The hottest requests have hand decoders (hot-decoders.ts): fromBinary's
    // result, and its throws. They keep no unknown fields, so not when asked to.
    const decode =
      (readUnknownFields ? undefined : hotDecoders.forSchema(input)) ??
      ((bytes: Uint8Array) => fromBinary(input, bytes, { readUnknownFields }));
    const framed =
      hot.framedForSchema(output) ?? ((m: unknown) => grpcFrame(toBinary(output, m as never)));
    direct.set(path, {
      decode,
      call: fn,
      frame: (res) => framed(isMessage(res) ? res : create(output, res as never)),
      status: toDirectStatus,
    });
    implementation[method.localName] = (
      call: grpc.ServerUnaryCall<Buffer, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      // A lightweight context: the handlers read request headers and the
      // signal, so neither a fetch Headers copy of the metadata nor an
      // AbortController is built unless used (measured: ~10% of a cached
      // Authorize went to building connect's full context).
      let abort: AbortController | undefined;
      let answered = false;
      const onCancel = () => {
        if (!answered) abort?.abort();
      };
      call.once("cancelled", onCancel);
      track.start();
      let request: unknown;
      try {
        request = decode(call.request);
      } catch {
        answered = true;
        call.off("cancelled", onCancel);
        track.end();
        callback({
          code: grpc.status.INVALID_ARGUMENT,
          details: "request is not a valid protobuf message",
        });
        return;
      }
      const deadline = call.getDeadline();
      const ctx: CallContext = {
        requestHeader: metadataHeaders(call.metadata),
        get signal() {
          abort ??= new AbortController();
          return abort.signal;
        },
        timeoutMs: () => remainingMs(deadline),
      };
      fn(request, ctx).then(
        (res) => {
          answered = true;
          call.off("cancelled", onCancel);
          callback(null, isMessage(res) ? res : create(output, res as never));
          track.end();
        },
        (err: unknown) => {
          answered = true;
          call.off("cancelled", onCancel);
          callback(toServiceError(err));
          track.end();
        },
      );
    };
  }
  return { definition: definition as grpc.ServiceDefinition, implementation, direct };
}

/**
 * Milliseconds left before a call's deadline, or undefined when the caller
 * sent none. grpc-js gives a server call's deadline as epoch ms (Infinity
 * without grpc-timeout); a Date is accepted too, as its type allows.
 */
function remainingMs(deadline: grpc.Deadline): number | undefined {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at - Date.now() : undefined;
}

function isMessage(v: unknown): boolean {
  return typeof v === "object" && v !== null && "$typeName" in v;
}

/**
 * The read side of fetch Headers over grpc-js Metadata, without copying it:
 * `get` joins repeated values with ", " as Headers does; binary (-bin) values
 * are base64 as on the wire.
 */
function metadataHeaders(md: grpc.Metadata): CallContext["requestHeader"] {
  const get = (name: string): string | null => {
    const values = md.get(name.toLowerCase());
    if (values.length === 0) return null;
    return values.map((v) => (typeof v === "string" ? v : v.toString("base64"))).join(", ");
  };
  return { get };
}

/** A gRPC message frame: uncompressed flag, 4-byte big-endian length, the bytes. */
function grpcFrame(bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/**
 * A handler's error as a status: a ConnectError keeps its code, message and
 * details (as `grpc-status-details-bin`, a google.rpc.Status); anything else
 * is INTERNAL "internal error", never its own message.
 */
function statusOf(err: unknown): { ce: ConnectError; detailsBin?: Buffer } {
  const ce = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
  if (ce.details.length === 0) return { ce };
  try {
    const details = ce.details.flatMap((d) =>
      "desc" in d
        ? [anyPack(d.desc as DescMessage, create(d.desc as DescMessage, d.value as never))]
        : [],
    );
    if (details.length === 0) return { ce };
    const status = create(StatusSchema, { code: ce.code, message: ce.rawMessage, details });
    return { ce, detailsBin: Buffer.from(toBinary(StatusSchema, status)) };
  } catch {
    // Details that cannot be encoded (a bug in their construction): the call
    // is still answered, on both engines, as the internal error it is.
    return { ce: new ConnectError("internal error", Code.Internal) };
  }
}

/** ConnectError → grpc-js status with `grpc-status-details-bin` (google.rpc.Status). */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const { ce, detailsBin } = statusOf(err);
  const metadata = new grpc.Metadata();
  if (detailsBin !== undefined) metadata.set("grpc-status-details-bin", detailsBin);
  return { code: ce.code as number as grpc.status, details: ce.rawMessage, metadata };
}

/** The same status for the direct path: code, message and the details trailer (base64, as grpc-js sends it). */
function toDirectStatus(err: unknown): ReturnType<DirectUnaryMethod["status"]> {
  const { ce, detailsBin } = statusOf(err);
  return {
    code: ce.code,
    message: ce.rawMessage,
    ...(detailsBin !== undefined && {
      trailers: { "grpc-status-details-bin": detailsBin.toString("base64") },
    }),
  };
}

/** grpc-js's definition of a streaming method: raw request bytes, responses by toBinary. */
function streamDefinition(
  desc: DescService,
  method: DescMethod,
  requestStream: boolean,
): grpc.MethodDefinition<Buffer, unknown> {
  return {
    path: `/${desc.typeName}/${method.name}`,
    requestStream,
    responseStream: true,
    originalName: method.name,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as never)),
    responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
  };
}
