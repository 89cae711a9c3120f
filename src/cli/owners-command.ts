/**
 * `tollgate owners override|overrides`: runtime limit overrides of an owner
 * (every key it holds) on a running server, and the listing of overrides.
 */
import { toJsonString } from "@bufbuild/protobuf";
import {
  DeleteLimitOverrideResponseSchema,
  ListLimitOverridesResponseSchema,
  SetLimitOverrideResponseSchema,
} from "../gen/tollgate/v1/override_pb.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";
import { flagLines } from "./flags.js";
import {
  OVERRIDE_FLAGS,
  OverrideUsageError,
  overrideFromFlags,
  overrideRows,
  PRECEDENCE,
} from "./override-flags.js";

const COMMON = "Options: --server URL, --token-file F, --json (as for tollgate keys)\n";

const HELP = `Usage: tollgate owners <command> [options]

Commands:
  override OWNER --limit NAME (--requests N [--burst B] [--period D] | --exempt | --remove) [--expires 7d]
                       override one policy limit for every key of OWNER, at runtime
  overrides [OWNER]    list OWNER's overrides, or every key's and owner's

${COMMON}`;

const SUB_HELP: Record<string, string> = {
  override: `Usage: tollgate owners override OWNER --limit NAME (--requests N [--burst B] [--period D] | --exempt | --remove) [--expires 7d]

Overrides one policy limit for every key of OWNER (raise, lower or exempt), on
every replica; a key's own override beats it (${PRECEDENCE}).
The usage already counted is kept. --remove goes back to the endpoint's or tier's.

Options:
${flagLines(OVERRIDE_FLAGS)}${COMMON}
Example:
  tollgate owners override acme --limit daily --requests 50000 --expires 30d
`,
  overrides: `Usage: tollgate owners overrides [OWNER] [--limit N]

Lists OWNER's active overrides; without OWNER, every key's and owner's (at most --limit N, default 100).

${COMMON}
Example:
  tollgate owners overrides acme
`,
};

/** Runs an owners subcommand; returns the exit code. */
export async function ownersCommand(argv: string[]): Promise<number> {
  const cl = parseCommandLine(
    "tollgate owners",
    argv,
    { override: Object.keys(OVERRIDE_FLAGS), overrides: ["limit"] },
    HELP,
    SUB_HELP,
    ["exempt", "remove"],
  );
  if (typeof cl === "number") return cl;
  const { o, positionals, str } = cl;
  const [cmd, owner, extra] = positionals as [string, string | undefined, string | undefined];
  if (extra !== undefined) return usage(`unexpected argument "${extra}"`);
  const { keys, baseUrl } = clientsFromOptions(o);
  const json = (
    schema: Parameters<typeof toJsonString>[0],
    msg: Parameters<typeof toJsonString>[1],
  ) => process.stdout.write(`${toJsonString(schema, msg, { prettySpaces: 2 })}\n`);
  try {
    if (cmd === "override") {
      if (!owner) return usage("override needs an owner");
      let req: ReturnType<typeof overrideFromFlags>;
      try {
        req = overrideFromFlags({
          limit: str("limit") || undefined,
          ...(typeof o.requests === "string" && { requests: o.requests }),
          ...(typeof o.burst === "string" && { burst: o.burst }),
          ...(typeof o.period === "string" && { period: o.period }),
          ...(typeof o.expires === "string" && { expires: o.expires }),
          exempt: o.exempt === true,
          remove: o.remove === true,
        });
      } catch (err) {
        if (err instanceof OverrideUsageError) return usage(err.message, "override");
        throw err;
      }
      const target = { case: "owner" as const, value: owner };
      if (req === "remove") {
        const res = await keys.deleteLimitOverride({ target, limit: str("limit") });
        if (o.json) json(DeleteLimitOverrideResponseSchema, res);
        else
          process.stdout.write(
            res.deleted
              ? `override of ${str("limit")} removed\n`
              : `no override of ${str("limit")}\n`,
          );
        return 0;
      }
      const res = await keys.setLimitOverride({ target, limitOverride: req });
      if (o.json) json(SetLimitOverrideResponseSchema, res);
      else
        process.stdout.write(
          `${overrideRows(res.limitOverride ? [res.limitOverride] : []).join("\n")}\n`,
        );
      return 0;
    }
    if (cmd === "overrides") {
      const limit = str("limit");
      if (limit !== "" && !/^\d{1,4}$/.test(limit))
        return usage(`--limit: not a whole number: "${limit}"`);
      const res = await keys.listLimitOverrides({
        ...(owner !== undefined && { target: { case: "owner", value: owner } }),
        pageSize: limit ? Number(limit) : 0,
      });
      if (o.json) json(ListLimitOverridesResponseSchema, res);
      else if (res.limitOverrides.length === 0) process.stdout.write("no active overrides\n");
      else
        process.stdout.write(
          `${overrideRows(res.limitOverrides).join("\n")}\n${res.truncated ? "(more not shown: --limit N)\n" : ""}`,
        );
      return 0;
    }
    return usage(`unknown command "${cmd}"`);
  } catch (err) {
    return reportRpcError(`tollgate owners ${cmd}`, err, baseUrl);
  }
}

function usage(msg: string, sub?: string): number {
  process.stderr.write(`tollgate owners: ${msg}\n\n${(sub && SUB_HELP[sub]) || HELP}`);
  return 2;
}
