/**
 * Unary Connect JSON straight on the Node HTTP request: the hot path of the
 * Connect protocol. connect-node builds, per call, fetch Headers copies of the
 * request and response headers, an async iterable over the body, three linked
 * AbortControllers and — aborting them when the call ends — two DOMExceptions
 * with stack traces (about a third of a cached Authorize over Connect JSON in
 * a profile, docs/performance.md). Here a plain Connect unary call is read,
 * checked, decoded, run and answered on the request itself.
 *
 * Only what this path serves exactly is taken: POST of one of our unary
 * methods with `content-type: application/json`, a `content-length` within
 * the message bound, no compression either way (no `content-encoding`, no
 * `accept-encoding`), no `connect-timeout-ms`, and `connect-protocol-version`
 * absent or 1. Everything else — Connect GET, binary, compressed, with a
 * deadline, gRPC-Web, gRPC — goes to connect-node as before. The answers are
 * connect-node's for the same input: the request is held to the same strict
 * JSON (checkJsonRequest, whose strict protobuf-es parse is the request), the
 * response is protobuf-es's JSON, and errors are connect-es's own error body
 * and HTTP status.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import {
  create,
  type DescMessage,
  type DescService,
  isMessage,
  toJsonString,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { CallContext, Handlers } from "../services/call-context.js";
import { checkJsonRequest } from "./strict-json.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** One unary method as this path runs it. */
interface DirectMethod {
  input: DescMessage;
  output: DescMessage;
  call(request: unknown, ctx: CallContext): Promise<unknown>;
}

/**
 * A handler that answers the plain Connect unary calls of `services` and
 * returns true, or returns false (touching nothing) for any other request,
 * which the caller hands to connect-node. `maxMessageBytes` bounds a request
 * body, as connect-node's readMaxBytes does.
 */
export function createConnectDirect(
  services: readonly { desc: DescService; impl: Handlers<DescService> }[],
  maxMessageBytes: number,
): (req: Req, res: Res) => boolean {
  const methods = new Map<string, DirectMethod>();
  for (const s of services) {
    for (const m of s.desc.methods) {
      if (m.methodKind !== "unary") continue;
      const fn = (s.impl as Record<string, unknown>)[m.localName];
      if (typeof fn !== "function") continue;
      methods.set(`/${s.desc.typeName}/${m.name}`, {
        input: m.input,
        output: m.output,
        call: (req, ctx) => fn.call(s.impl, req, ctx) as Promise<unknown>,
      });
    }
  }
  return (req, res) => {
    if (req.method !== "POST") return false;
    const h = req.headers;
    if (h["content-type"] !== "application/json") return false;
    if (h["content-encoding"] !== undefined || h["accept-encoding"] !== undefined) return false;
    if (h["connect-timeout-ms"] !== undefined) return false;
    const version = h["connect-protocol-version"];
    if (version !== undefined && version !== "1") return false;
    const length = contentLength(h["content-length"]);
    if (length === undefined || length > maxMessageBytes) return false;
    const method = methods.get(req.url ?? "");
    if (method === undefined) return false;
    serve(req, res, method, length);
    return true;
  };
}

/** A content-length header's value, or undefined unless it is a plain decimal number. */
function contentLength(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  return Number(v);
}

function serve(req: Req, res: Res, method: DirectMethod, length: number): void {
  const body = Buffer.allocUnsafe(length);
  let received = 0;
  let overrun = 0;
  req.on("data", (chunk: Buffer) => {
    if (received + chunk.length > length) {
      overrun = received + chunk.length;
      return;
    }
    chunk.copy(body, received);
    received += chunk.length;
  });
  req.on("end", () => {
    if (overrun > 0 || received < length) {
      answerError(
        res,
        new ConnectError(
          `protocol error: promised ${length} bytes, received ${overrun || received}`,
          Code.InvalidArgument,
        ),
      );
      return;
    }
    run(req, res, method, body);
  });
}

function run(req: Req, res: Res, method: DirectMethod, body: Buffer): void {
  let request: unknown;
  try {
    // The strict check's own strict parse is the request (no second parse).
    request = checkJsonRequest(method.input, body.toString("utf8"));
  } catch (err) {
    answerError(res, ConnectError.from(err, Code.InvalidArgument));
    return;
  }
  let result: Promise<unknown>;
  try {
    result = method.call(request, context(req, res));
  } catch (err) {
    result = Promise.reject(err);
  }
  result.then(
    (out) => {
      let json: string;
      try {
        const message = isMessage(out, method.output) ? out : create(method.output, out as never);
        json = toJsonString(method.output, message);
      } catch (err) {
        answerError(res, ConnectError.from(err, Code.Internal));
        return;
      }
      answer(res, 200, Buffer.from(json));
    },
    (err: unknown) =>
      answerError(
        res,
        err instanceof ConnectError
          ? err
          : new ConnectError("internal error", Code.Internal, undefined, undefined, err),
      ),
  );
}

/** The handler's view: request headers as they are, the signal only when asked for. */
function context(req: Req, res: Res): CallContext {
  let abort: AbortController | undefined;
  return {
    requestHeader: {
      get(name: string): string | null {
        // HTTP/2 pseudo-headers (:path, :authority…) are in req.headers but are
        // not request headers: connect-node and the gRPC paths expose none.
        if (name.startsWith(":")) return null;
        const v = req.headers[name.toLowerCase()];
        if (v === undefined) return null;
        return Array.isArray(v) ? v.join(", ") : v;
      },
    },
    get signal(): AbortSignal {
      if (abort === undefined) {
        const a = new AbortController();
        abort = a;
        // A response closed before this path ended it: the caller went away.
        // Not writableFinished: an Http2ServerResponse whose stream the
        // client reset emits 'finish' before 'close' and reports itself
        // finished, so over HTTP/2 a cancelled call was never aborted.
        if (isClosed(res)) {
          if (!res.writableEnded) a.abort();
        } else
          res.once("close", () => {
            if (!res.writableEnded) a.abort();
          });
      }
      return abort.signal;
    },
    timeoutMs: () => undefined,
  };
}

/**
 * True once the response's connection or stream is gone. Http2ServerResponse
 * has no `destroyed`, so there it is its stream's.
 */
function isClosed(res: Res): boolean {
  return "stream" in res ? res.stream.destroyed : res.destroyed;
}

function answer(res: Res, status: number, bytes: Uint8Array, extra?: Record<string, string>): void {
  if (isClosed(res) || res.headersSent) return;
  try {
    (res as ServerResponse).writeHead(status, {
      ...extra,
      "content-type": "application/json",
      "content-length": bytes.byteLength,
    });
    res.end(bytes);
  } catch {
    // The connection went away between the check and the write.
  }
}

function answerError(res: Res, err: ConnectError): void {
  let body: Uint8Array;
  try {
    body = errorToJsonBytes(err, {});
  } catch {
    body = errorToJsonBytes(new ConnectError("internal error", Code.Internal), {});
  }
  // An error's metadata travels as response headers, as connect-node sends it.
  let headers: Record<string, string> | undefined;
  err.metadata.forEach((value, key) => {
    headers ??= {};
    headers[key] = value;
  });
  answer(res, codeToHttpStatus(err.code), body, headers);
}
