/**
 * `tollgate keys import --format csv`: keys from another system as CSV
 * (RFC 4180: comma-separated, `"` quotes, `""` for a quote, quoted cells may
 * span lines), one key per row, a header row naming the columns. Columns are
 * matched to import fields by name, or renamed with `--map FIELD=COLUMN`:
 *
 *   hash            the SHA-256 digest of the secret (required)
 *   hash_encoding   hex | base64 (default: told apart by length)
 *   hash_algorithm  sha256 (the default and only one)
 *   prefix          the start every secret shares (or --prefix for all rows)
 *   owner           required
 *   id              a Tollgate key id (default: derived from the digest)
 *   tier, environment, status (active | revoked), revoked_reason
 *   scopes, ip_allow, ip_deny   lists separated by spaces, commas or semicolons
 *   created, expires            ISO 8601 or Unix epoch milliseconds
 *   metadata.<name>             one metadata entry per column (empty: none)
 *
 * Each row becomes a KeyExport with a foreign digest; the server checks it.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DigestAlgorithm,
  DigestEncoding,
  type KeyExport,
  KeyExportSchema,
} from "../gen/tollgate/v1/key_export_pb.js";
import { KeyStatus } from "../gen/tollgate/v1/key_pb.js";

/** Import fields a CSV column can fill (plus `metadata.<name>`). */
export const CSV_FIELDS = [
  "hash",
  "hash_encoding",
  "hash_algorithm",
  "prefix",
  "owner",
  "id",
  "tier",
  "environment",
  "status",
  "revoked_reason",
  "scopes",
  "ip_allow",
  "ip_deny",
  "created",
  "expires",
] as const;

type CsvField = (typeof CSV_FIELDS)[number];

/** Longest CSV record accepted, characters (a key row is far shorter). */
const MAX_RECORD_CHARS = 64 * 1024;

/** A CSV file Tollgate cannot read as keys: bad quoting, unknown columns, missing fields. */
export class CsvFormatError extends Error {}

/** One CSV record: its cells and the line it starts on (1-based). */
export interface CsvRecord {
  line: number;
  cells: string[];
}

/**
 * Splits lines into CSV records, joining the lines of a quoted cell that
 * spans several. Streams: holds one record at a time. Throws on a record
 * longer than 64 KiB (an unclosed quote, most likely).
 */
export async function* csvRecords(lines: AsyncIterable<string>): AsyncGenerator<CsvRecord> {
  let pending: string | undefined;
  let start = 0;
  let n = 0;
  // Quote parity tells whether a record goes on (an escaped `""` counts twice).
  let open = false;
  for await (const raw of lines) {
    n++;
    if (pending === undefined) start = n;
    const text: string = pending === undefined ? raw : `${pending}\n${raw}`;
    for (const c of raw) if (c === '"') open = !open;
    if (open) {
      if (text.length > MAX_RECORD_CHARS) {
        throw new CsvFormatError(`line ${start}: a quoted cell is not closed within 64 KiB`);
      }
      pending = text;
      continue;
    }
    pending = undefined;
    if (text.trim() === "") continue;
    yield { line: start, cells: splitCsv(text) as string[] };
  }
  if (pending !== undefined) throw new CsvFormatError(`line ${start}: a quoted cell is not closed`);
}

/** The cells of one complete CSV record, or undefined if a quote is still open. */
export function splitCsv(text: string): string[] | undefined {
  const cells: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      cells.push(cell);
      cell = "";
    } else if (c !== "\r" || i !== text.length - 1) cell += c;
  }
  if (quoted) return undefined;
  cells.push(cell);
  return cells;
}

/** How CSV columns map to import fields. */
export interface CsvMapping {
  /** Column index per field. */
  fields: Partial<Record<CsvField, number>>;
  /** Column index per metadata entry name. */
  metadata: [string, number][];
  /** The prefix of rows without a `prefix` column. */
  defaultPrefix: string;
}

/**
 * Maps the header row: each column by its name (or the `--map` naming it),
 * `metadata.<name>` columns to metadata entries, `--ignore`d columns to
 * nothing. Throws naming unknown columns and missing required fields.
 */
