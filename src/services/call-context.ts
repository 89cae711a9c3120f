/**
 * What a handler may read of its call, whichever transport carries it: the
 * request headers (traceparent, authorization), cancellation and the
 * deadline. Connect's HandlerContext has all of it, so connect-node passes its
 * own; the grpc-js fast path builds just this, lazily, without pretending to
 * be a full HandlerContext.
 */
import type {
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
 * A service's handlers, typed by its descriptor (unary methods only): what
 * both transports serve. Assignable to connect's ServiceImpl.
 */
export type Handlers<S extends DescService> = {
  [K in keyof S["method"]]: UnaryHandler<S["method"][K]>;
};
