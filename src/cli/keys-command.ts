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
import {
  type CreditPlan,
  CreditPlanSchema,
  CreditRefill,
  CreditRefillMode,
} from "../gen/tollgate/v1/credits_pb.js";
import { type Key, KeySchema, KeyStatus } from "../gen/tollgate/v1/key_pb.js";
import {
  CreateKeyResponseSchema,
  ListKeysResponseSchema,
} from "../gen/tollgate/v1/key_service_pb.js";
import {
  DeleteLimitOverrideResponseSchema,
  SetLimitOverrideResponseSchema,
} from "../gen/tollgate/v1/override_pb.js";
import { RotateKeyResponseSchema } from "../gen/tollgate/v1/tollgate_service_pb.js";
import { createClients, reportRpcError } from "./client.js";
import { parseDuration } from "./duration.js";
import { CLIENT_FLAGS, checkFlags, type FlagTable, flagLines } from "./flags.js";
import { keysExportCommand } from "./keys-export-command.js";
import { KEYS_FLAGS, KEYS_SIBLINGS, type KeysSubcommand, keysFlags } from "./keys-flags.js";
import { keysImportCommand } from "./keys-import-command.js";
import {
  effectiveRows,
  OverrideUsageError,
  overrideFromFlags,
  overrideRows,
  PRECEDENCE,
} from "./override-flags.js";

/** Every keys flag's parsed value (a subcommand's parser only fills its own). */
interface Options {
  server?: string;
  "token-file"?: string;
  json?: boolean;
  help?: boolean;
  owner?: string;
  tier?: string;
  scope?: string[];
  meta?: string[];
  expires?: string;
  ttl?: string;
  "no-expiry"?: boolean;
  allow?: string[];
  deny?: string[];
  env?: string;
  all?: boolean;
  "page-size"?: string;
  "page-token"?: string;
  reason?: string;
  grace?: string;
  "secret-stdin"?: boolean;
  limit?: string;
  requests?: string;
  burst?: string;
  period?: string;
  exempt?: boolean;
  remove?: boolean;
  credits?: string;
  refill?: string;
  "refill-day"?: string;
  "refill-mode"?: string;
  "refill-cap"?: string;
  "top-up"?: string;
  set?: string;
}

/** What each subcommand's help says beside its flags. */
const ABOUT: Record<KeysSubcommand, { usage: string; about: string; example: string }> = {
  create: {
    usage: "create --owner O [options]",
    about: "Mints a key and prints its secret once (store it then: it is never shown again).",
    example:
      "tollgate keys create --owner acme --tier pro --scope orders:read --scope orders:write --ttl 90d",
  },
  get: {
    usage: "get ID",
    about:
      "Shows a key (never its secret) and its effective limits, each with where it comes from\n(key override > owner override > endpoint > tier).",
    example: "tollgate keys get key_0123456789abcdef",
  },
  credits: {
    usage: "credits ID --top-up N | --set N",
    about:
      "Tops up or sets a key's credit balance (after any refill that is due); `keys get`\nshows the balance and the next refill.",
    example: "tollgate keys credits key_0123456789abcdef --top-up 5000",
  },
  list: {
    usage: "list [--owner O] [--all] [--page-size N] [--page-token T]",
    about:
      "Lists keys: id, status, tier, owner. Active keys only unless --all, which adds revoked ones.",
    example: "tollgate keys list --owner acme --all",
  },
  update: {
    usage: "update ID [options]",
    about: "Changes only the fields given; a list flag replaces the whole list.",
    example:
      "tollgate keys update key_0123456789abcdef --tier pro --scope orders:read --scope orders:write",
  },
  revoke: {
    usage: "revoke ID [--reason TEXT]",
    about: "Revokes a key on every replica at once; a revoked key is never active again.",
    example: 'tollgate keys revoke key_0123456789abcdef --reason "leaked in a log"',
  },
  rotate: {
    usage: "rotate ID [--grace 24h] | rotate --secret-stdin [--grace 1h]",
    about:
      "Issues a new secret; the old one works until the grace period ends. By id needs the\nmanagement token; --secret-stdin lets a key holder rotate its own key.",
    example: "tollgate keys rotate key_0123456789abcdef --grace 24h",
  },
  override: {
    usage:
      "override ID --limit NAME (--requests N [--burst B] [--period D] | --exempt | --remove) [--expires 7d]",
    about:
      "Overrides one policy limit for this key at runtime (raise, lower or exempt), on every replica;\nthe usage already counted is kept. --remove goes back to the owner's, endpoint's or tier's.",
    example:
      "tollgate keys override key_0123456789abcdef --limit per-key --requests 100 --expires 7d",
  },
  export: {
    usage: "export [--out FILE] [--force] [--page-size N]",
    about: "Backs up every key (digests, never secrets) as JSON Lines.",
    example: "tollgate keys export --out keys.jsonl",
  },
  import: {
    usage: "import FILE [--dry-run] [--overwrite] [--format jsonl|csv] ...",
    about: "Restores a backup, or imports keys from another system.",
    example: "tollgate keys import keys.jsonl --dry-run",
  },
};

