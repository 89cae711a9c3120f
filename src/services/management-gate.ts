/**
 * Management authentication at the edge of every management RPC: the token
 * check, and what a failure costs the caller — counted, logged and recorded
 * (once per interval, with the count, so a guessing flood writes a bounded
 * amount), and answered late once failures pile up.
 */
import { ConnectError } from "@connectrpc/connect";
import type { CallContext } from "./call-context.js";
import type { ManagementAccess } from "./management-auth.js";
import type { ServiceDeps } from "./service-deps.js";

/** One warning and one `management_auth_failure` event at most this often, ms. */
const REPORT_EVERY_MS = 10_000;

/**
 * The acting token's name; throws UNAUTHENTICATED (after any hold) if the
 * token is missing or wrong, PERMISSION_DENIED (at once: the token is right,
 * nothing is being guessed) if a read-only token asks for a `change`.
 */
export async function authenticateManagement(
  d: ServiceDeps,
  headers: CallContext["requestHeader"],
  rpc: string,
  access: ManagementAccess = "change",
): Promise<string> {
  try {
    return d.management.check(headers, access);
  } catch (err) {
    const reason = err instanceof ConnectError ? (err.cause as string | undefined) : undefined;
    if (reason === "MANAGEMENT_TOKEN_READ_ONLY") throw err;
    const why =
      reason === "MANAGEMENT_TOKEN_REQUIRED"
        ? "missing"
        : reason === "DEV_MODE_FOREIGN_CALLER"
          ? "foreign_caller"
          : "invalid";
    d.metrics.managementAuthFailures.inc({ reason: why });
    const now = d.clock.now();
    const hold = d.management.failed(now);
    const failures = d.management.takeReport(now, REPORT_EVERY_MS);
    if (failures > 0) {
      d.log.warn(
        { rpc, failures, reason: why },
        "management authentication failed (count since the last report)",
      );
      d.events.recorder.emit({
        type: "management_auth_failure",
        subject: "management",
        subjectKind: "caller",
        severity: "medium",
        attributes: { rpc, failures: String(failures), reason: why },
      });
    }
    if (hold > 0) await new Promise((r) => setTimeout(r, hold));
    throw err;
  }
}
