/**
 * A load generator for the memory-bound attacks: many distinct unary gRPC calls
 * over a few HTTP/2 connections to 127.0.0.1, a bounded number in flight, each
 * body encoded by the caller (so every call can carry a different key, subject
 * or IP — which h2load cannot do). Bounded in count and in time: it stops at
 * `count` calls or at `timeoutMs`, whichever comes first, and says which.
 */
import { type ClientHttp2Session, connect, constants } from "node:http2";
import { grpcFrame } from "./support.js";

/** Options of flood. */
export interface FloodOptions {
  /** HTTP/2 connections opened. Default 2. */
  connections?: number;
  /** Calls in flight per connection. Default 64. */
  inFlight?: number;
  /** Stop after this long even if calls remain, ms. Default 90 000. */
  timeoutMs?: number;
  /**
   * Called with the response payload of every `sampleEvery`-th call (default
   * 1000); what it throws is collected in `checkErrors`.
   */
  check?: (i: number, payload: Buffer) => void;
  sampleEvery?: number;
}

/** What a flood did. */
export interface FloodResult {
  /** Calls answered, by grpc-status (-1: none). */
  statuses: Map<number, number>;
  /** Calls answered in total. */
  done: number;
  /** Calls that failed at the HTTP/2 level (stream or connection error). */
  failed: number;
  elapsedMs: number;
  /** True if `timeoutMs` ended the flood before `count` calls were made. */
  timedOut: boolean;
  /** Messages of the first few failed `check`s. */
  checkErrors: string[];
}

/**
 * Sends `count` calls of `path`, call `i` carrying the protobuf payload `body(i)`.
 * Resolves when every call is answered (or failed), or when the time is up.
 */
export async function flood(
  baseUrl: string,
  path: string,
  count: number,
  body: (i: number) => Uint8Array,
  o: FloodOptions = {},
): Promise<FloodResult> {
  const started = Date.now();
  const deadline = started + (o.timeoutMs ?? 90_000);
  const sampleEvery = o.sampleEvery ?? 1000;
  const statuses = new Map<number, number>();
  let next = 0;
  let done = 0;
  let failed = 0;
  let timedOut = false;
  const checkErrors: string[] = [];
  const sessions: ClientHttp2Session[] = [];

  const one = (session: ClientHttp2Session, i: number) =>
    new Promise<void>((resolve) => {
      let status = -1;
      const chunks: Buffer[] = [];
      let req: ReturnType<ClientHttp2Session["request"]>;
      try {
        req = session.request({
          [constants.HTTP2_HEADER_METHOD]: "POST",
          [constants.HTTP2_HEADER_PATH]: path,
          "content-type": "application/grpc+proto",
          te: "trailers",
        });
      } catch {
        // The connection is gone (the server died or closed it).
        failed++;
        resolve();
        return;
      }
      const take = (h: Record<string, unknown>) => {
        if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
      };
      req.on("response", take);
      req.on("trailers", take);
      if (o.check && i % sampleEvery === 0) req.on("data", (c: Buffer) => chunks.push(c));
      else req.resume();
      req.on("end", () => {
        done++;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (o.check && i % sampleEvery === 0) {
          const b = Buffer.concat(chunks);
          try {
            o.check(i, b.length >= 5 ? b.subarray(5, 5 + b.readUInt32BE(1)) : Buffer.alloc(0));
          } catch (err) {
            if (checkErrors.length < 5) checkErrors.push(`call ${i}: ${(err as Error).message}`);
          }
        }
        resolve();
      });
      req.on("error", () => {
        failed++;
        resolve();
      });
      req.end(grpcFrame(body(i)));
    });

  const worker = async (session: ClientHttp2Session) => {
    for (;;) {
      if (next >= count) return;
      if (Date.now() > deadline) {
        timedOut = true;
        return;
      }
      await one(session, next++);
    }
  };

  try {
    const workers: Promise<void>[] = [];
    for (let c = 0; c < (o.connections ?? 2); c++) {
      const session = connect(baseUrl);
      session.on("error", () => {});
      sessions.push(session);
      for (let w = 0; w < (o.inFlight ?? 64); w++) workers.push(worker(session));
    }
    await Promise.all(workers);
  } finally {
    for (const s of sessions) s.close();
  }
  return { statuses, done, failed, elapsedMs: Date.now() - started, timedOut, checkErrors };
}
