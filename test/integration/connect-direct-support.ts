/**
 * Tools of the direct Connect JSON path's tests (connect-direct.test.ts): the
 * RPC servers started in-process on both ports with handlers the test
 * controls, and one HTTP request sent as the test writes it — over a raw
 * HTTP/1.1 socket (so no client adds `accept-encoding` or fixes a wrong
 * `content-length`) or a fresh h2c session — with the whole answer kept.
 */
import { connect as connectHttp2 } from "node:http2";
import { connect as connectTcp } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { Handlers } from "../../src/services/call-context.js";
import { bindService, type RpcServers, startRpcServers } from "../../src/transport/servers.js";
import { testLimits } from "./grpc-direct-support.js";

/** Servers of one service on 127.0.0.1 (main and HTTP ports, both port 0), serving. */
export async function startBothPorts<S extends DescService>(
  desc: S,
  impl: Handlers<S>,
  o: { maxMessageBytes: number; corsOrigins?: readonly string[] },
): Promise<RpcServers & { httpPort: number }> {
  const servers = await startRpcServers({
    services: [bindService(desc, impl)],
    addr: "127.0.0.1:0",
    httpAddr: "127.0.0.1:0",
    maxMessageBytes: o.maxMessageBytes,
    ...(o.corsOrigins !== undefined && { corsOrigins: o.corsOrigins }),
    limits: testLimits(),
  });
  servers.setServing(true);
  if (servers.httpPort === undefined) throw new Error("the HTTP port did not start");
  return { ...servers, httpPort: servers.httpPort };
}

/** How a request reaches the server: HTTP/1.1 (either port) or h2c (HTTP port). */
export type Wire = "http1" | "h2c";

/** One request as sent: method, path, headers exactly as given, body bytes. */
export interface RawRequest {
  method?: string;
  path: string;
  /** Header names in lower case; an array is sent as repeated fields. */
  headers: Record<string, string | string[]>;
  /** Sent as is: no content-length is added or corrected. */
  body?: Buffer | string;
  /** h2c: leave the request open (no end of the body) after writing it. */
  keepOpen?: boolean;
  /** HTTP/1.1: end the connection's sending side after the request (the reading side stays open). */
  halfClose?: boolean;
}

/** An HTTP answer, everything kept. */
export interface HttpAnswer {
  status: number;
  /** Header names in lower case; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** h2c: the RST_STREAM code of a stream that closed without a response (status 0 then). */
  rstCode?: number;
}

/** A request in progress: `answer` settles once the response is complete. */
export interface SentRequest {
  answer: Promise<HttpAnswer>;
  /** Tears the connection down (a client that went away). */
  destroy(): void;
}

/** Sends `r` over a fresh connection to 127.0.0.1:`port`. */
export function send(wire: Wire, port: number, r: RawRequest): SentRequest {
  return wire === "h2c" ? sendH2c(port, r) : sendHttp1(port, r);
}

/** Sends `r` and awaits the answer (rejecting if none comes within 10 s). */
export async function exchange(wire: Wire, port: number, r: RawRequest): Promise<HttpAnswer> {
  const sent = send(wire, port, r);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer to ${r.path} over ${wire}`)), 10_000);
  });
  try {
    return await Promise.race([sent.answer, timeout]);
  } finally {
    clearTimeout(timer);
    sent.destroy();
  }
}

function sendHttp1(port: number, r: RawRequest): SentRequest {
  const socket = connectTcp(port, "127.0.0.1");
  const lines = [`${r.method ?? "POST"} ${r.path} HTTP/1.1`, `host: 127.0.0.1:${port}`];
  for (const [name, value] of Object.entries(r.headers)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (r.body !== undefined) socket.write(r.body);
  if (r.halfClose) socket.end();
  const answer = new Promise<HttpAnswer>((resolve, reject) => {
    let raw = Buffer.alloc(0);
    const tryParse = () => {
      const parsed = parseHttp1(raw);
      if (parsed) {
        resolve(parsed);
        socket.destroy();
      }
    };
    socket.on("data", (c: Buffer) => {
      raw = Buffer.concat([raw, c]);
      tryParse();
    });
    socket.on("close", () => {
      tryParse();
      reject(new Error(`connection closed without a complete answer: ${raw.toString("latin1")}`));
    });
    socket.on("error", () => {});
  });
  answer.catch(() => {});
  return { answer, destroy: () => socket.destroy() };
}

/** The first complete response in `raw` (content-length or chunked body), or undefined. */
function parseHttp1(raw: Buffer): HttpAnswer | undefined {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine = "", ...fields] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const f of fields) {
    const i = f.indexOf(":");
    const name = f.slice(0, i).trim().toLowerCase();
    const value = f.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let rest = raw.subarray(end + 4);
  if (headers["transfer-encoding"] === "chunked") {
    const chunks: Buffer[] = [];
    for (;;) {
      const lineEnd = rest.indexOf("\r\n");
      if (lineEnd < 0) return undefined;
      const size = Number.parseInt(rest.subarray(0, lineEnd).toString("latin1"), 16);
      if (rest.length < lineEnd + 2 + size + 2) return undefined;
      if (size === 0) return { status, headers, body: Buffer.concat(chunks) };
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      rest = rest.subarray(lineEnd + 2 + size + 2);
    }
  }
  const length = Number(headers["content-length"] ?? 0);
  if (rest.length < length) return undefined;
  return { status, headers, body: rest.subarray(0, length) };
}

function sendH2c(port: number, r: RawRequest): SentRequest {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const stream = session.request({
    ":method": r.method ?? "POST",
    ":path": r.path,
    ...r.headers,
  });
  stream.on("error", () => {});
  if (r.body !== undefined) stream.write(r.body);
  if (!r.keepOpen) stream.end();
  const answer = new Promise<HttpAnswer>((resolve, reject) => {
    let status = 0;
    const headers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      for (const [name, value] of Object.entries(h)) {
        if (name.startsWith(":") || value === undefined) continue;
        headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
      }
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status, headers, body: Buffer.concat(chunks) }));
    // A stream reset before any response (nghttp2 refusing a request) is an answer too.
    stream.on("close", () => {
      if (status === 0)
        resolve({ status, headers, body: Buffer.alloc(0), rstCode: stream.rstCode });
      else reject(new Error(`stream closed mid-answer (rst ${stream.rstCode})`));
    });
  });
  answer.catch(() => {});
  return { answer, destroy: () => session.destroy() };
}
