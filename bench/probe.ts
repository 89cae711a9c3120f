/**
 * Sends one pre-encoded body exactly as h2load will, over h2c, and checks the
 * answer. h2load only sees HTTP statuses, and gRPC errors travel in trailers
 * with HTTP 200, so every contender is probed before it is loaded: a bench of
 * fast errors would be worthless.
 */
import { connect } from "node:http2";

/** The decoded answer of a probe. */
export interface ProbeResult {
  httpStatus: number;
  /** grpc-status (trailers, or headers of a trailers-only answer); undefined for Connect. */
  grpcStatus?: string;
  grpcMessage?: string;
  body: Buffer;
}

/** POSTs `body` to `base + path` with `headers` over one HTTP/2 connection; bounded by 5 s. */
export function probe(
  base: string,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const session = connect(base);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`probe ${base}${path}: no answer within 5 s`));
    }, 5_000);
    session.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = String(h["grpc-message"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) grpcStatus = String(t["grpc-status"]);
      if (t["grpc-message"] !== undefined) grpcMessage = String(t["grpc-message"]);
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.once("error", (err) => {
      clearTimeout(timer);
      session.close();
      reject(err);
    });
    stream.once("end", () => {
      clearTimeout(timer);
      session.close();
      resolve({
        httpStatus: status,
        ...(grpcStatus !== undefined && { grpcStatus }),
        ...(grpcMessage !== undefined && { grpcMessage: decodeURIComponent(grpcMessage) }),
        body: Buffer.concat(chunks),
      });
    });
    stream.end(body);
  });
}

/** The message bytes of a single-message gRPC response body. */
export function unframe(body: Buffer): Buffer {
  if (body.length < 5) throw new Error(`gRPC body of ${body.length} bytes has no message`);
  return body.subarray(5, 5 + body.readUInt32BE(1));
}
