/**
 * What a denied caller is told about its key. Telling the holder of an old
 * leaked key that it was *revoked* (or expired) confirms it was real, so by
 * default every bad-key reason reads the same to the caller; the exact reason
 * stays in the response's `reason` field (for the application), the logs and
 * the events.
 */
import type { AuthReason } from "../keys/authorizer.js";

/** `generic`: one wording for every bad key; `detailed`: the exact reason. */
export type DenialDetail = "generic" | "detailed";

const BAD_KEY: ReadonlySet<AuthReason> = new Set([
  "MALFORMED_KEY",
  "UNKNOWN_KEY",
  "EXPIRED_KEY",
  "REVOKED_KEY",
]);

/** The wording shown for a bad key in generic mode. */
export const GENERIC_BAD_KEY = { error: "invalid_key", message: "the API key is not valid" };

/**
 * The caller-facing `error` code and message of a denial: for a malformed,
 * unknown, expired or revoked key in generic mode, GENERIC_BAD_KEY; otherwise
 * the reason in lower case and the decision's own message.
 */
export function publicDenial(
  detail: DenialDetail,
  reason: AuthReason,
  message: string,
): { error: string; message: string } {
  if (detail === "generic" && BAD_KEY.has(reason)) return GENERIC_BAD_KEY;
  return { error: reason.toLowerCase(), message };
}