const HELP = `Usage: tollgate keys <command> [options]

Commands:
${Object.values(ABOUT)
  .map((a) => `  ${a.usage}`)
  .join("\n")}

Each command's flags and an example: tollgate keys <command> --help

Common options:
${flagLines(CLIENT_FLAGS)}`;

/** A subcommand's own help: its flags, the common ones and an example. */
export function keysSubcommandHelp(sub: KeysSubcommand): string {
  const a = ABOUT[sub];
  const own = flagLines(KEYS_FLAGS[sub]);
  return `Usage: tollgate keys ${a.usage}

${a.about}
${own ? `\nOptions:\n${own}` : ""}
Common options:
${flagLines(CLIENT_FLAGS)}
Example:
  ${a.example}
`;
}

/** A mistake in the command line itself: reported with exit code 2, before any call. */
class UsageError extends Error {}

const isSubcommand = (s: string | undefined): s is KeysSubcommand =>
  s !== undefined && Object.hasOwn(KEYS_FLAGS, s);

/** Runs a keys subcommand; returns the exit code. */
export async function keysCommand(argv: string[]): Promise<number> {
  // The subcommand is the first positional, wherever the common flags are.
  const loose = parseArgs({
    args: argv,
    options: Object.assign({}, ...Object.values(KEYS_SIBLINGS)) as FlagTable,
    strict: false,
    allowPositionals: true,
  });
  const first = loose.positionals[0];
  if (first === "help") {
    const about = loose.positionals[1];
    process.stdout.write(isSubcommand(about) ? keysSubcommandHelp(about) : HELP);
    return 0;
  }
  if (!isSubcommand(first)) {
    if (first !== undefined) return usage(`unknown command "${first}"`);
    process.stdout.write(HELP);
    return loose.values.help ? 0 : 2;
  }
  const cmd = first;
  // Backup and restore have parsers of their own.
  if (cmd === "export" || cmd === "import") {
    const rest = argv.toSpliced(argv.indexOf(cmd), 1);
    return cmd === "export" ? keysExportCommand(rest) : keysImportCommand(rest);
  }
  let parsed: { values: unknown; positionals: string[] };
  try {
    checkFlags(argv, keysFlags(cmd), `keys ${cmd}`, KEYS_SIBLINGS);
    const options: FlagTable = keysFlags(cmd);
    parsed = parseArgs({ args: argv, options, allowPositionals: true });
  } catch (err) {
    process.stderr.write(`tollgate keys ${cmd}: ${(err as Error).message}\n`);
    return 2;
  }
  const o = parsed.values as Options;
  const [, id, ...extra] = parsed.positionals;
  if (o.help) {
    process.stdout.write(keysSubcommandHelp(cmd));
    return 0;
  }
  if (extra.length > 0) return usage(`unexpected argument "${extra[0]}"`, cmd);

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
        if (!o.owner) return usage("create needs --owner", cmd);
        const res = await keys.createKey({
          owner: o.owner,
          tier: o.tier ?? "",
          scopes: o.scope ?? [],
          metadata: parseMeta(o.meta),
          expireTime: expiry(o.expires, o.ttl),
          ipAllow: o.allow ?? [],
          ipDeny: o.deny ?? [],
          environment: o.env ?? "",
          credits: creditPlan(o),
        });
        print(
          CreateKeyResponseSchema,
          res,
          () => `secret: ${res.secret}\n  (shown once: store it now)\n${formatKey(res.key)}`,
        );
        return 0;
      }
      case "get": {
        if (!id) return usage("get needs a key id", cmd);
        const res = await keys.getKey({ id });
        if (o.json) {
          print(KeySchema, res.key ?? create(KeySchema), () => "");
          return 0;
        }
        const limits = await keys.listLimitOverrides({ target: { case: "keyId", value: id } });
        const rows = effectiveRows(limits.effectiveLimits);
        process.stdout.write(
          `${formatKey(res.key, true)}\nlimits (${PRECEDENCE}):\n${rows.length > 0 ? rows.map((r) => `  ${r}`).join("\n") : "  none"}\n`,
        );
        return 0;
      }
      case "override": {
        if (!id) return usage("override needs a key id", cmd);
        let req: ReturnType<typeof overrideFromFlags>;
        try {
          req = overrideFromFlags(o);
        } catch (err) {
          if (err instanceof OverrideUsageError) return usage(err.message, cmd);
          throw err;
        }
        const target = { case: "keyId" as const, value: id };
        if (req === "remove") {
          const res = await keys.deleteLimitOverride({ target, limit: o.limit ?? "" });
          print(DeleteLimitOverrideResponseSchema, res, () =>
            res.deleted ? `override of ${o.limit} removed\n` : `no override of ${o.limit}\n`,
          );
          return 0;
        }
        const res = await keys.setLimitOverride({ target, limitOverride: req });
        print(
          SetLimitOverrideResponseSchema,
          res,
          () => `${overrideRows(res.limitOverride ? [res.limitOverride] : []).join("\n")}\n`,
        );
        return 0;
      }
      case "credits": {
        if (!id) return usage("credits needs a key id", cmd);
        if ((o["top-up"] === undefined) === (o.set === undefined))
          return usage("credits needs one of --top-up N and --set N", cmd);
        const res = await keys.updateKey({
          id,
          updateMask: create(FieldMaskSchema, { paths: ["credits_change"] }),
          creditsChange:
            o["top-up"] !== undefined
              ? { change: { case: "topUp", value: whole("--top-up", o["top-up"]) } }
              : { change: { case: "set", value: whole("--set", o.set ?? "") } },
        });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key, true));
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
          if (res.keys.length === 0 && !res.nextPageToken) {
            return o.all ? "no keys\n" : "no active keys; --all includes revoked ones\n";
          }
          const row = (id: string, status: string, tier: string, owner: string) =>
            `${id.padEnd(20)}  ${status.padEnd(7)}  ${tier.padEnd(10)}  ${owner}\n`;
          const lines = [
            row("ID", "STATUS", "TIER", "OWNER"),
            ...res.keys.map((k) => row(k.id, statusName(k.status), k.tier, k.owner)),
          ];
          if (res.nextPageToken) lines.push(`next page: --page-token ${res.nextPageToken}\n`);
          return lines.join("");
        });
        return 0;
      }
      case "update": {
        if (!id) return usage("update needs a key id", cmd);
        const paths: string[] = [];
        if (o.owner !== undefined) paths.push("owner");
        if (o.tier !== undefined) paths.push("tier");
        if (o.scope !== undefined) paths.push("scopes");
        if (o.meta !== undefined) paths.push("metadata");
        if (o.expires !== undefined || o.ttl !== undefined || o["no-expiry"])
          paths.push("expire_time");
        if (o.allow !== undefined) paths.push("ip_allow");
        if (o.deny !== undefined) paths.push("ip_deny");
        if (paths.length === 0) return usage("update needs at least one field to change", cmd);
        const res = await keys.updateKey({
          id,
          updateMask: create(FieldMaskSchema, { paths }),
          owner: o.owner ?? "",
          tier: o.tier ?? "",
          scopes: o.scope ?? [],
          metadata: parseMeta(o.meta),
          expireTime: o["no-expiry"] ? undefined : expiry(o.expires, o.ttl),
          ipAllow: o.allow ?? [],
          ipDeny: o.deny ?? [],
        });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key));
        return 0;
      }
      case "revoke": {
        if (!id) return usage("revoke needs a key id", cmd);
        const res = await keys.revokeKey({ id, reason: o.reason ?? "" });
        print(KeySchema, res.key ?? create(KeySchema), () => formatKey(res.key));
        return 0;
      }
      case "rotate": {
        const grace =
          o.grace === undefined ? undefined : durationFromMs(duration("--grace", o.grace));
        let currentSecret = "";
        if (o["secret-stdin"]) {
          if (id) return usage("rotate takes a key id or --secret-stdin, not both", cmd);
          currentSecret = readFileSync(0, "utf8").trim();
          if (!currentSecret)
            return usage("rotate --secret-stdin: no secret on standard input", cmd);
        } else if (!id) return usage("rotate needs a key id or --secret-stdin", cmd);
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
        return usage(`unknown command "${cmd satisfies never}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tollgate keys ${cmd}: ${err.message}\n`);
      return 2;
    }
    return reportRpcError(`tollgate keys ${cmd}`, err, baseUrl);
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

