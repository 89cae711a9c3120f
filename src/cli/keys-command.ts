/**
 * `tollgate keys …`: key management against a running server's KeyService (and
 * TollgateService.RotateKey), over gRPC. The token comes from
 * TOLLGATE_MANAGEMENT_TOKEN, TOLLGATE_MANAGEMENT_TOKEN_FILE or --token-file, so
 * the commands work the same against the embedded store and a Redis deployment.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { create, type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import {
  durationFromMs,
  FieldMaskSchema,
  timestampDate,
  timestampFromMs,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Key, KeySchema, KeyStatus } from "../gen/tollgate/v1/key_pb.js";
import {
  CreateKeyResponseSchema,
  ListKeysResponseSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import { RotateKeyResponseSchema } from "../gen/tollgate/v1/tollgate_service_pb.js";
import { createClients } from "./client.js";
import { parseDuration } from "./duration.js";
import { keysExportCommand } from "./keys-export-command.js";
import { keysImportCommand } from "./keys-import-command.js";

const HELP = `Usage: tollgate keys <command> [options]

Commands:
  create --owner O [--tier T] [--scope S]... [--meta K=V]... [--expires ISO | --ttl 30d]
         [--allow CIDR]... [--deny CIDR]... [--env ENV]
  get ID
  list [--owner O] [--all] [--page-size N] [--page-token T]
  update ID [--owner O] [--tier T] [--scopes a,b] [--meta K=V]... [--expires ISO | --no-expiry]
         [--allow CIDR]... [--deny CIDR]...
  revoke ID [--reason TEXT]
  rotate ID [--grace 24h]            rotate by id (management token)
  rotate --secret-stdin [--grace 1h] self-rotate: reads the current secret from stdin
  export [--out FILE]                back up every key (digests, never secrets) as JSON Lines
  import FILE [--dry-run] [--overwrite] [--format jsonl|csv]
                                     restore a backup, or import keys from another system
                                     (tollgate keys export --help, tollgate keys import --help)

Common options:
  --server URL      server address (default $TOLLGATE_SERVER, else from $TOLLGATE_ADDR, else http://127.0.0.1:50051)
  --token-file F    management token file (default $TOLLGATE_MANAGEMENT_TOKEN_FILE,
                    else $TOLLGATE_MANAGEMENT_TOKEN)
  --json            print the response as JSON
`;

const OPTIONS = {
  server: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  owner: { type: "string" },
  tier: { type: "string" },
  scope: { type: "string", multiple: true },
  scopes: { type: "string" },
  meta: { type: "string", multiple: true },
  expires: { type: "string" },
  ttl: { type: "string" },
  "no-expiry": { type: "boolean" },
  allow: { type: "string", multiple: true },
  deny: { type: "string", multiple: true },
  env: { type: "string" },
  all: { type: "boolean" },
  "page-size": { type: "string" },
  "page-token": { type: "string" },
  reason: { type: "string" },
  grace: { type: "string" },
  "secret-stdin": { type: "boolean" },
} as const;

/** A mistake in the command line itself: reported with exit code 2, before any call. */
class UsageError extends Error {}

