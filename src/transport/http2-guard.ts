/**
 * Guards the HTTP/2 sessions of both engines (grpc-js on the main port,
 * connect-node on the HTTP port) — Node's http2 and grpc-js leave these gaps
 * for connections handed over by the sniffer:
 *
 * - **Handshake**: a session whose client has not acknowledged our SETTINGS
 *   within the header timeout is destroyed (our limits only bind once they
 *   are acknowledged, see below).
 * - **Header lists**: Node enforces SETTINGS_MAX_HEADER_LIST_SIZE only after
 *   the client acknowledged it; a stream that arrives before is measured here
 *   (names + values + 32 per field, as HPACK counts) and reset
 *   ENHANCE_YOUR_CALM when over the bound.
 * - **In flight**: streams across every session share one budget of requests
 *   and of body bytes (RequestBudget); a stream beyond it is refused
 *   (REFUSED_STREAM, which clients may retry) or reset (ENHANCE_YOUR_CALM).
 * - **Body timeout**: a stream whose request body has not ended within the
 *   body timeout is reset (CANCEL).
 * - **Rapid reset** (CVE-2023-44487): counted per session, see
 *   http2-session.ts.
 * - **Idle**: a session with no stream for the idle timeout gets GOAWAY
 *   (NO_ERROR) and is closed; a session with a stream in flight never is.
 * - **Dead sessions**: a quiet session is pinged (after a quarter of the idle
 *   timeout, at most every 10 s); one that does not answer within as long is
 *   destroyed. This also reclaims sessions nghttp2 terminated by itself.
 * - Every GOAWAY Tollgate sends is followed, after a grace, by destroying the
 *   socket itself: Node's graceful close waits for the client to close, and
 *   a client that never does would keep the descriptor.
 *
 * Per stream this costs a 'close' and a 'resume' (then 'data') listener —
 * shared functions, no closures —, three properties and a Set entry while
 * the body is pending; timeouts are checked by one sweep per tick (a tenth
 * of the shortest timeout, 50 ms … 1 s), not by a timer per stream.
 */
import {
  constants,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import type { Duplex } from "node:stream";
import { CLOSE_GRACE_MS, SessionState } from "./http2-session.js";
import type { RequestBudget } from "./request-budget.js";
import type { PortName, TransportObserver } from "./transport-observer.js";

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM } =
  constants;

/** Longest wait before pinging a quiet session, and for its answer, ms. */
export const PING_MAX_MS = 10_000;
/**
 * Node's per-session memory bound (maxSessionMemory, MB: HPACK tables, header
 * blocks being decoded, queued frames); past it new streams are refused.
 * This is Node's default, which grpc-js switches off unless told.
 */
export const SESSION_MEMORY_MB = 10;

/** Options of an Http2Guard. */
export interface Http2GuardOptions {
  /** Until the client acknowledges our SETTINGS, ms. */
  headerTimeoutMs: number;
  /** From a stream's headers to the end of its request body, ms. */
  bodyTimeoutMs: number;
  /** A session without a stream for this long gets GOAWAY, ms. */
  idleTimeoutMs: number;
  /** Largest header list of a request, bytes (HPACK accounting). */
  maxHeaderListBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of every session. */
  maxStreamsPerConnection: number;
  /**
   * `:path`s of RPCs whose request is a stream of messages (bidi streaming,
   * e.g. Envoy's RLQS reports): their body never ends while the call lives,
   * so the body timeout runs from the last DATA instead (a stream that sends
   * nothing for that long is reset, as an unfinished body is), and its bytes
   * are not held against the budget (each message is bounded by the engine's
   * message size, and the engine reads them one at a time under HTTP/2 flow
   * control). Still one in-flight request of the budget, and one stream of
   * the per-connection cap.
   */
  requestStreamPaths?: ReadonlySet<string>;
  budget: RequestBudget;
  observer: TransportObserver;
}

type StreamListener = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
) => void;

const kSession = Symbol("tollgate.http2.session");
const kStartTick = Symbol("tollgate.http2.startTick");
const kBodyBytes = Symbol("tollgate.http2.bodyBytes");
/** Set on a stream of a requestStreamPaths RPC: timed from its last DATA, its bytes not counted. */
const kRequestStream = Symbol("tollgate.http2.requestStream");
/** kStartTick once the body is known to have ended. */
const BODY_DONE = -1;
/** kStartTick of a stream Tollgate reset itself (not counted as a client reset). */
const RESET_BY_US = -2;

interface GuardedStream extends ServerHttp2Stream {
  [kSession]: SessionState;
  [kStartTick]: number;
  [kBodyBytes]: number;
  [kRequestStream]?: true;
}
interface GuardedSession extends ServerHttp2Session {
  [kSession]?: SessionState;
}

/** Guards the sessions and streams of one or more HTTP/2 servers that share a budget. */
export class Http2Guard {
  /** Sweep count; the clock of every timeout here. */
  tick = 1;
  readonly budget: RequestBudget;
  readonly observer: TransportObserver;
  private readonly o: Http2GuardOptions;
  private readonly sessions = new Set<SessionState>();
  /** Streams whose request body had not ended when they were admitted. */
  private readonly pending = new Set<GuardedStream>();
  private readonly timer: NodeJS.Timeout;
  private readonly headerTicks: number;
  private readonly bodyTicks: number;
  private readonly idleTicks: number;
  private readonly pingTicks: number;
  /** The socket being handed over while its session is created (see handOver). */
  private handingOver: Duplex | undefined;