function usage(msg: string, sub?: KeysSubcommand): number {
  process.stderr.write(`tollgate keys: ${msg}\n\n${sub ? keysSubcommandHelp(sub) : HELP}`);
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

/** A whole number of credits (the server checks the range). */
function whole(flag: string, text: string): bigint {
  if (!/^\d{1,16}$/.test(text)) throw new UsageError(`${flag}: not a whole number: "${text}"`);
  return BigInt(text);
}

const REFILLS: Record<string, CreditRefill> = {
  none: CreditRefill.NONE,
  daily: CreditRefill.DAILY,
  monthly: CreditRefill.MONTHLY,
};
const MODES: Record<string, CreditRefillMode> = {
  replace: CreditRefillMode.REPLACE,
  add: CreditRefillMode.ADD,
};

/** The key's own credit plan from --credits and the --refill flags (undefined without --credits). */
function creditPlan(o: Options) {
  const refillFlags = ["refill", "refill-day", "refill-mode", "refill-cap"] as const;
  if (o.credits === undefined) {
    const stray = refillFlags.find((f) => o[f] !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --credits N`);
    return undefined;
  }
  const refill = REFILLS[o.refill ?? "none"];
  if (refill === undefined)
    throw new UsageError(`--refill: none, daily or monthly, not "${o.refill}"`);
  const mode = MODES[o["refill-mode"] ?? "replace"];
  if (mode === undefined)
    throw new UsageError(`--refill-mode: replace or add, not "${o["refill-mode"]}"`);
  return create(CreditPlanSchema, {
    amount: whole("--credits", o.credits),
    refill,
    refillDay: o["refill-day"] === undefined ? 0 : Number(whole("--refill-day", o["refill-day"])),
    mode,
    cap: o["refill-cap"] === undefined ? 0n : whole("--refill-cap", o["refill-cap"]),
  });
}

/** A credit plan in words: `1000 credits, refilled monthly on day 1 (replace)`. */
function describePlan(p: CreditPlan | undefined): string {
  if (!p) return "-";
  const refill =
    p.refill === CreditRefill.DAILY
      ? "refilled daily (00:00 UTC)"
      : p.refill === CreditRefill.MONTHLY
        ? `refilled monthly on day ${p.refillDay || 1} (00:00 UTC)`
        : "never refilled";
  const how = p.mode === CreditRefillMode.ADD ? `, adding ${p.amount} up to ${p.cap}` : "";
  return `${p.amount} credits, ${refill}${how}`;
}

function statusName(s: KeyStatus): string {
  return s === KeyStatus.REVOKED ? "revoked" : s === KeyStatus.ACTIVE ? "active" : "unknown";
}

/** A key as rows; `balance`: the response carries the store's balance (GetKey, credits). */
function formatKey(k: Key | undefined, balance = false): string {
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
  if (k.credits) {
    const c = k.credits;
    rows.push([
      "credits",
      `${describePlan(c.plan)} (${c.ownPlan ? "the key's own plan" : "its tier's plan"})`,
    ]);
    if (balance) {
      rows.push(["balance", String(c.balance)]);
      rows.push(["next refill", t(c.nextRefillTime)]);
    }
  }
  return `${rows.map(([a, b]) => `${a.padEnd(14)}${b}`).join("\n")}\n`;
}
