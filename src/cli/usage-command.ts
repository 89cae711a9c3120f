/** `tollgate usage KEY_ID`: a key's requests over time, as a table with a small text chart. */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  GetUsageRequestSchema,
  type GetUsageResponse,
  GetUsageResponseSchema,
  UsageGranularity,
} from "../gen/tollgate/v1/key_service_pb.js";
import { table } from "./check-config-command.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";
import { parseDuration } from "./duration.js";
import { usageReportCommand } from "./usage-report-command.js";

const HELP = `Usage: tollgate usage KEY_ID [options]
       tollgate usage report --id ID --cost N ... (tollgate usage report --help)

Prints the key's requests per bucket (with a bar chart) and per endpoint.

Options:
  --since DURATION        how far back (default 1h; e.g. 30m, 24h, 7d)
  --granularity G         minute, hour or day (default: minute up to 2h, hour up to 3d, else day)
  --endpoint NAME         only this policy endpoint ("-": requests matching none)
  --server URL, --token-file F, --json (as for tollgate keys)
`;

const BAR_WIDTH = 40;

/** Renders a usage response as text: bucket table with bars, then endpoint totals. */
export function renderUsage(keyId: string, res: GetUsageResponse): string {
  // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
  const max = res.buckets.reduce((m, b) => (b.requests > m ? b.requests : m), 0n);
  const fmt = (t: GetUsageResponse["buckets"][number]["startTime"]) => {
    const iso = t ? timestampDate(t).toISOString() : "-";
    return res.granularity === UsageGranularity.DAY
      ? iso.slice(0, 10)
      : iso.slice(0, 16).replace("T", " ");
  };
  const rows = res.buckets.map((b) => {
    const len = max === 0n ? 0 : Number((b.requests * BigInt(BAR_WIDTH) + max - 1n) / max);
    return [fmt(b.startTime), String(b.requests), "█".repeat(len) || (b.requests > 0n ? "▏" : "")];
  });
  const out = [
    `usage of ${keyId}: ${res.totalRequests} requests (${UsageGranularity[res.granularity]?.toLowerCase()} buckets, UTC)`,
    "",
    ...table(["from", "requests", ""], rows),
  ];
  if (res.endpoints.length > 0) {
    out.push(
      "",
      ...table(
        ["endpoint", "requests"],
        res.endpoints.map((e) => [e.endpoint, String(e.requests)]),
      ),
    );
  }
  return `${out.join("\n")}\n`;
}

/** Runs `tollgate usage`; returns the exit code. */
export async function usageCommand(argv: string[]): Promise<number> {
  // A key id never reads "report" (key_ + 16 base62): the subcommand is unambiguous.
  if (argv[0] === "report") return usageReportCommand(argv);
  const cl = parseCommandLine("tollgate usage", argv, ["since", "granularity", "endpoint"], HELP);
  if (typeof cl === "number") return cl;
  const { o, positionals, str } = cl;
  const keyId = positionals[0] as string;
  let sinceMs: number;
  try {
    sinceMs = parseDuration(str("since") || "1h");
  } catch (err) {
    process.stderr.write(`tollgate usage: ${(err as Error).message}\n`);
    return 2;
  }
  const g = str("granularity");
  const granularity =
    g === "minute"
      ? UsageGranularity.MINUTE
      : g === "hour"
        ? UsageGranularity.HOUR
        : g === "day"
          ? UsageGranularity.DAY
          : g !== ""
            ? undefined
            : sinceMs <= 2 * 3_600_000
              ? UsageGranularity.MINUTE
              : sinceMs <= 3 * 86_400_000
                ? UsageGranularity.HOUR
                : UsageGranularity.DAY;
  if (granularity === undefined) {
    process.stderr.write("tollgate usage: --granularity must be minute, hour or day\n");
    return 2;
  }
  const { keys, baseUrl } = clientsFromOptions(o);
  const now = Date.now();
  try {
    const res = await keys.getUsage(
      create(GetUsageRequestSchema, {
        keyId,
        startTime: timestampFromMs(now - sinceMs),
        endTime: timestampFromMs(now),
        granularity,
        endpoint: str("endpoint"),
      }),
    );
    process.stdout.write(
      o.json
        ? `${toJsonString(GetUsageResponseSchema, res, { prettySpaces: 2 })}\n`
        : renderUsage(keyId, res),
    );
    return 0;
  } catch (err) {
    return reportRpcError(`tollgate usage`, err, baseUrl);
  }
}