  constructor(o: Http2GuardOptions) {
    this.o = o;
    this.budget = o.budget;
    this.observer = o.observer;
    const tickMs = Math.min(
      1000,
      Math.max(50, Math.floor(Math.min(o.headerTimeoutMs, o.bodyTimeoutMs) / 10)),
    );
    const ticks = (ms: number) => Math.max(1, Math.ceil(ms / tickMs));
    this.headerTicks = ticks(o.headerTimeoutMs);
    this.bodyTicks = ticks(o.bodyTimeoutMs);
    this.idleTicks = ticks(o.idleTimeoutMs);
    this.pingTicks = ticks(Math.min(PING_MAX_MS, o.idleTimeoutMs / 4));
    this.timer = setInterval(() => this.sweep(), tickMs).unref();
  }

  /**
   * Guards `server`: applies the stream and header-list SETTINGS, and puts
   * the admission check in front of the engine's 'stream' listeners (which
   * then run only for admitted streams). Call after the engine registered.
   */
  attach(server: Http2Server, port: PortName): void {
    server.updateSettings({
      maxConcurrentStreams: this.o.maxStreamsPerConnection,
      maxHeaderListSize: this.o.maxHeaderListBytes,
    });
    const engines = server.listeners("stream") as StreamListener[];
    if (engines.length === 0) throw new Error("http2 guard: the server has no 'stream' listener");
    server.removeAllListeners("stream");
    const engine =
      engines.length === 1
        ? (engines[0] as StreamListener)
        : (stream: ServerHttp2Stream, h: IncomingHttpHeaders, f: number, raw: string[]) => {
            for (const l of engines) l.call(server, stream, h, f, raw);
          };
    // The session decided on admission just before (see track); only
    // admitted streams reach the engine.
    server.on(
      "stream",
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
        if ((stream as Partial<GuardedStream>)[kSession] === undefined) return;
        engine.call(server, stream, headers, flags, raw);
        // The body is counted once the engine starts reading it: a 'data'
        // listener added now would set the stream flowing before a lazy
        // reader (connect-node's) is there, and its first chunks would be lost.
        stream.on("resume", (stream as GuardedStream)[kRequestStream] ? timeFromData : countBody);
      },
    );
    server.on("session", (session: ServerHttp2Session) => this.track(session, port));
  }

  /**
   * Hands `socket` to an engine (`handOver` emits it as a connection); the
   * HTTP/2 session it creates — synchronously — is tied to this socket, so a
   * GOAWAY grace can destroy the socket itself.
   */
  handOver(socket: Duplex, handOver: (socket: Duplex) => void): void {
    this.handingOver = socket;
    try {
      handOver(socket);
    } finally {
      this.handingOver = undefined;
    }
  }

  /**
   * Sends GOAWAY to every session (shutdown): running streams finish, new
   * ones are refused. The caller destroys what is left after its own grace.
   */
  closeSessions(): void {
    for (const st of this.sessions) st.close();
  }

  /** Stops the sweep (shutdown, after the connections were destroyed). */
  stop(): void {
    clearInterval(this.timer);
  }

  private track(session: ServerHttp2Session, port: PortName): void {
    const st = new SessionState(this, session, port, this.handingOver, this.tick);
    (session as GuardedSession)[kSession] = st;
    this.sessions.add(st);
    // Ahead of Node's own listener, which passes the stream on to the
    // server's (the engine's): Node emits 'stream' a tick after the headers,
    // when a stream the client reset at once is destroyed and no longer knows
    // its session — here the session is still known.
    session.prependListener(
      "stream",
      (stream: ServerHttp2Stream, h: IncomingHttpHeaders, _f: number, raw: string[]) =>
        this.admit(st, stream, h, raw),
    );
    session.once("localSettings", () => {
      st.settled = true;
    });
    session.once("close", () => this.sessions.delete(st));
  }

  /**
   * The admission check of a new stream of `st`. An admitted stream is
   * marked (kSession) and counted; a refused one is reset; one the client
   * already reset is only counted as a premature reset and goes no further.
   */
  private admit(
    st: SessionState,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: string[],
  ): void {
    // A stream the engine never sees has no 'error' listener of its own: a
    // reset with an error code would otherwise be an uncaught 'error' event.
    if (stream.destroyed) {
      stream.on("error", ignore);
      st.streams++;
      if (stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR) st.prematureReset();
      return;
    }
    // Refused before any body arrives: the client's DATA for a closed stream
    // is dropped by nghttp2 and never reaches JavaScript.
    if (!this.budget.hasRoom() || this.budget.bodyBytes >= this.budget.maxBodyBytes) {
      stream.on("error", ignore);
      stream.close(NGHTTP2_REFUSED_STREAM);
      this.observer.requestRefused(st.port, this.budget.hasRoom() ? "body_budget" : "inflight");
      return;
    }
    // Node checks the header list itself once the client acknowledged our
    // SETTINGS; before that (or while a SETTINGS change is unacknowledged) we do.
    if (st.session.pendingSettingsAck && headerListBytes(rawHeaders) > this.o.maxHeaderListBytes) {
      stream.on("error", ignore);
      stream.close(NGHTTP2_ENHANCE_YOUR_CALM);
      this.observer.headerListRefused(st.port, "http2");
      return;
    }
    this.budget.inflight++;
    st.streams++;
    st.open++;
    st.lastStreamTick = this.tick;
    const s = stream as GuardedStream;
    s[kSession] = st;
    s[kBodyBytes] = 0;
    if (stream.endAfterHeaders) s[kStartTick] = BODY_DONE;
    else {
      if (this.o.requestStreamPaths?.has(headers[":path"] as string)) s[kRequestStream] = true;
      s[kStartTick] = this.tick;
      this.pending.add(s);
    }
    stream.on("close", onStreamClose);
  }

  /** Resets `stream` as Tollgate's own decision (not counted as a client reset). */
  resetStream(stream: GuardedStream, code: number): void {
    stream[kStartTick] = RESET_BY_US;
    this.pending.delete(stream);
    stream.on("error", ignore);
    stream.close(code);
  }

  /** Stream closed: gives back its share of the budget, counts a client reset. */
  released(stream: GuardedStream): void {
    const st = stream[kSession];
    this.budget.inflight--;
    this.budget.bodyBytes -= stream[kBodyBytes];
    st.open--;
    st.lastStreamTick = this.tick;
    const started = stream[kStartTick];
    if (started >= 0) this.pending.delete(stream);
    // Any reset we did not make ourselves is the client's: nghttp2 counts
    // every RST_STREAM it receives, even one after an early answer (grpc-js
    // answers a request that ends without a message at once).
    const code = stream.rstCode;
    if (code !== undefined && code !== NGHTTP2_NO_ERROR && started !== RESET_BY_US) {
      st.prematureReset();
    }
  }

  private sweep(): void {
    const tick = ++this.tick;
    for (const st of this.sessions) {
      const s = st.session;
      if (s.destroyed) continue;
      if (!st.settled) {
        if (tick - st.createdTick >= this.headerTicks) {
          this.observer.timedOut(st.port, "header");
          st.destroy();
        }
        continue;
      }
      if (st.open > 0 || st.closing || s.closed) continue;
      if (st.pingTick > 0) {
        if (tick - st.pingTick >= this.pingTicks) {
          this.observer.timedOut(st.port, "ping");
          st.destroy();
        }
      } else if (tick - st.lastStreamTick >= this.idleTicks) {
        this.observer.timedOut(st.port, "idle");
        st.close(CLOSE_GRACE_MS);
      } else if (tick - Math.max(st.lastStreamTick, st.lastPongTick) >= this.pingTicks) {
        st.pingTick = tick;
        try {
          if (!s.ping(st.onPong)) st.pingTick = 0;
        } catch {
          st.pingTick = 0;
        }
      }
    }
    for (const stream of this.pending) {
      if (tick - stream[kStartTick] < this.bodyTicks) continue;
      this.pending.delete(stream);
      if (stream.destroyed) continue;
      if (stream.state.remoteClose) {
        stream[kStartTick] = BODY_DONE;
        continue;
      }
      this.observer.timedOut(stream[kSession].port, "body");
      this.resetStream(stream, NGHTTP2_CANCEL);
    }
  }
}

