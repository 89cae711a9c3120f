/** `tollgate blocks list|lift`: active blocks of a running server. */
import { toJsonString } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { SubjectKind } from "../gen/tollgate/v1/event_pb.js";
import {
  DeleteBlockResponseSchema,
  ListBlocksResponseSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import { table } from "./check-config-command.js";
import { clientsFromOptions, parseCommandLine, reportRpcError } from "./client.js";

const HELP = `Usage: tollgate blocks <command> [options]

Commands:
  list [--limit N]                    active blocks, longest-lasting first
  lift (--key ID | --ip ADDR | --subject S)   lift a block on every replica

Options: --server URL, --token-file F, --json (as for tollgate keys)
`;

const COMMON_HELP = `Options: --server URL, --token-file F, --json (as for tollgate keys)
`;

/** Each subcommand's own help. */
const SUB_HELP: Record<string, string> = {
  list: `Usage: tollgate blocks list [--limit N]

Active blocks (key, ip or subject), longest-lasting first.

  --limit N   at most N blocks
${COMMON_HELP}
Example:
  tollgate blocks list --limit 20
`,
  lift: `Usage: tollgate blocks lift (--key ID | --ip ADDR | --subject S)

Lifts a block on every replica; give exactly one of the three.

  --key ID       a key's block
  --ip ADDR      an address's block
  --subject S    a caller's block
${COMMON_HELP}
Example:
  tollgate blocks lift --ip 203.0.113.7
`,
};

const KINDS: Record<number, string> = {
  [SubjectKind.KEY]: "key",
  [SubjectKind.IP]: "ip",
  [SubjectKind.CALLER]: "subject",
};

/** Runs a blocks subcommand; returns the exit code. */
export async function blocksCommand(argv: string[]): Promise<number> {
  const cl = parseCommandLine(
    "tollgate blocks",
    argv,
    { list: ["limit"], lift: ["key", "ip", "subject"] },
    HELP,
    SUB_HELP,
  );
  if (typeof cl === "number") return cl;
  const { o, positionals } = cl;
  const cmd = positionals[0] as string;
  const { keys, baseUrl } = clientsFromOptions(o);
  try {
    if (cmd === "list") {
      const res = await keys.listBlocks({ pageSize: o.limit ? Number(o.limit) : 0 });
      if (o.json)
        process.stdout.write(
          `${toJsonString(ListBlocksResponseSchema, res, { prettySpaces: 2 })}\n`,
        );
      else if (res.blocks.length === 0) process.stdout.write("no active blocks\n");
      else {
        const rows = res.blocks.map((b) => [
          KINDS[b.subjectKind] ?? "?",
          b.subject,
          b.endTime ? timestampDate(b.endTime).toISOString() : "-",
          String(b.level),
        ]);
        process.stdout.write(`${table(["kind", "subject", "until", "level"], rows).join("\n")}\n`);
      }
      return 0;
    }
    if (cmd === "lift") {
      const given = [
        ["key", SubjectKind.KEY],
        ["ip", SubjectKind.IP],
        ["subject", SubjectKind.CALLER],
      ].filter(([name]) => typeof o[name as string] === "string") as [string, SubjectKind][];
      if (given.length !== 1) {
        process.stderr.write(
          `tollgate blocks lift: give exactly one of --key, --ip, --subject\n\n${HELP}`,
        );
        return 2;
      }
      const [name, kind] = given[0] as [string, SubjectKind];
      const res = await keys.deleteBlock({ subjectKind: kind, subject: o[name] as string });
      if (o.json) process.stdout.write(`${toJsonString(DeleteBlockResponseSchema, res)}\n`);
      else
        process.stdout.write(res.lifted ? "block lifted\n" : "no active block for that subject\n");
      return 0;
    }
    process.stderr.write(`tollgate blocks: unknown command "${cmd}"\n\n${HELP}`);
    return 2;
  } catch (err) {
    return reportRpcError(`tollgate blocks ${cmd}`, err, baseUrl);
  }
}
