/**
 * Server streaming on the grpc-js fast path: runs a handler's async generator
 * and writes each response to the call, respecting back-pressure (the next
 * response is pulled only once grpc-js has taken the previous one: after
 * 'drain' when `write` returned false), ending the generator when the caller
 * cancels (its `finally` runs: subscriptions close), and mapping a thrown
 * error to a gRPC status as the unary path does. Bidi streaming is the same,
 * with the requests read as an async iterable (serveBidiStream).
 */
import { create, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import type { CallContext } from "../services/call-context.js";
import { toServiceError } from "./grpc-adapter.js";

/** A streaming handler, untyped: the adapter serves any service's methods. */
export type AnyStreamImpl = (req: unknown, ctx: CallContext) => AsyncIterable<unknown>;

/**
 * Serves one server-streaming call. `request` is the decoded request; `ctx`
 * is the call's context, whose signal `abort` aborts on cancellation. Resolves
 * once the call has ended, whichever way.
 */
export async function serveServerStream(
  method: DescMethod,
  fn: AnyStreamImpl,
  call: grpc.ServerWritableStream<Buffer, unknown> | grpc.ServerDuplexStream<Buffer, unknown>,
  request: unknown,
  ctx: CallContext,
  abort: AbortController,
): Promise<void> {
  const output = method.output;
  const iterator = fn(request, ctx)[Symbol.asyncIterator]();
  try {
    for (;;) {
      const step = await iterator.next();
      if (step.done || abort.signal.aborted) break;
      const msg = isMessage(step.value) ? step.value : create(output, step.value as never);
      if (!call.write(msg)) await drained(call, abort.signal);
      if (abort.signal.aborted) break;
    }
    if (!abort.signal.aborted) call.end();
  } catch (err) {
    if (!abort.signal.aborted) call.emit("error", toServiceError(err));
  } finally {
    // A cancelled (or failed) call leaves the generator suspended at a yield:
    // return() runs its finally blocks, which release what it holds. The call
    // has ended by then: a failure there has no one to go to, and must not
    // become an unhandled rejection that ends the process.
    try {
      await iterator.return?.();
    } catch {
      // Released as far as it could be.
    }
  }
}

/** Resolves on 'drain', or at once when the call is cancelled (no drain comes then). */
function drained(
  call: grpc.ServerWritableStream<Buffer, unknown> | grpc.ServerDuplexStream<Buffer, unknown>,
  signal: AbortSignal,
) {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

function isMessage(v: unknown): boolean {
  return typeof v === "object" && v !== null && "$typeName" in v;
}

/** A bidi-streaming handler, untyped. */
export type AnyBidiImpl = (
  reqs: AsyncIterable<unknown>,
  ctx: CallContext,
) => AsyncIterable<unknown>;

/**
 * Serves one bidi-streaming call: the handler reads `call`'s requests, each
 * decoded by `decode` (a message that does not decode ends the stream with
 * INVALID_ARGUMENT, thrown into the handler as its next request), and its
 * responses are written as serveServerStream writes them. The requests are
 * read one at a time (the call is paused while one waits to be taken), and
 * end when the caller half-closes, at once when it cancels, or when `closing`
 * aborts (the server shuts down): then the handler finishes as on a
 * half-close and the call ends OK, so the caller reconnects elsewhere instead
 * of holding the shutdown for its whole grace.
 */
export async function serveBidiStream(
  method: DescMethod,
  fn: AnyBidiImpl,
  call: grpc.ServerDuplexStream<Buffer, unknown>,
  decode: (bytes: Uint8Array) => unknown,
  ctx: CallContext,
  abort: AbortController,
  closing?: AbortSignal,
): Promise<void> {
  const requests = readRequests(call, decode, abort.signal, closing);
  const responses = (_: unknown, c: CallContext) => fn(requests, c);
  await serveServerStream(method, responses, call, undefined, ctx, abort);
}

/** The call's requests as an async iterable that ends on half-close or cancellation. */
async function* readRequests(
  call: grpc.ServerDuplexStream<Buffer, unknown>,
  decode: (bytes: Uint8Array) => unknown,
  signal: AbortSignal,
  closing: AbortSignal | undefined,
): AsyncGenerator<unknown> {
  const queue: Buffer[] = [];
  let ended = false;
  let failed: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (b: Buffer) => {
    queue.push(b);
    call.pause();
    notify();
  };
  const onEnd = () => {
    ended = true;
    notify();
  };
  const onError = (err: unknown) => {
    failed = err;
    notify();
  };
  call.on("data", onData);
  call.once("end", onEnd);
  call.once("error", onError);
  signal.addEventListener("abort", onEnd, { once: true });
  closing?.addEventListener("abort", onEnd, { once: true });
  try {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        if (signal.aborted) return;
        let msg: unknown;
        try {
          msg = decode(next);
        } catch {
          throw new ConnectError("request is not a valid protobuf message", Code.InvalidArgument);
        }
        yield msg;
        if (queue.length === 0) call.resume();
        continue;
      }
      if (failed !== undefined) throw failed;
      if (ended || signal.aborted || closing?.aborted) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    call.off("data", onData);
    call.off("end", onEnd);
    call.off("error", onError);
    signal.removeEventListener("abort", onEnd);
    closing?.removeEventListener("abort", onEnd);
  }
}