export function mapCsvHeader(
  header: readonly string[],
  o: { map: Record<string, string>; ignore: readonly string[]; defaultPrefix: string },
): CsvMapping {
  const renamed = new Map<string, string>();
  for (const [field, column] of Object.entries(o.map)) {
    if (!(CSV_FIELDS as readonly string[]).includes(field) && !field.startsWith("metadata.")) {
      throw new CsvFormatError(
        `--map ${field}=…: not an import field (${CSV_FIELDS.join(", ")}, metadata.<name>)`,
      );
    }
    renamed.set(column, field);
  }
  const mapping: CsvMapping = { fields: {}, metadata: [], defaultPrefix: o.defaultPrefix };
  const unknown: string[] = [];
  header.forEach((raw, i) => {
    const column = raw.trim();
    if (o.ignore.includes(column)) return;
    const field = renamed.get(column) ?? column;
    if (field.startsWith("metadata.") && field.length > "metadata.".length) {
      mapping.metadata.push([field.slice("metadata.".length), i]);
    } else if ((CSV_FIELDS as readonly string[]).includes(field)) {
      if (mapping.fields[field as CsvField] !== undefined) {
        throw new CsvFormatError(`two columns fill the field ${field}`);
      }
      mapping.fields[field as CsvField] = i;
    } else unknown.push(column);
  });
  if (unknown.length > 0) {
    throw new CsvFormatError(
      `unknown column(s) ${unknown.map((c) => `"${c}"`).join(", ")}: name them after an import field, rename with --map FIELD=COLUMN, or skip with --ignore COLUMN`,
    );
  }
  for (const [column, field] of renamed) {
    if (!header.some((h) => h.trim() === column)) {
      throw new CsvFormatError(`--map ${field}=${column}: the file has no column "${column}"`);
    }
  }
  if (mapping.fields.hash === undefined)
    throw new CsvFormatError("no hash column (map one with --map hash=COLUMN)");
  if (mapping.fields.owner === undefined) {
    throw new CsvFormatError("no owner column (map one with --map owner=COLUMN)");
  }
  if (mapping.fields.prefix === undefined && o.defaultPrefix === "") {
    throw new CsvFormatError(
      "no prefix column: give the prefix every secret starts with, --prefix P",
    );
  }
  return mapping;
}

/**
 * One CSV row as a foreign import record, or the problem with a cell that
 * the server could not name (a time or an enum word). Values are never quoted
 * in the problem: a cell may hold anything.
 */
export function csvRowToRecord(cells: readonly string[], m: CsvMapping): KeyExport | string {
  const get = (f: CsvField) => {
    const i = m.fields[f];
    return i === undefined ? "" : (cells[i] ?? "").trim();
  };
  const list = (f: CsvField) =>
    get(f)
      .split(/[\s,;]+/)
      .filter(Boolean);
  const times: Record<string, ReturnType<typeof timestampFromMs> | undefined> = {};
  for (const f of ["created", "expires"] as const) {
    const text = get(f);
    if (text === "") continue;
    const ms = /^\d{1,15}$/.test(text) ? Number(text) : Date.parse(text);
    if (!Number.isFinite(ms)) return `${f}: not an ISO 8601 time or epoch milliseconds`;
    times[f] = timestampFromMs(ms);
  }
  const encodingText = get("hash_encoding").toLowerCase();
  const encoding =
    encodingText === ""
      ? DigestEncoding.UNSPECIFIED
      : encodingText === "hex"
        ? DigestEncoding.HEX
        : encodingText === "base64"
          ? DigestEncoding.BASE64
          : undefined;
  if (encoding === undefined) return "hash_encoding: must be hex or base64";
  const algorithm = get("hash_algorithm").toLowerCase().replace("-", "");
  if (algorithm !== "" && algorithm !== "sha256") return "hash_algorithm: must be sha256";
  const statusText = get("status").toLowerCase();
  if (statusText !== "" && statusText !== "active" && statusText !== "revoked") {
    return "status: must be active or revoked";
  }
  const metadata: Record<string, string> = {};
  for (const [name, i] of m.metadata) {
    const value = (cells[i] ?? "").trim();
    if (value !== "") metadata[name] = value;
  }
  return create(KeyExportSchema, {
    formatVersion: 1,
    key: {
      id: get("id"),
      owner: get("owner"),
      tier: get("tier"),
      environment: get("environment"),
      scopes: list("scopes"),
      ipAllow: list("ip_allow"),
      ipDeny: list("ip_deny"),
      metadata,
      status: statusText === "revoked" ? KeyStatus.REVOKED : KeyStatus.ACTIVE,
      revokedReason: get("revoked_reason"),
      ...(times.created && { createTime: times.created }),
      ...(times.expires && { expireTime: times.expires }),
    },
    foreignDigest: { algorithm: DigestAlgorithm.SHA256, encoding, value: get("hash") },
    foreignPrefix: get("prefix") || m.defaultPrefix,
  });
}
