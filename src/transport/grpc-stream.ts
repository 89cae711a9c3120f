/**
 * Server streaming on the grpc-js fast path: runs a handler's async generator
 * and writes each response to the call, respecting back-pressure (the next
 * response is pulled only once grpc-js has taken the previous one: after
 * 'drain' when `write` returned false), ending the generator when the caller
 * cancels (its `finally` runs: subscriptions close), and mapping a thrown
 * error to a gRPC status as the unary path does.
 */
import { create, type DescMethod } from "@bufbuild/protobuf";
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
  call: grpc.ServerWritableStream<Buffer, unknown>,
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
function drained(call: grpc.ServerWritableStream<Buffer, unknown>, signal: AbortSignal) {
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