/** 'close' of an admitted stream (shared by all: `this` is the stream). */
function onStreamClose(this: GuardedStream): void {
  this[kSession].guard.released(this);
}

/** 'error' of a stream Tollgate refused or reset: the reset is the answer. */
function ignore(): void {}

/** First 'resume' of an admitted stream: from now on its body is counted. */
function countBody(this: GuardedStream): void {
  this.removeListener("resume", countBody);
  this.on("data", onStreamData);
}

/** First 'resume' of a request stream: from now on its body timeout runs from its last DATA. */
function timeFromData(this: GuardedStream): void {
  this.removeListener("resume", timeFromData);
  this.on("data", onRequestStreamData);
}

/** 'data' of a request stream: the body timeout starts again (its bytes are not counted). */
function onRequestStreamData(this: GuardedStream): void {
  if (this[kStartTick] >= 0) this[kStartTick] = this[kSession].guard.tick;
}

/** 'data' of an admitted stream: counts its body against the budget. */
function onStreamData(this: GuardedStream, chunk: Buffer): void {
  const st = this[kSession];
  const budget = st.guard.budget;
  this[kBodyBytes] += chunk.length;
  budget.bodyBytes += chunk.length;
  if (budget.bodyBytes > budget.maxBodyBytes && this[kStartTick] !== RESET_BY_US) {
    st.guard.observer.requestRefused(st.port, "body_budget");
    st.guard.resetStream(this, NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

/** Size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2). */
export function headerListBytes(rawHeaders: string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i++) n += (rawHeaders[i] as string).length + 16;
  return n;
}
