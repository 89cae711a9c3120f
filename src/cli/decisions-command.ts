/**
 * `tollgate decisions tail`: the decisions of one running replica, from its
 * TailDecisions stream — the most recent ones (from the replica's ring of its
 * last 1000), then, with `--follow`, each as it is taken, until Ctrl-C, a
 * closed pipe or `--limit`.
 */
import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  TailDecisionsRequestSchema,
  type TailDecisionsResponse,
  TailDecisionsResponseSchema,
} from "../gen/tollgate/v1/live_pb.js";
import { INPUT_BOUNDS } from "../util/input-bounds.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";
import { followSession } from "./follow-session.js";

/** Recent decisions printed when `--lines` is not given. */
const DEFAULT_LINES = 10;

const HELP = `Usage: tollgate decisions <command> [options]

Commands:
  tail     this replica's recent decisions, then (--follow) each as it is taken
           [--follow] [--key ID] [--denied] [--lines N] [--limit N]

Options: --server URL, --token-file F, --json (as for tollgate keys)
`;

const SUB_HELP: Record<string, string> = {
  tail: `Usage: tollgate decisions tail [options]

The most recent decisions of the replica at --server (it keeps its last
${INPUT_BOUNDS.tailBacklogMax}), oldest first; with --follow, then every new one as it is taken,
until Ctrl-C (or --limit). One line per decision; --json prints one JSON object
per line instead. A reader too slow for the decision rate loses the oldest
waiting decisions (the server keeps 1000 per stream), and a line says how many.
Needs a management token (a read-only one will do).

  --follow      keep streaming new decisions
  --key ID      only this key's decisions
  --denied      only denials
  --lines N     recent decisions first, 0..${INPUT_BOUNDS.tailBacklogMax} (default ${DEFAULT_LINES})
  --limit N     end after N decisions in all (recent ones included)
Options: --server URL, --token-file F, --json (as for tollgate keys)

Example:
  tollgate decisions tail --follow --denied
`,
};

/** Runs a decisions subcommand; returns the exit code. */
export async function decisionsCommand(argv: string[]): Promise<number> {
  const cl = parseCommandLine(
    "tollgate decisions",
    argv,
    { tail: ["follow", "key", "denied", "lines", "limit"] },
    HELP,
    SUB_HELP,
    ["follow", "denied"],
  );
  if (typeof cl === "number") return cl;
  const { o, positionals, str } = cl;
  if (positionals[0] !== "tail") {
    process.stderr.write(`tollgate decisions: unknown command "${positionals[0]}"\n${HELP}`);
    return 2;
  }
  const lines = count(str("lines"), DEFAULT_LINES, INPUT_BOUNDS.tailBacklogMax);
  const limit = count(str("limit"), 0, INPUT_BOUNDS.streamLimitMax);
  if (lines === undefined || limit === undefined) {
    process.stderr.write(
      `tollgate decisions tail: --lines must be 0..${INPUT_BOUNDS.tailBacklogMax}, --limit 0..${INPUT_BOUNDS.streamLimitMax}\n`,
    );
    return 2;
  }
  const { keys, baseUrl } = clientsFromOptions(o);
  const session = followSession();
  try {
    const stream = keys.tailDecisions(
      create(TailDecisionsRequestSchema, {
        keyId: str("key"),
        deniedOnly: o.denied === true,
        backlog: lines,
        follow: o.follow === true,
        limit,
      }),
      { signal: session.signal },
    );
    for await (const d of stream) {
      await session.write(
        o.json ? `${toJsonString(TailDecisionsResponseSchema, d)}\n` : formatLine(d),
      );
      if (session.signal.aborted) break;
    }
    return 0;
  } catch (err) {
    // Ctrl-C or a closed pipe cancels the call: that is the normal end.
    if (session.signal.aborted) return 0;
    return reportRpcError("tollgate decisions tail", err, baseUrl);
  } finally {
    session.dispose();
  }
}

/** `2026-01-02T03:04:05.678Z Authorize deny RATE_LIMITED key=… endpoint=… …`, one line. */
export function formatLine(d: TailDecisionsResponse): string {
  const parts = [
    d.time ? timestampDate(d.time).toISOString() : "-",
    d.rpc,
    d.allowed ? "allow" : "deny",
    d.reason,
  ];
  if (d.keyId) parts.push(`key=${d.keyId}`);
  if (d.endpoint) parts.push(`endpoint=${d.endpoint}`);
  if (d.limit) parts.push(`limit=${d.limit}`);
  if (d.clientIp) parts.push(`ip=${d.clientIp}`);
  parts.push(`${d.latencyMs.toFixed(2)}ms`, `id=${d.decisionId}`);
  const lost = d.dropped > 0n ? `(${d.dropped} decisions dropped: reading too slowly)\n` : "";
  return `${lost}${parts.join(" ")}\n`;
}

/** A whole number 0..max from a flag, `fallback` when absent, undefined when invalid. */
function count(text: string, fallback: number, max: number): number | undefined {
  if (text === "") return fallback;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}
