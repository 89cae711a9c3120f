/**
 * What a handler may read of its call, whichever transport carries it: the
 * request headers (traceparent, authorization), cancellation and the
 * deadline. Connect's HandlerContext has all of it, so connect-node passes its
 * own; the grpc-js fast path builds just this, lazily, without pretending to
 * be a full HandlerContext.
 */
import type {
  DescMethodBiDiStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";

/** The narrow context every handler receives. */
export interface CallContext {
  /** Request headers (gRPC metadata); repeated values joined with ", ". */
  readonly requestHeader: { get(name: string): string | null };
  /** Aborted when the caller cancels. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the caller's deadline, if it sent one. */
  timeoutMs(): number | undefined;
}

/** One unary method's handler. */
export type UnaryHandler<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>>
    : never;

/**
 * One server-streaming method's handler: an async generator of responses. The
 * transport pulls the next response only once the previous one was written
 * (grpc-js: after 'drain' when its buffer is full), so a slow reader slows the
 * generator, never the server; the transport ends the generator (`return()`)
 * when the caller cancels, so `finally` blocks release what it holds.
 */
export type ServerStreamingHandler<M> =
  M extends DescMethodServerStreaming<infer I, infer O>
    ? (request: MessageShape<I>, ctx: CallContext) => AsyncIterable<MessageInitShape<O>>
    : never;

/**
 * One bidi-streaming method's handler: reads the requests as they arrive and
 * yields responses, with the same back-pressure and cancellation as a
 * server-streaming handler. A request that is not a valid message ends the
 * stream (INVALID_ARGUMENT) before the handler sees it.
 */
export type BidiStreamingHandler<M> =
  M extends DescMethodBiDiStreaming<infer I, infer O>
    ? (
        requests: AsyncIterable<MessageShape<I>>,
        ctx: CallContext,
      ) => AsyncIterable<MessageInitShape<O>>
    : never;

/** The handler of one method, by its kind (client streaming is not served). */
export type MethodHandler<M> =
  M extends DescMethodUnary<infer _I, infer _O>
    ? UnaryHandler<M>
    : M extends DescMethodServerStreaming<infer _I, infer _O>
      ? ServerStreamingHandler<M>
      : M extends DescMethodBiDiStreaming<infer _I, infer _O>
        ? BidiStreamingHandler<M>
        : never;

/**
 * A service's handlers, typed by its descriptor (unary, server-streaming and
 * bidi-streaming methods): what both transports serve. Assignable to connect's ServiceImpl.
 */
export type Handlers<S extends DescService> = {
  [K in keyof S["method"]]: MethodHandler<S["method"][K]>;
};
