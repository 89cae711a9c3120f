/**
 * The error registry: every failure a caller can see, with its stable code,
 * public message and wire code. Handlers throw `apiError(code)`; nothing else
 * creates ConnectErrors, and no message ever includes caller input that might
 * be a secret.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Each entry: wire code and the public message. */
export const ERRORS = {
  MANAGEMENT_TOKEN_REQUIRED: {
    code: Code.Unauthenticated,
    message: "this RPC needs the management token: send 'authorization: Bearer <token>'",
  },
  MANAGEMENT_TOKEN_INVALID: {
    code: Code.Unauthenticated,
    message: "the management token is not valid",
  },
  MANAGEMENT_TOKEN_READ_ONLY: {
    code: Code.PermissionDenied,
    message: "this management token is read-only: changes need a full token",
  },
  DEV_MODE_FOREIGN_CALLER: {
    code: Code.PermissionDenied,
    message:
      "dev mode (no management token) takes management calls only from loopback hosts and origins",
  },
  INVALID_SECRET: {
    code: Code.Unauthenticated,
    message: "the presented secret is not the current secret of an active key",
  },
  KEY_NOT_FOUND: { code: Code.NotFound, message: "no key has this id" },
  KEY_REVOKED: { code: Code.FailedPrecondition, message: "the key is revoked and cannot change" },
  CONCURRENT_UPDATE: {
    code: Code.Aborted,
    message: "the key was changed concurrently too many times; retry",
  },
  PEPPER_MISMATCH: {
    code: Code.FailedPrecondition,
    message:
      "the records were exported with another pepper (pepper_fingerprint_prefix differs from this server's): their digests match no secret here",
  },
  NOT_IMPLEMENTED: {
    code: Code.Unimplemented,
    message: "this RPC is not available yet in this version",
  },
  TOO_MANY_STREAMS: {
    code: Code.ResourceExhausted,
    message: "this replica serves the most live streams it allows (64 of each kind); retry later",
  },
  STORE_UNAVAILABLE: { code: Code.Unavailable, message: "the store is unavailable" },
  STORE_OUT_OF_MEMORY: {
    code: Code.Unavailable,
    message: "the store is out of memory (Redis maxmemory reached): it refuses writes",
  },
  INTERNAL: { code: Code.Internal, message: "internal error" },
} as const satisfies Record<string, { code: Code; message: string }>;

/** A registry entry's name. */
export type ErrorName = keyof typeof ERRORS;

/** Creates the ConnectError of a registry entry. */
export function apiError(name: ErrorName): ConnectError {
  const e = ERRORS[name];
  return new ConnectError(e.message, e.code, undefined, undefined, name);
}
