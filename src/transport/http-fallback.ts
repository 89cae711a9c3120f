/**
 * Readable refusals for requests connect-node turns away before any handler
 * runs. connect-node answers an unknown path with 404, an HTTP method the RPC
 * does not take with 405 and a content-type no protocol accepts with 415 —
 * each with an empty body, which leaves a newcomer with `curl` guessing. This
 * wrapper keeps the status and adds a short body in the Connect error shape
 * (`{"code": "...", "message": "..."}`, content-type application/json), so a
 * Connect client reads it as the error it is (connect-es parses a unary
 * error's JSON body whatever the status) and a person reads what was
 * expected: the closest method name, POST, or the accepted content-types.
 *
 * gRPC and gRPC-Web requests (content-type application/grpc…) are passed on
 * untouched: their clients read the status and trailers, never such a body.
 * A response that already has a content-type (a handler's own error) is not
 * touched either.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** The content-types the RPC ports accept, in words, for a 415's message. */
export const ACCEPTED_CONTENT_TYPES =
  "application/json or application/proto (Connect), application/grpc[+proto|+json] (gRPC), " +
  "application/grpc-web[+proto|+json] (gRPC-Web)";

/** The body of a readable refusal: a Connect error. */
export interface Refusal {
  /** Connect code (a Connect client reads it instead of guessing from the status). */
  code: "unimplemented" | "invalid_argument";
  message: string;
}

/** One RPC as the refusal messages name it. */
export interface MethodPath {
  /** `/package.Service/Method`. */
  path: string;
  /** The method's name in lower case, to match a misspelling. */
  lowerName: string;
  /** The service's name without its package, in lower case. */
  lowerService: string;
  /** True when Connect GET is allowed (a method without side effects). */
  get: boolean;
}

/** The RPC paths of `services`, in their declaration order. */
export function methodPaths(services: readonly DescService[]): MethodPath[] {
  return services.flatMap((s) =>
    s.methods.map((m) => ({
      path: `/${s.typeName}/${m.name}`,
      lowerName: m.name.toLowerCase(),
      lowerService: s.name.toLowerCase(),
      get: m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
    })),
  );
}

/** Levenshtein distance of `a` and `b` (short strings: request paths are bounded by the header limits). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** Most edits (ignoring case) for a path to count as a misspelling of a method's. */
const MAX_EDITS = 3;

/**
 * The method `path` most likely meant: the one within MAX_EDITS (ignoring
 * case), else the one with the same service and method names under a wrong
 * or missing package (`/TollgateService/Authorize`). Undefined when nothing
 * is close.
 */
export function closestMethod(path: string, methods: readonly MethodPath[]): string | undefined {
  const lower = path.toLowerCase();
  let best: { path: string; d: number } | undefined;
  for (const m of methods) {
    const d = distance(lower, m.path.toLowerCase());
    if (d <= MAX_EDITS && (best === undefined || d < best.d)) best = { path: m.path, d };
  }
  if (best) return best.path;
  const segments = lower.split("/");
  const method = segments.at(-1) ?? "";
  const service = segments.at(-2)?.split(".").at(-1) ?? "";
  return methods.find((m) => m.lowerName === method && m.lowerService === service)?.path;
}

/**
 * Bounds what a message repeats of the request (paths and content-types are
 * client text): printable ASCII only, at most 128 characters.
 */
function echo(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, "?");
  return clean.length > 128 ? `${clean.slice(0, 128)}…` : clean;
}

/**
 * The refusal for a request connect-node answered with `status` (404, 405 or
 * 415), or undefined for any other status.
 */
