/**
 * Console sessions: the browser's EventSource cannot send an Authorization
 * header, so a login POST (with the management token as a Bearer header)
 * mints a random session id that travels as an HttpOnly, SameSite=Strict
 * cookie scoped to /console/api/. The token itself never goes into a cookie;
 * a session remembers only the token's name and whether it is read-only.
 */
import { randomBytes } from "node:crypto";

/** Most sessions held at once; the oldest is dropped beyond it. */
export const MAX_SESSIONS = 64;
/** A session's life, ms: short, so a stolen cookie is worth little. */
export const SESSION_TTL_MS = 15 * 60_000;
/** The cookie's name. */
export const SESSION_COOKIE = "tollgate_console";

/** Who a session acts as. */
export interface ConsoleSession {
  name: string;
  readOnly: boolean;
  expiresAt: number;
}

/** Bounded, expiring session table. */
export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();

  constructor(private readonly now: () => number) {}

  /** Mints a session; returns its id (256 random bits, base64url). */
  open(name: string, readOnly: boolean): string {
    const id = randomBytes(32).toString("base64url");
    if (this.sessions.size >= MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    this.sessions.set(id, { name, readOnly, expiresAt: this.now() + SESSION_TTL_MS });
    return id;
  }

  /** The live session of a Cookie header, if any. */
  find(cookieHeader: string | undefined): ConsoleSession | undefined {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id === undefined) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  /** Ends the session of a Cookie header. */
  close(cookieHeader: string | undefined): void {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (id !== undefined) this.sessions.delete(id);
  }

  /** Sessions held now. */
  get size(): number {
    return this.sessions.size;
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