/** Runs a keys subcommand; returns the exit code. */
export async function keysCommand(argv: string[]): Promise<number> {
  // Backup and restore have options of their own.
  if (argv[0] === "export") return keysExportCommand(argv.slice(1));
  if (argv[0] === "import") return keysImportCommand(argv.slice(1));
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>
  >;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (err) {
    process.stderr.write(`tollgate keys: ${(err as Error).message}\n`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const [cmd, id, ...extra] = positionals;
  if (o.help || cmd === undefined || cmd === "help") {
    process.stdout.write(HELP);
    return cmd === undefined && !o.help ? 2 : 0;
  }
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`);

  const server = o.server ?? process.env.TOLLGATE_SERVER;
  if (server !== undefined && !isHttpUrl(server)) {
    const flag = o.server !== undefined ? "--server" : "TOLLGATE_SERVER";
    return usage(`${flag}: not an http(s) URL: "${server}" (e.g. http://127.0.0.1:50051)`);
  }
  let clients: ReturnType<typeof createClients>;
  try {
    clients = createClients({
      ...(server !== undefined && { server }),
      ...(o["token-file"] !== undefined && { tokenFile: o["token-file"] }),
    });
  } catch (err) {
    // Only the token file is read here; never echo its content.
    const flag = o["token-file"] !== undefined ? "--token-file" : "TOLLGATE_MANAGEMENT_TOKEN_FILE";
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    process.stderr.write(`tollgate keys: ${flag}: cannot read the token file (${code})\n`);
    return 2;
  }
  const { keys, tollgate, baseUrl } = clients;
  const print = <D extends DescMessage>(schema: D, msg: MessageShape<D>, human: () => string) =>
    process.stdout.write(o.json ? `${toJsonString(schema, msg, { prettySpaces: 2 })}\n` : human());

  try {
    switch (cmd) {
      case "create": {
        if (!o.owner) return usage("create needs --owner");
        const res = await keys.createKey({
          owner: o.owner,
          tier: o.tier ?? "",
          scopes: o.scope ?? [],
          metadata: parseMeta(o.meta),
          expireTime: expiry(o.expires, o.ttl),
          ipAllow: o.allow ?? [],
          ipDeny: o.deny ?? [],
          environment: o.env ?? "",
        });
        print(
          CreateKeyResponseSchema,
          res,
          () => `secret: ${res.secret}\n  (shown once: store it now)\n${formatKey(res.key)}`,
        );
        return 0;
      }
      case "get": {
        if (!id) return usage("get needs a key id");
        const res = await keys.getKey({ id });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key));
        return 0;
      }
      case "list": {
        const res = await keys.listKeys({
          owner: o.owner ?? "",
          includeRevoked: o.all ?? false,
          pageSize: pageSize(o["page-size"]),
          pageToken: o["page-token"] ?? "",
        });
        print(ListKeysResponseSchema, res, () => {
          const lines = res.keys.map(
            (k) => `${k.id}  ${statusName(k.status).padEnd(7)}  ${k.tier.padEnd(10)}  ${k.owner}\n`,
          );
          if (res.nextPageToken) lines.push(`next page: --page-token ${res.nextPageToken}\n`);
          return lines.join("");
        });
        return 0;
      }
      case "update": {
        if (!id) return usage("update needs a key id");
        const paths: string[] = [];
        if (o.owner !== undefined) paths.push("owner");
        if (o.tier !== undefined) paths.push("tier");
        if (o.scopes !== undefined) paths.push("scopes");
        if (o.meta !== undefined) paths.push("metadata");
        if (o.expires !== undefined || o.ttl !== undefined || o["no-expiry"])
          paths.push("expire_time");
        if (o.allow !== undefined) paths.push("ip_allow");
        if (o.deny !== undefined) paths.push("ip_deny");
        if (paths.length === 0) return usage("update needs at least one field to change");
        const res = await keys.updateKey({
          id,
          updateMask: create(FieldMaskSchema, { paths }),
          owner: o.owner ?? "",
          tier: o.tier ?? "",
          scopes: o.scopes ? o.scopes.split(",").filter(Boolean) : [],
          metadata: parseMeta(o.meta),
          expireTime: o["no-expiry"] ? undefined : expiry(o.expires, o.ttl),
          ipAllow: o.allow ?? [],
          ipDeny: o.deny ?? [],
        });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key));
        return 0;
      }
      case "revoke": {
        if (!id) return usage("revoke needs a key id");
        const res = await keys.revokeKey({ id, reason: o.reason ?? "" });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key));
        return 0;
      }
      case "rotate": {
        const grace =
          o.grace === undefined ? undefined : durationFromMs(duration("--grace", o.grace));
        let currentSecret = "";
        if (o["secret-stdin"]) {
          if (id) return usage("rotate takes a key id or --secret-stdin, not both");
          currentSecret = readFileSync(0, "utf8").trim();
          if (!currentSecret) return usage("rotate --secret-stdin: no secret on standard input");
        } else if (!id) return usage("rotate needs a key id or --secret-stdin");
        const res = await tollgate.rotateKey({
          keyId: currentSecret ? "" : (id ?? ""),
          currentSecret,
          gracePeriod: grace,
        });
        const until = res.graceEndTime ? timestampDate(res.graceEndTime).toISOString() : "now";
        print(
          RotateKeyResponseSchema,
          res,
          () =>
            `secret: ${res.secret}\n  (shown once: store it now; the old secret works until ${until})\n${formatKey(res.key)}`,
        );
        return 0;
      }
      default:
        return usage(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tollgate keys ${cmd}: ${err.message}\n`);
      return 2;
    }
    const ce = ConnectError.from(err);
    const hint = ce.code === Code.Unavailable ? ` (is tollgate serving at ${baseUrl}?)` : "";
    process.stderr.write(`tollgate keys ${cmd}: ${Code[ce.code]}: ${ce.rawMessage}${hint}\n`);
    return 1;
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

function usage(msg: string): number {
  process.stderr.write(`tollgate keys: ${msg}\n\n${HELP}`);
  return 2;
}

function parseMeta(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new UsageError(`--meta wants KEY=VALUE, got "${kv}"`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function expiry(iso: string | undefined, ttl: string | undefined) {
  if (iso !== undefined && ttl !== undefined)
    throw new UsageError("use --expires or --ttl, not both");
  if (iso !== undefined) {
    const ms = Date.parse(iso);
    if (Number.isNaN(ms)) throw new UsageError(`--expires: not an ISO time: "${iso}"`);
    return timestampFromMs(ms);
  }
  if (ttl !== undefined) return timestampFromMs(Date.now() + duration("--ttl", ttl));
  return undefined;
}

/** A duration flag's value in ms, or a UsageError naming the flag. */
function duration(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

/** --page-size: a whole number (the server checks the range); absent means the server's default. */
function pageSize(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d{1,9}$/.test(text)) throw new UsageError(`--page-size: not a whole number: "${text}"`);
  return Number(text);
}

function statusName(s: KeyStatus): string {
  return s === KeyStatus.REVOKED ? "revoked" : s === KeyStatus.ACTIVE ? "active" : "unknown";
}

function formatKey(k: Key | undefined): string {
  if (!k) return "";
  const t = (x: Parameters<typeof timestampDate>[0] | undefined) =>
    x ? timestampDate(x).toISOString() : "-";
  const rows: [string, string][] = [
    ["id", k.id],
    ["status", statusName(k.status)],
    ["owner", k.owner],
    ["tier", k.tier],
    ["scopes", k.scopes.join(" ") || "-"],
    [
      "metadata",
      Object.entries(k.metadata)
        .map(([a, b]) => `${a}=${b}`)
        .join(" ") || "-",
    ],
    ["environment", k.environment],
    ["created", t(k.createTime)],
    ["expires", t(k.expireTime)],
    ["ip allow", k.ipAllow.join(" ") || "-"],
    ["ip deny", k.ipDeny.join(" ") || "-"],
    ["secret issued", t(k.secretCreateTime)],
    ["grace ends", t(k.graceEndTime)],
    ["revoked", t(k.revokeTime)],
  ];
  if (k.status === KeyStatus.REVOKED) rows.push(["revoke reason", k.revokedReason || "-"]);
  return `${rows.map(([a, b]) => `${a.padEnd(14)}${b}`).join("\n")}\n`;
}