export function describeRefusal(
  status: number,
  req: { method?: string; url?: string; contentType?: string },
  methods: readonly MethodPath[],
): Refusal | undefined {
  const raw = req.url ?? "/";
  const path = raw.split("?", 1)[0] ?? "/";
  const example = methods[0]?.path ?? "/package.Service/Method";
  if (status === 404) {
    const near = closestMethod(path, methods);
    return {
      code: "unimplemented",
      message: near
        ? `no RPC at ${echo(path)}: did you mean ${near}?`
        : `no RPC at ${echo(path)}: RPCs are POST /package.Service/Method, e.g. POST ${example}`,
    };
  }
  if (status === 405) {
    const m = methods.find((x) => x.path === path);
    return {
      code: "unimplemented",
      message: `${echo(req.method ?? "")} is not allowed on ${echo(path)}: call it with POST${
        m?.get ? " (or a Connect GET: ?connect=v1&encoding=json&message=…)" : ""
      }`,
    };
  }
  if (status === 415) {
    const ct = req.contentType;
    return {
      code: "invalid_argument",
      message: `${ct ? `content-type '${echo(ct)}' is not accepted` : "the content-type is missing"}: send ${ACCEPTED_CONTENT_TYPES}; with curl: -H 'content-type: application/json'`,
    };
  }
  return undefined;
}

/** True for the requests of gRPC and gRPC-Web clients, which must see connect-node's answers unchanged. */
function isGrpc(contentType: string | undefined): boolean {
  return contentType?.toLowerCase().startsWith("application/grpc") === true;
}

/**
 * Wraps a connect-node handler serving `services` so its bodiless 404, 405 and
 * 415 answers carry a readable Connect error (same status). See the module
 * comment for what is left untouched.
 */
export function withReadableRefusals(
  services: readonly DescService[],
  next: (req: Req, res: Res) => void,
): (req: Req, res: Res) => void {
  const methods = methodPaths(services);
  const known = new Set(methods.map((m) => m.path));
  return (req, res) => {
    const contentType = req.headers["content-type"];
    if (isGrpc(contentType) || req.method === "HEAD") return next(req, res);
    // The common case: a Connect POST of one of our methods in a content type
    // connect-node takes can get none of the bodiless 404, 405 or 415, so it
    // runs without the wrappers below (they cost every request a few µs).
    if (
      req.method === "POST" &&
      (contentType === "application/json" || contentType === "application/proto") &&
      known.has(req.url ?? "")
    ) {
      return next(req, res);
    }
    const r = res as ServerResponse;
    const writeHead = r.writeHead.bind(r);
    const end = r.end.bind(r);
    let refused: { status: number; headers: Record<string, unknown>; body: string } | undefined;
    r.writeHead = ((status: number, ...rest: unknown[]) => {
      // connect-node passes (status) or (status, headers).
      const headers = (rest.find((x) => typeof x === "object") ?? {}) as Record<string, unknown>;
      const typed =
        r.hasHeader("content-type") ||
        Object.keys(headers).some((k) => k.toLowerCase() === "content-type");
      const refusal = typed
        ? undefined
        : describeRefusal(status, { method: req.method, url: req.url, contentType }, methods);
      if (!refusal) return writeHead(status, ...(rest as []));
      // Any length connect-node set was for the empty body.
      const kept = Object.fromEntries(
        Object.entries(headers).filter(([k]) => k.toLowerCase() !== "content-length"),
      );
      refused = { status, headers: kept, body: JSON.stringify(refusal) };
      return r;
    }) as typeof r.writeHead;
    r.end = ((...args: unknown[]) => {
      if (refused === undefined) return end(...(args as []));
      const { status, headers, body } = refused;
      refused = undefined;
      const cb = args.find((x) => typeof x === "function") as (() => void) | undefined;
      // connect-node refuses before reading the request body. Over HTTP/2, a
      // client shown an error status while still sending stops sending and
      // the stream ends in a reset (curl: "not closed cleanly") instead of the
      // answer; so the status waits until the body (bounded by the
      // transport's body limits and timeouts) has been read.
      const answer = () => {
        writeHead(status, {
          ...headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        });
        if (cb) end(body, cb);
        else end(body);
      };
      if (req.readableEnded) answer();
      else {
        req.once("end", answer);
        req.resume();
      }
      return r;
    }) as typeof r.end;
    next(req, res);
  };
}
