import { createHash, timingSafeEqual } from "node:crypto";
import { apiError } from "./errors.js";

/** A named management token (the name attributes actions in logs and audit events). */
export interface ManagementToken {
  name: string;
  token: string;
}

/**
 * Checks `authorization: Bearer <token>` for management RPCs. Tokens are compared
 * as SHA-256 digests with timingSafeEqual, so neither length nor content leaks
 * through timing. With no token configured, management is open — allowed only
 * when every listener is on loopback (enforced at startup, see main.ts).
 */
export class ManagementAuth {
  private readonly digests: { name: string; digest: Buffer }[];

  constructor(tokens: readonly ManagementToken[]) {
    this.digests = tokens.map((t) => ({ name: t.name, digest: sha256(t.token) }));
  }

  /** True when no token is configured (loopback dev mode). */
  get open(): boolean {
    return this.digests.length === 0;
  }

  /** Returns the acting token's name, or throws UNAUTHENTICATED. */
  check(headers: Headers): string {
    if (this.open) return "dev-mode";
    const h = headers.get("authorization");
    if (!h) throw apiError("MANAGEMENT_TOKEN_REQUIRED");
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
    if (!m) throw apiError("MANAGEMENT_TOKEN_INVALID");
    const presented = sha256(m[1] as string);
    let match: string | undefined;
    // Compare against every token without early exit.
    for (const t of this.digests) {
      if (timingSafeEqual(presented, t.digest) && match === undefined) match = t.name;
    }
    if (match === undefined) throw apiError("MANAGEMENT_TOKEN_INVALID");
    return match;
  }
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
