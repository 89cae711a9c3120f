import type { Socket } from "node:net";

/** The HTTP/2 connection preface starts with these bytes (RFC 9113 §3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * A connection handler that routes each connection by its first bytes: the
 * HTTP/2 prior-knowledge preface goes to `http2`, anything else to `http1`.
 * This puts gRPC (HTTP/2) and Connect / gRPC-Web over HTTP/1.1 (plain `curl`)
 * on one port. A connection that has not said which within `timeoutMs` is
 * destroyed and `onTimeout` called.
 */
export function createProtocolSniffer(
  http2: (socket: Socket) => void,
  http1: (socket: Socket) => void,
  timeoutMs: number,
  onTimeout: () => void = () => {},
): (socket: Socket) => void {
  return (socket) => {
    socket.setNoDelay(true);
    let seen = Buffer.alloc(0);
    const timer = setTimeout(() => {
      onTimeout();
      socket.destroy();
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && n < PREFACE.length) return; // need more bytes to decide
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.pause();
      socket.unshift(seen);
      if (isH2) {
        // Node's Http2Session reads bytes already buffered on the socket (on
        // the next tick); resuming here would emit them as 'data' and lose them.
        http2(socket);
      } else {
        http1(socket);
        socket.resume();
      }
    };
    const onError = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.once("close", () => clearTimeout(timer));
  };
}
