/**
 * What the HTTP/2 guard knows of one session: its streams, the streams its
 * client reset, and how Tollgate ends it.
 *
 * Rapid reset (CVE-2023-44487): every stream the client resets while it is
 * open — whether or not an answer was on its way (grpc-js answers a request
 * that ends without a message at once, and nghttp2 counts that reset too) —
 * is counted. Past 100 of them making up half of the session's streams
 * (Envoy's premature-reset rule), or past a token bucket (burst 500, 25/s)
 * stricter than nghttp2's own (1000, 33/s), the session is sent GOAWAY
 * ENHANCE_YOUR_CALM and destroyed 500 ms later. nghttp2's own limit sends
 * GOAWAY and then stops reading — on Node 20 the socket then stays open
 * forever — so this one must always trip first.
 */
import { constants, type ServerHttp2Session } from "node:http2";
import type { Duplex } from "node:stream";
import type { Http2Guard } from "./http2-guard.js";
import type { PortName } from "./transport-observer.js";

const { NGHTTP2_ENHANCE_YOUR_CALM } = constants;

/** Premature resets before Envoy's ratio rule (≥ half of the streams) applies. */
export const RESET_RATIO_MIN = 100;
/** Token bucket of premature resets: burst. */
export const RESET_BURST = 500;
/** Token bucket of premature resets: refill per second. */
export const RESET_RATE_PER_S = 25;
/** From a rapid-reset GOAWAY to destroying the connection, ms. */
export const CUTOFF_GRACE_MS = 500;
/** From an idle or shutdown GOAWAY to destroying a connection the client has not closed, ms. */
export const CLOSE_GRACE_MS = 2000;

/** What the guard knows of one session. */
export class SessionState {
  /** Streams admitted, ever. */
  streams = 0;
  /** Streams open now. */
  open = 0;
  /** Streams the client reset while open. */
  premature = 0;
  private tokens = RESET_BURST;
  private tokensAt = Date.now();
  /** Tick of the last stream opened or closed. */
  lastStreamTick: number;
  /** Tick of the last PING answer. */
  lastPongTick: number;
  /** Tick a PING was sent and not yet answered; 0: none outstanding. */
  pingTick = 0;
  /** Whether the client acknowledged our SETTINGS. */
  settled = false;
  /** Whether Tollgate sent GOAWAY (no more idle, ping or reset handling). */
  closing = false;
  readonly onPong: (err: Error | null) => void;

  constructor(
    readonly guard: Http2Guard,
    readonly session: ServerHttp2Session,
    readonly port: PortName,
    /** The connection as handed over (raw TCP or TLS), destroyed after a GOAWAY grace. */
    readonly socket: Duplex | undefined,
    readonly createdTick: number,
  ) {
    this.lastStreamTick = createdTick;
    this.lastPongTick = createdTick;
    this.onPong = (err) => {
      if (err) return;
      this.pingTick = 0;
      this.lastPongTick = guard.tick;
    };
  }

  /** Counts a stream the client reset while open; cuts the session off past the bounds. */
  prematureReset(): void {
    // A session going away resets its open streams itself: not the client's doing.
    if (this.closing || this.session.destroyed || this.session.closed) return;
    this.premature++;
    if (this.premature >= RESET_RATIO_MIN && this.premature * 2 >= this.streams) {
      this.cutOff();
      return;
    }
    const now = Date.now();
    this.tokens = Math.min(
      RESET_BURST,
      this.tokens + ((now - this.tokensAt) * RESET_RATE_PER_S) / 1000,
    );
    this.tokensAt = now;
    this.tokens -= 1;
    if (this.tokens < 0) this.cutOff();
  }

  private cutOff(): void {
    this.closing = true;
    try {
      this.session.goaway(NGHTTP2_ENHANCE_YOUR_CALM, this.session.state.lastProcStreamID ?? 0);
    } catch {
      // Already destroyed: nothing to tell the client.
    }
    this.destroyAfter(CUTOFF_GRACE_MS);
    this.guard.observer.rapidResetCutoff(this.port);
  }

  /**
   * Sends GOAWAY (NO_ERROR): running streams finish, then the session closes;
   * after `graceMs` (if given) it is destroyed whatever the client does.
   */
  close(graceMs?: number): void {
    if (this.closing) return;
    this.closing = true;
    this.session.close();
    if (graceMs !== undefined) this.destroyAfter(graceMs);
  }

  /** Destroys the session and its connection after `ms` (unless gone by then). */
  destroyAfter(ms: number): void {
    setTimeout(() => this.destroy(), ms).unref();
  }

  /** Destroys the session and the socket under it now. */
  destroy(): void {
    if (!this.session.destroyed) this.session.destroy();
    // Node ends the socket gracefully and may wait for the client forever.
    this.socket?.destroy();
  }
}
