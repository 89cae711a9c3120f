/**
 * `tollgate usage report --id ID --key KEY_ID --cost N`: charges a cost known
 * after the response (ReportUsage) and prints each limit after the charge.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import {
  ReportUsageRequestSchema,
  type ReportUsageResponse,
  ReportUsageResponseSchema,
} from "../gen/tollgate/v1/usage_report_pb.js";
import { table } from "./check-config-command.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";

/** The flags of `usage report` (besides the client flags). */
export const USAGE_REPORT_FLAGS = [
  "id",
  "key",
  "subject",
  "ip",
  "endpoint",
  "method",
  "path",
  "tier",
  "cost",
] as const;

const HELP = `Usage: tollgate usage report --id ID --cost N [--key KEY_ID | --tier T] [options]

Charges N (a cost known only after the response: tokens, bytes, rows) to the
limits a CheckRateLimit with the same facts would charge, without denying; the
next decision is denied until the debt drains or the window ends. The same
--id again within 24 hours charges nothing ("duplicate"). Needs the token.

Options:
  --id ID                 the report's idempotency key (1..128 of [A-Za-z0-9._:-])
  --cost N                the cost, 1..1000000
  --key KEY_ID            the key whose limits are charged
  --subject S, --ip IP    for by: subject and by: ip limits
  --endpoint NAME         a policy endpoint (else --method and --path)
  --method M, --path P    matched to an endpoint
  --tier T                the tier, without --key
  --server URL, --token-file F, --json (as for tollgate keys)

Example:
  tollgate usage report --id resp-7f3a --key key_AbCdEfGhIjKlMnOp --endpoint chat --cost 1250
`;

/** Renders a report's response: whether it charged, then each limit. */
export function renderUsageReport(id: string, res: ReportUsageResponse): string {
  const head = res.duplicate
    ? `report ${id} was already charged: nothing charged now`
    : `report ${id} charged`;
  const rows = res.limits.map((l) => [
    l.name,
    String(l.remaining),
    `${Math.ceil((l.reset ? durationMs(l.reset) : 0) / 1000)}s`,
    l.exceeded ? "over (refused until it drains)" : "ok",
  ]);
  const out = [head];
  if (rows.length > 0)
    out.push("", ...table(["limit", "remaining", "reset", "next request"], rows));
  else out.push("(no limit applies)");
  return `${out.join("\n")}\n`;
}

/** Runs `tollgate usage report` (argv starts with "report"); returns the exit code. */
export async function usageReportCommand(argv: string[]): Promise<number> {
  const cl = parseCommandLine("tollgate usage", argv, { report: USAGE_REPORT_FLAGS }, HELP, {
    report: HELP,
  });
  if (typeof cl === "number") return cl;
  const { o, str } = cl;
  const id = str("id");
  const cost = Number(str("cost"));
  if (id === "" || !Number.isInteger(cost) || cost < 1) {
    process.stderr.write("tollgate usage report: --id and --cost (an integer ≥ 1) are required\n");
    return 2;
  }
  const { tollgate, baseUrl } = clientsFromOptions(o);
  try {
    const res = await tollgate.reportUsage(
      create(ReportUsageRequestSchema, {
        id,
        keyId: str("key"),
        subject: str("subject"),
        clientIp: str("ip"),
        endpoint: str("endpoint"),
        method: str("method"),
        path: str("path"),
        tier: str("tier"),
        cost,
      }),
    );
    process.stdout.write(
      o.json
        ? `${toJsonString(ReportUsageResponseSchema, res, { prettySpaces: 2 })}\n`
        : renderUsageReport(id, res),
    );
    return 0;
  } catch (err) {
    return reportRpcError("tollgate usage report", err, baseUrl);
  }
}
