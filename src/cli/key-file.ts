/**
 * The key backup file: JSON Lines, one object per line, read and written a
 * line at a time so a million keys never sit in memory.
 *
 *   line 1      header   {"format":"tollgate-keys","version":1,"exported_at":…,"pepper_fingerprint_prefix":…}
 *   lines 2…    records  a KeyExport message in proto3 JSON with proto field names
 *   last line   trailer  {"end":true,"keys":<records written>}
 *
 * The trailer tells a complete file from a cut-off one. The header is
 * optional on import for hand-made files of foreign keys (their records
 * carry no pepper-made digest, so no fingerprint is needed).
 */
import { fromJson, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import { type KeyExport, KeyExportSchema } from "../gen/tollgate/v1/key_export_pb.js";

/** The `format` of a key backup file's header. */
export const KEY_FILE_FORMAT = "tollgate-keys";
/** The file format version written (and the newest read). */
export const KEY_FILE_VERSION = 1;

/** The first line of a backup file. */
export interface KeyFileHeader {
  format: typeof KEY_FILE_FORMAT;
  version: number;
  /** When the export started (ISO 8601). */
  exported_at: string;
  /** The exporting server's pepper fingerprint prefix (8 hex characters). */
  pepper_fingerprint_prefix: string;
}

/** The last line of a complete backup file. */
export interface KeyFileTrailer {
  end: true;
  keys: number;
}

/** One parsed line of a backup file. */
export type KeyFileLine =
  | { kind: "header"; header: KeyFileHeader }
  | { kind: "trailer"; trailer: KeyFileTrailer }
  | { kind: "record"; record: KeyExport }
  | { kind: "blank" }
  | { kind: "bad"; error: string };

/** The header line. */
export function headerLine(pepperFingerprintPrefix: string, exportedAt: Date): string {
  const header: KeyFileHeader = {
    format: KEY_FILE_FORMAT,
    version: KEY_FILE_VERSION,
    exported_at: exportedAt.toISOString(),
    pepper_fingerprint_prefix: pepperFingerprintPrefix,
  };
  return JSON.stringify(header);
}

/** A record line. */
export function recordLine(record: KeyExport): string {
  return toJsonString(KeyExportSchema, record, { useProtoFieldName: true });
}

/** The trailer line. */
export function trailerLine(keys: number): string {
  return JSON.stringify({ end: true, keys } satisfies KeyFileTrailer);
}

/**
 * Parses one line. Errors name what is wrong with the line's shape, never a
 * value in it (a record holds digests).
 */
export function parseKeyFileLine(line: string): KeyFileLine {
  if (line.trim() === "") return { kind: "blank" };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: "bad", error: "not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "bad", error: "not a JSON object" };
  }
  const o = value as Record<string, unknown>;
  if ("format" in o) {
    if (o.format !== KEY_FILE_FORMAT) return { kind: "bad", error: "not a tollgate-keys header" };
    if (typeof o.version !== "number" || !Number.isInteger(o.version) || o.version < 1) {
      return { kind: "bad", error: "header without a version" };
    }
    const fp = typeof o.pepper_fingerprint_prefix === "string" ? o.pepper_fingerprint_prefix : "";
    return {
      kind: "header",
      header: {
        format: KEY_FILE_FORMAT,
        version: o.version,
        exported_at: typeof o.exported_at === "string" ? o.exported_at : "",
        pepper_fingerprint_prefix: fp,
      },
    };
  }
  if (o.end === true) {
    return typeof o.keys === "number"
      ? { kind: "trailer", trailer: { end: true, keys: o.keys } }
      : { kind: "bad", error: "trailer without a key count" };
  }
  try {
    return { kind: "record", record: fromJson(KeyExportSchema, value as JsonValue) };
  } catch (err) {
    return { kind: "bad", error: decodeProblem((err as Error).message) };
  }
}

/**
 * protobuf-es's decode error, without the value it quotes: the field, enum or
 * message it names, and an unknown field's name when it is a plain identifier.
 */
function decodeProblem(message: string): string {
  const unknown = /key "([A-Za-z_][A-Za-z0-9_]{0,63})" is unknown/.exec(message);
  if (unknown) return `unknown field "${unknown[1]}"`;
  const field = /decode field ([\w.]+)/.exec(message);
  if (field) return `field ${field[1]} cannot be read`;
  const en = /decode enum ([\w.]+)/.exec(message);
  if (en) return `a value is not a name of enum ${en[1]}`;
  const msg = /decode message ([\w.]+)/.exec(message);
  if (msg) return `message ${msg[1]} cannot be read`;
  return "not a KeyExport record";
}
