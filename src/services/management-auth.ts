import { createHash, timingSafeEqual } from "node:crypto";
import { apiError } from "./errors.js";

/** A named management token (the name attributes actions in logs and audit events). */
export interface ManagementToken {
  name: string;
  token: string;
  /** Look-only: `check(…, "read")` accepts it, `check(…, "change")` refuses it. */
  readOnly?: boolean;
}

/**
 * What a call needs: `read` (lists, gets, usage, events — what the console's
 * viewers need) or `change` (anything that writes or exports key material).
 */
export type ManagementAccess = "read" | "change";

/** Options of ManagementAuth's failure throttle. */
export interface ManagementAuthOptions {
  /** Failures within `windowMs` answered at once. Default 10. */
  burst?: number;
  /** The window failures are counted over, ms. Default 10 000. */
  windowMs?: number;
  /** Longest hold of a failed answer, ms; 0 disables holding. Default 1 000. */
  maxDelayMs?: number;
}

/** The first hold past the burst, ms; each further failure doubles it. */
const FIRST_DELAY_MS = 50;

/**
 * Checks `authorization: Bearer <token>` for management RPCs. Tokens are compared
 * as SHA-256 digests with timingSafeEqual, so neither length nor content leaks
 * through timing. With no token configured, management is open — allowed only
 * when every listener is on loopback (enforced at startup, see main.ts).
 */
export class ManagementAuth {
  private readonly digests: { name: string; digest: Buffer; readOnly: boolean }[];
  private readonly burst: number;
  private readonly windowMs: number;
  private readonly maxDelayMs: number;
  private windowStart = Number.NEGATIVE_INFINITY;
  private failures = 0;
  private unreported = 0;
  private lastReport = Number.NEGATIVE_INFINITY;

  constructor(tokens: readonly ManagementToken[], options: ManagementAuthOptions = {}) {
    this.digests = tokens.map((t) => ({
      name: t.name,
      digest: sha256(t.token),
      readOnly: t.readOnly === true,
    }));
    this.burst = options.burst ?? 10;
    this.windowMs = options.windowMs ?? 10_000;
    this.maxDelayMs = options.maxDelayMs ?? 1_000;
  }

  /**
   * Counts one failed authentication at `now` and returns how long to hold
   * its answer, ms: 0 within the burst, then doubling up to the maximum. The
   * count is global, not per client (on loopback every caller shares one
   * address); a valid token is never held, so guessing cannot lock out an operator.
   */
  failed(now: number): number {
    if (now - this.windowStart > this.windowMs) {
      this.windowStart = now;
      this.failures = 0;
    }
    this.failures++;
    this.unreported++;
    const over = this.failures - this.burst;
    if (over <= 0 || this.maxDelayMs === 0) return 0;
    return Math.min(this.maxDelayMs, FIRST_DELAY_MS * 2 ** Math.min(over - 1, 20));
  }

  /**
   * Failures not yet reported, if at least `everyMs` passed since the last
   * report (else 0): one log line and one event per interval, however many failures.
   */
  takeReport(now: number, everyMs: number): number {
    if (this.unreported === 0 || now - this.lastReport < everyMs) return 0;
    const n = this.unreported;
    this.unreported = 0;
    this.lastReport = now;
    return n;
  }

  /** True if the token named `name` is read-only (false for unknown names and dev mode). */
  readOnly(name: string): boolean {
    return this.digests.some((t) => t.name === name && t.readOnly);
  }

  /** True when no token is configured (loopback dev mode). */
  get open(): boolean {
    return this.digests.length === 0;
  }

  /**
   * Returns the acting token's name, or throws UNAUTHENTICATED (no or wrong
   * token) or PERMISSION_DENIED (a read-only token for a `change`). Callers
   * that do not say what they need get `change`: a new RPC refuses read-only
   * tokens until someone decides it only reads.
   */
  check(
    headers: { get(name: string): string | null },
    access: ManagementAccess = "change",
  ): string {
    if (this.open) {
      refuseForeignCaller(headers);
      return "dev-mode";
    }
    const h = headers.get("authorization");
    if (!h) throw apiError("MANAGEMENT_TOKEN_REQUIRED");
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
    if (!m) throw apiError("MANAGEMENT_TOKEN_INVALID");
    const presented = sha256(m[1] as string);
    let match: { name: string; readOnly: boolean } | undefined;
    // Compare against every token without early exit.
    for (const t of this.digests) {
      if (timingSafeEqual(presented, t.digest) && match === undefined) match = t;
    }
    if (match === undefined) throw apiError("MANAGEMENT_TOKEN_INVALID");
    if (match.readOnly && access === "change") throw apiError("MANAGEMENT_TOKEN_READ_ONLY");
    return match.name;
  }
}

/**
 * Dev mode trusts loopback, so it must be loopback for real: a browser page of
 * another site that reaches 127.0.0.1 through DNS rebinding still sends its
 * own Host (or a foreign Origin). Calls without either (gRPC clients, curl
 * with no Host override) are loopback by construction of the listener.
 */
function refuseForeignCaller(headers: { get(name: string): string | null }): void {
  const host = headers.get("host");
  if (host !== null && !isLoopbackName(hostOf(host))) throw apiError("DEV_MODE_FOREIGN_CALLER");
  const origin = headers.get("origin");
  if (origin !== null) {
    let name = "";
    try {
      name = new URL(origin).hostname;
    } catch {
      // "null" (sandboxed frames, file://) and garbage are foreign.
    }
    if (!isLoopbackName(name)) throw apiError("DEV_MODE_FOREIGN_CALLER");
  }
}

/** The host name of a Host header value (`name`, `name:port`, `[v6]:port`). */
function hostOf(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]"));
  const i = h.lastIndexOf(":");
  return i >= 0 && h.indexOf(":") === i ? h.slice(0, i) : h;
}

/** localhost (and *.localhost), 127.0.0.0/8 and ::1. */
function isLoopbackName(name: string): boolean {
  const n = name.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return (
    n === "localhost" ||
    n.endsWith(".localhost") ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(n) ||
    n === "::1"
  );
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
