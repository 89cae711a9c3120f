/**
 * Flag tables of the CLI's subcommands, and the check that runs before
 * `parseArgs`: an unknown or misplaced flag is refused with a suggestion
 * (`did you mean --scope?`, `keys list takes --all`) instead of Node's raw
 * "Unknown option" message.
 */
import { parseArgs } from "node:util";

/** One flag: its parseArgs type plus what help prints. */
export interface FlagSpec {
  type: "string" | "boolean";
  /** Repeatable (parseArgs `multiple`). */
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in help, e.g. `ID`; none for a boolean. */
  arg?: string;
  /** One line for help. */
  help: string;
}

/** A subcommand's flags by long name (without `--`). */
export type FlagTable = Readonly<Record<string, FlagSpec>>;

/** A command-line mistake found before any call (exit code 2). */
export class FlagError extends Error {}

/** Flags the client commands share (--server, --token-file, --json, --help). */
export const CLIENT_FLAGS = {
  server: {
    type: "string",
    arg: "URL",
    help: "server address (default $TOLLGATE_SERVER, else from $TOLLGATE_ADDR, else http://127.0.0.1:50051)",
  },
  "token-file": {
    type: "string",
    arg: "F",
    help: "management token file (default $TOLLGATE_MANAGEMENT_TOKEN_FILE, else $TOLLGATE_MANAGEMENT_TOKEN)",
  },
  json: { type: "boolean", help: "print the response as JSON" },
  help: { type: "boolean", short: "h", help: "this help" },
} as const satisfies FlagTable;

/**
 * Throws a FlagError for the first flag of `argv` that `table` does not take:
 * naming the closest flag it does take, or the other subcommand(s) of
 * `siblings` that take it. Also refuses a string flag without a value and a
 * boolean flag given one. `label` is the command as typed, e.g. `keys create`.
 */
export function checkFlags(
  argv: readonly string[],
  table: FlagTable,
  label: string,
  siblings: Readonly<Record<string, FlagTable>> = {},
): void {
  const { tokens } = parseArgs({
    args: [...argv],
    options: table,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const spec = table[t.name];
    if (spec === undefined)
      throw new FlagError(unknownFlag(t.rawName, t.name, table, label, siblings));
    if (spec.type === "string" && t.value === undefined)
      throw new FlagError(
        `${t.rawName} needs a value${spec.arg ? ` (${t.rawName} ${spec.arg})` : ""}`,
      );
    if (spec.type === "boolean" && t.value !== undefined)
      throw new FlagError(`${t.rawName} takes no value (got "${t.rawName}=${t.value}")`);
  }
}

function unknownFlag(
  raw: string,
  name: string,
  table: FlagTable,
  label: string,
  siblings: Readonly<Record<string, FlagTable>>,
): string {
  const help = `see tollgate ${label} --help`;
  const owners = Object.entries(siblings)
    .filter(([sub, t]) => t[name] !== undefined && `${label}`.split(" ").at(-1) !== sub)
    .map(([sub]) => sub);
  if (owners.length > 0) {
    const group = label.split(" ").slice(0, -1).join(" ");
    const who = owners.map((s) => `${group} ${s}`.trim()).join(", ");
    return `${raw} is not a flag of ${label} (${who} takes it); ${help}`;
  }
  const near = closest(name, Object.keys(table));
  if (near === undefined) return `unknown flag ${raw}; ${help}`;
  const repeat = table[near]?.multiple ? ` (repeat it for more: --${near} a --${near} b)` : "";
  return `unknown flag ${raw}: did you mean --${near}?${repeat}`;
}

/** The name of `names` nearest to `name` (a prefix of it or within 2 edits), if any. */
export function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const n of names) {
    const d = n.startsWith(name) || name.startsWith(n) ? 1 : editDistance(name, n);
    if (d < bestDistance) {
      best = n;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.min(2, Math.max(1, Math.floor(name.length / 3))) ? best : undefined;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** Help lines for a flag table: `  --owner O       who the key is for`. */
export function flagLines(table: FlagTable): string {
  const rows = Object.entries(table).map(([name, f]) => {
    const left = `--${name}${f.arg ? ` ${f.arg}` : ""}${f.multiple ? " ..." : ""}`;
    return [left, f.help] as const;
  });
  const width = Math.max(16, ...rows.map(([l]) => l.length + 2));
  return rows.map(([l, h]) => `  ${l.padEnd(width)}${h}\n`).join("");
}
