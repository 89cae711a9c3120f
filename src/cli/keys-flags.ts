/**
 * The flags of each `tollgate keys` subcommand: one table per subcommand,
 * read by its parser, its `--help`, the unknown-flag suggestions and
 * `tollgate completion`. The same concept has the same flag everywhere
 * (`--scope`, repeated, on create and update).
 */
import { CLIENT_FLAGS, type FlagTable } from "./flags.js";
import { OVERRIDE_FLAGS } from "./override-flags.js";

const owner = {
  type: "string",
  arg: "O",
  help: "who the key is for (a customer, a team)",
} as const;
const tier = {
  type: "string",
  arg: "T",
  help: "a tier of the server's policy (default: its default tier)",
} as const;
const scope = {
  type: "string",
  multiple: true,
  arg: "S",
  help: "a scope the key grants; repeat for more: --scope a --scope b",
} as const;
const meta = {
  type: "string",
  multiple: true,
  arg: "K=V",
  help: "a metadata entry (repeatable)",
} as const;
const expires = {
  type: "string",
  arg: "ISO",
  help: "expiry time, e.g. 2027-01-31T00:00:00Z",
} as const;
const ttl = {
  type: "string",
  arg: "DURATION",
  help: "expiry from now, e.g. 30d (not with --expires)",
} as const;
const allow = {
  type: "string",
  multiple: true,
  arg: "CIDR",
  help: "only these addresses may use the key (repeatable)",
} as const;
const deny = {
  type: "string",
  multiple: true,
  arg: "CIDR",
  help: "these addresses may not use the key (repeatable)",
} as const;
const credits = {
  type: "string",
  arg: "N",
  help: "the key's own credit plan: N credits to start with (wins over its tier's plan)",
} as const;
const refill = {
  type: "string",
  arg: "none|daily|monthly",
  help: "with --credits: when the balance refills (default none; daily at 00:00 UTC)",
} as const;
const refillDay = {
  type: "string",
  arg: "D",
  help: "with --refill monthly: the day of the month, 1..28 (default 1)",
} as const;
const refillMode = {
  type: "string",
  arg: "replace|add",
  help: "with --credits: a refill sets the balance to N (replace, default) or adds N (add)",
} as const;
const refillCap = {
  type: "string",
  arg: "M",
  help: "with --refill-mode add: the most a refill brings the balance to",
} as const;
const pageSize = {
  type: "string",
  arg: "N",
  help: "keys per page (default: the server's)",
} as const;

/** Each keys subcommand's own flags (the client flags come on top). */
export const KEYS_FLAGS = {
  create: {
    owner,
    tier,
    scope,
    meta,
    expires,
    ttl,
    allow,
    deny,
    env: {
      type: "string",
      arg: "ENV",
      help: "environment, e.g. live or test (default TOLLGATE_KEY_ENVIRONMENT)",
    },
    credits,
    refill,
    "refill-day": refillDay,
    "refill-mode": refillMode,
    "refill-cap": refillCap,
  },
  credits: {
    "top-up": { type: "string", arg: "N", help: "add N credits to the balance (1..10^12)" },
    set: { type: "string", arg: "N", help: "set the balance to N (0..10^12)" },
  },
  get: {},
  list: {
    owner: { type: "string", arg: "O", help: "only this owner's keys" },
    all: { type: "boolean", help: "include revoked keys (without it: active keys only)" },
    "page-size": pageSize,
    "page-token": {
      type: "string",
      arg: "T",
      help: "the next page, as printed after the last one",
    },
  },
  update: {
    owner,
    tier,
    scope: { ...scope, help: "the key's scopes (replaces them all); repeat: --scope a --scope b" },
    meta: { ...meta, help: "the key's metadata (replaces it all; repeatable)" },
    expires,
    ttl,
    "no-expiry": { type: "boolean", help: "remove the expiry" },
    allow: { ...allow, help: "the key's allowed addresses (replaces them; repeatable)" },
    deny: { ...deny, help: "the key's denied addresses (replaces them; repeatable)" },
  },
  revoke: {
    reason: { type: "string", arg: "TEXT", help: "why, kept with the key" },
  },
  rotate: {
    grace: {
      type: "string",
      arg: "DURATION",
      help: "how long the old secret keeps working (e.g. 24h)",
    },
    "secret-stdin": {
      type: "boolean",
      help: "self-rotate: read the current secret from standard input",
    },
  },
  override: OVERRIDE_FLAGS,
  export: {
    out: { type: "string", arg: "FILE", help: "write FILE (mode 0600; refused if it exists)" },
    force: { type: "boolean", help: "replace an existing FILE" },
    "page-size": {
      type: "string",
      arg: "N",
      help: "keys per ExportKeys call, 1..1000 (default 1000)",
    },
  },
  import: {
    "dry-run": { type: "boolean", help: "report what would happen; write nothing" },
    overwrite: { type: "boolean", help: "replace keys that exist with other content" },
    format: { type: "string", arg: "jsonl|csv", help: "the file's format" },
    "batch-size": { type: "string", arg: "N", help: "records per ImportKeys call, 1..500" },
    map: {
      type: "string",
      multiple: true,
      arg: "FIELD=COLUMN",
      help: "CSV: take FIELD from COLUMN",
    },
    ignore: { type: "string", multiple: true, arg: "COLUMN", help: "CSV: skip a column" },
    prefix: { type: "string", arg: "P", help: "CSV: the prefix every secret starts with" },
  },
} as const satisfies Record<string, FlagTable>;

/** A keys subcommand's name. */
export type KeysSubcommand = keyof typeof KEYS_FLAGS;

/** Every flag a keys subcommand takes: its own plus the client flags. */
export function keysFlags<S extends KeysSubcommand>(
  sub: S,
): (typeof KEYS_FLAGS)[S] & typeof CLIENT_FLAGS {
  return { ...KEYS_FLAGS[sub], ...CLIENT_FLAGS };
}

/** Every subcommand's full table, for "which subcommand takes --x". */
export const KEYS_SIBLINGS: Record<string, FlagTable> = Object.fromEntries(
  Object.keys(KEYS_FLAGS).map((s) => [s, keysFlags(s as KeysSubcommand)]),
);
