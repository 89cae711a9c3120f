/**
 * connect-node reports a request it cannot decode as protobuf binary with code
 * `internal` (connect-es labels every binary parse failure so). A client that
 * sends garbage made an *invalid argument*; gRPC callers on grpc-js already get
 * INVALID_ARGUMENT. This wrapper corrects the code at the HTTP edge for the
 * three protocols connect-node speaks: a Connect unary error body (HTTP 500 →
 * 400), gRPC trailers, and a gRPC-Web trailer frame. Nothing else is touched.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

const PARSE = /^parse binary/;

/** Wraps a connect-node handler so decode failures answer INVALID_ARGUMENT. */
export function withDecodeErrorCodes(
  next: (req: Req, res: Res) => void,
): (req: Req, res: Res) => void {
  return (req, res) => {
    // Only binary protobuf fails as "parse binary": JSON requests (Connect,
    // gRPC-Web and gRPC with +json) get connect-node's answers as they are,
    // without the per-request wrapping below.
    if (req.headers["content-type"]?.includes("json")) return next(req, res);
    const r = res as ServerResponse & { addTrailers(h: Record<string, string>): void };
    const writeHead = r.writeHead.bind(r);
    const write = r.write.bind(r);
    const end = r.end.bind(r);
    const addTrailers = r.addTrailers.bind(r);
    let held: { status: number; headers: Record<string, unknown> } | undefined;
    const body: Buffer[] = [];

    // Connect unary errors are a 500 with a small JSON body: hold them to inspect.
    r.writeHead = ((status: number, headers?: Record<string, unknown>) => {
      if (status === 500) {
        held = { status, headers: { ...(headers ?? {}) } };
        return r;
      }
      return writeHead(status, headers as never);
    }) as typeof r.writeHead;
    r.write = ((chunk: unknown, ...rest: unknown[]) => {
      const cb = rest.find((x) => typeof x === "function") as (() => void) | undefined;
      if (held) {
        body.push(Buffer.from(chunk as Uint8Array));
        cb?.();
        return true;
      }
      return write(fixGrpcWebTrailer(chunk) as never, ...(rest as []));
    }) as typeof r.write;
    r.end = ((...args: unknown[]) => {
      if (held) {
        let text = Buffer.concat(body).toString("utf8");
        let status = held.status;
        try {
          const j = JSON.parse(text) as { code?: string; message?: string };
          if (j.code === "internal" && PARSE.test(j.message ?? "")) {
            j.code = "invalid_argument";
            status = 400;
            text = JSON.stringify(j);
          }
        } catch {
          // not a Connect error body: pass it on unchanged
        }
        const headers = { ...held.headers };
        for (const k of Object.keys(headers))
          if (k.toLowerCase() === "content-length") headers[k] = Buffer.byteLength(text);
        held = undefined;
        writeHead(status, headers as never);
        write(text);
      }
      return end(...(args as []));
    }) as typeof r.end;
    r.addTrailers = (headers: Record<string, string>) => {
      const h = { ...headers };
      if (h["grpc-status"] === "13" && PARSE.test(decodeURIComponent(h["grpc-message"] ?? "")))
        h["grpc-status"] = "3";
      addTrailers(h);
    };
    next(req, res);
  };
}

/** Rewrites grpc-status 13 to 3 in a gRPC-Web trailer frame about a decode failure. */
function fixGrpcWebTrailer(chunk: unknown): unknown {
  if (!(chunk instanceof Uint8Array) || chunk.length < 5 || chunk[0] !== 0x80) return chunk;
  const text = Buffer.from(chunk.subarray(5)).toString("latin1");
  const msg = /grpc-message: ?([^\r\n]*)/i.exec(text)?.[1] ?? "";
  if (!/grpc-status: ?13\r?\n/i.test(text) || !PARSE.test(decodeURIComponent(msg))) return chunk;
  const fixed = Buffer.from(text.replace(/grpc-status: ?13/i, "grpc-status: 3"), "latin1");
  const frame = Buffer.alloc(5 + fixed.length);
  frame[0] = 0x80;
  frame.writeUInt32BE(fixed.length, 1);
  fixed.copy(frame, 5);
  return frame;
}
