/**
 * A readable 415 on the main port's HTTP/2 side. There, grpc-js serves every
 * stream and refuses one whose content-type is not application/grpc… with a
 * bare 415 — what `curl --http2-prior-knowledge -H 'content-type:
 * application/json'` gets. This keeps the 415 and adds a Connect error body
 * saying where Connect and gRPC-Web are served instead (HTTP/1.1 on this port,
 * or the HTTP port). gRPC streams are never touched: the hook only wraps
 * `respond` of a stream grpc-js is about to refuse.
 */
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Refusal } from "./http-fallback.js";

/** The body of the main port's HTTP/2 415. */
export const GRPC_PORT_REFUSAL: Refusal = {
  code: "invalid_argument",
  message:
    "this port speaks gRPC over HTTP/2 (content-type application/grpc[+proto|+json]); " +
    "Connect (application/json, application/proto) and gRPC-Web are served over HTTP/1.1 " +
    "on this port and over HTTP/1.1 or h2c on the HTTP port (TOLLGATE_HTTP_ADDR)",
};

/**
 * Makes grpc-js's 415 on `server` (the HTTP/2 server of its connection
 * injector) carry GRPC_PORT_REFUSAL. Call before the HTTP/2 guard attaches:
 * the listener is prepended so it runs before grpc-js's own.
 */
export function withReadableGrpcPortRefusal(server: Http2Server): void {
  const body = JSON.stringify(GRPC_PORT_REFUSAL);
  server.prependListener("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const ct = headers["content-type"];
    if (typeof ct === "string" && ct.startsWith("application/grpc")) return;
    if (headers[":method"] === "HEAD") return;
    const respond = stream.respond.bind(stream);
    stream.respond = ((h, options) => {
      if (h?.[":status"] !== 415 || options?.endStream !== true) return respond(h, options);
      // grpc-js refuses before reading the request body; a client shown the
      // status while still sending stops and the stream ends in a reset
      // (curl: "not closed cleanly"). So the answer waits for the body,
      // bounded by the HTTP/2 guard's limits and timeouts.
      const answer = () => {
        if (stream.destroyed || stream.closed) return;
        respond(
          { ...h, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          { ...options, endStream: false },
        );
        stream.end(body);
      };
      if (stream.readableEnded) answer();
      else {
        stream.once("end", answer);
        stream.resume();
      }
    }) as typeof stream.respond;
  });
}
