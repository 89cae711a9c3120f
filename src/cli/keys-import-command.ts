/**
 * `tollgate keys import FILE`: restores a backup written by `keys export`
 * (JSON Lines, key-file.ts), or imports keys from another system (the same
 * format by hand, or CSV with --format csv, csv-keys.ts). Reads a line at a
 * time and sends ImportKeys batches one after the other, so memory holds one
 * batch whatever the file's size. Each conflicting or invalid record is
 * printed as it is found, with its line; a summary ends the run.
 *
 * Exit codes: 0 every record created or unchanged (or replaced); 3 some
 * record was a conflict or invalid; 1 a call failed (the import stopped;
 * running it again is safe); 2 a usage or file format mistake.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { toBinary } from "@bufbuild/protobuf";
import { type KeyExport, KeyExportSchema } from "../gen/tollgate/v1/key_export_pb.js";
import { ImportOutcome, type KeyImportResult } from "../gen/tollgate/v1/key_service_pb.js";
import { clientsFromOptions, reportRpcError } from "./client.js";
import { CsvFormatError, csvRecords, csvRowToRecord, mapCsvHeader } from "./csv-keys.js";
import { checkFlags } from "./flags.js";
import { KEY_FILE_VERSION, parseKeyFileLine } from "./key-file.js";
import { KEYS_SIBLINGS, keysFlags } from "./keys-flags.js";
import { Progress } from "./progress.js";

const HELP = `Usage: tollgate keys import FILE [options]

Restores a file written by \`tollgate keys export\` (or a hand-made one in its
format; FILE "-" reads standard input). Idempotent: a key whose id exists with
the same content is left unchanged; one with other content is reported as a
conflict and left as it is (--overwrite replaces it; a revoked key is never made
active again). Safe to run again after a failure.

  --dry-run            report what would happen; write nothing
  --overwrite          replace keys that exist with other content
  --format jsonl|csv   the file's format (default: csv for a .csv file, else jsonl)
  --batch-size N       records per ImportKeys call, 1..500 (default 500)
  --json               print the summary as JSON
  --server URL, --token-file F   as for the other keys commands

CSV (keys from another system by their SHA-256 digest; see the README):
  --map FIELD=COLUMN   take FIELD from COLUMN (repeatable), e.g. --map owner=ownerId
  --ignore COLUMN      skip a column (repeatable)
  --prefix P           the prefix every secret starts with, for rows without one

Exit codes: 0 done; 3 some records were conflicts or invalid; 1 a call failed
(the import stopped; run it again); 2 a usage or file format mistake.

Example:
  tollgate keys import keys.jsonl --dry-run
`;

/**
 * A batch is sent before its encoded size passes this: a quarter of the
 * server's default message limit (1 MiB), and quick for it to decode.
 */
const BATCH_BYTES = 256 * 1024;
/** Problems kept for --json (every one is printed as it is found otherwise). */
const MAX_LISTED = 1000;

/** A mistake in the file or the command line (exit code 2). */
class UsageError extends Error {}

interface Problem {
  line: number;
  id: string;
  outcome: "conflict" | "invalid";
  detail: string;
}

/** Runs `keys import`; returns the exit code. */
export async function keysImportCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`tollgate keys import: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { o, file } = parsed;
  if (o.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (file === undefined) {
    process.stderr.write(`tollgate keys import: give the FILE to import\n\n${HELP}`);
    return 2;
  }
  const format = o.format ?? (file.toLowerCase().endsWith(".csv") ? "csv" : "jsonl");
  if (format !== "csv" && format !== "jsonl") {
    process.stderr.write("tollgate keys import: --format must be jsonl or csv\n");
    return 2;
  }
  const batchSize = o["batch-size"] === undefined ? 500 : Number(o["batch-size"]);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 500) {
    process.stderr.write("tollgate keys import: --batch-size must be a whole number 1..500\n");
    return 2;
  }
  let clients: ReturnType<typeof clientsFromOptions>;
  try {
    clients = clientsFromOptions(o);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    process.stderr.write(`tollgate keys import: cannot read the token file (${code})\n`);
    return 2;
  }

  const input = file === "-" ? process.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (file === "-") resolve();
    else input.once("open", () => resolve()).once("error", reject);
  });
  try {
    await opened;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    process.stderr.write(`tollgate keys import: cannot read ${file} (${code})\n`);
    return 2;
  }
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const dryRun = o["dry-run"] === true;
  const counts = { created: 0, unchanged: 0, replaced: 0, conflicts: 0, invalid: 0 };
  const listed: Problem[] = [];
  const progress = new Progress({ verb: dryRun ? "checked" : "imported" });
  const report = (p: Problem) => {
    if (p.outcome === "conflict") counts.conflicts++;
    else counts.invalid++;
    if (listed.length < MAX_LISTED) listed.push(p);
    if (!o.json) {
      progress.done();
      process.stdout.write(`${p.outcome}  line ${p.line}  ${p.id || "-"}  ${p.detail}\n`);
    }
  };

  let fingerprint = "";
  let batch: { line: number; record: KeyExport }[] = [];
  let bytes = 0;
  let lastLine = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const sent = batch;
    batch = [];
    bytes = 0;
    const res = await clients.keys.importKeys({
      keys: sent.map((b) => b.record),
      dryRun,
      overwrite: o.overwrite === true,
      pepperFingerprintPrefix: fingerprint,
    });
    for (const r of res.results) tally(r, sent[r.index]?.line ?? 0);
    progress.add(sent.length);
  };
  const tally = (r: KeyImportResult, line: number) => {
    if (r.outcome === ImportOutcome.CREATED) counts.created++;
    else if (r.outcome === ImportOutcome.UNCHANGED) counts.unchanged++;
    else if (r.outcome === ImportOutcome.REPLACED) counts.replaced++;
    else if (r.outcome === ImportOutcome.CONFLICT) {
      report({ line, id: r.keyId, outcome: "conflict", detail: r.detail });
    } else {
      const detail = r.violations.map((v) => `${v.field}: ${v.description}`).join("; ");
      report({ line, id: r.keyId, outcome: "invalid", detail });
    }
  };
  const add = async (line: number, record: KeyExport) => {
    const size = toBinary(KeyExportSchema, record).length;
    if (batch.length > 0 && bytes + size > BATCH_BYTES) await flush();
    batch.push({ line, record });
    bytes += size;
    if (batch.length >= batchSize) await flush();
  };

  let trailer: number | undefined;
  try {
    if (format === "jsonl") {
      let n = 0;
      for await (const text of lines) {
        n++;
        lastLine = n;
        const l = parseKeyFileLine(text);
        if (l.kind === "blank") continue;
        if (trailer !== undefined)
          throw new UsageError(`line ${n}: content after the trailer line`);
        if (l.kind === "header") {
          if (n !== 1) throw new UsageError(`line ${n}: a header line is only allowed first`);
          if (l.header.version > KEY_FILE_VERSION) {
            throw new UsageError(
              `this file is format version ${l.header.version}; this tollgate reads version ${KEY_FILE_VERSION}`,
            );
          }
          fingerprint = l.header.pepper_fingerprint_prefix;
        } else if (l.kind === "trailer") trailer = l.trailer.keys;
        else if (l.kind === "bad") report({ line: n, id: "", outcome: "invalid", detail: l.error });
        else await add(n, l.record);
      }
    } else {
      let mapping: ReturnType<typeof mapCsvHeader> | undefined;
      for await (const row of csvRecords(lines)) {
        lastLine = row.line;
        if (!mapping) {
          mapping = mapCsvHeader(row.cells, {
            map: o.map,
            ignore: o.ignore,
            defaultPrefix: o.prefix ?? "",
          });
          continue;
        }
        const r = csvRowToRecord(row.cells, mapping);
        if (typeof r === "string")
          report({ line: row.line, id: "", outcome: "invalid", detail: r });
        else await add(row.line, r);
      }
      if (!mapping) throw new UsageError("the CSV file is empty (a header row is required)");
    }
    await flush();
  } catch (err) {
    progress.done();
    if (err instanceof UsageError || err instanceof CsvFormatError) {
      process.stderr.write(`tollgate keys import: ${file}: ${err.message}\n`);
      return 2;
    }
    const errno = (err as NodeJS.ErrnoException).code;
    if (typeof errno === "string") {
      process.stderr.write(`tollgate keys import: cannot read ${file} (${errno})\n`);
      return 2;
    }
    const code = reportRpcError("tollgate keys import", err, clients.baseUrl);
    process.stderr.write(
      `tollgate keys import: stopped near line ${lastLine}; records before it may be imported — running the same command again is safe\n`,
    );
    return code;
  }
  progress.done();
  const records = counts.created + counts.unchanged + counts.replaced + counts.conflicts;
  const warnings: string[] = [];
  if (format === "jsonl" && trailer === undefined && fingerprint !== "") {
    warnings.push("the file has no trailer line: it may be cut off (was the export interrupted?)");
  } else if (trailer !== undefined && trailer !== records + counts.invalid) {
    warnings.push(
      `the trailer says ${trailer} keys; ${records + counts.invalid} records were read`,
    );
  }
  const s = progress.seconds;
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({ dry_run: dryRun, ...counts, seconds: Number(s.toFixed(3)), problems: listed, warnings })}\n`,
    );
  } else {
    const parts = [
      `${counts.created} ${dryRun ? "to create" : "created"}`,
      `${counts.unchanged} unchanged`,
      ...(counts.replaced > 0 || o.overwrite
        ? [`${counts.replaced} ${dryRun ? "to replace" : "replaced"}`]
        : []),
      `${counts.conflicts} conflicts`,
      `${counts.invalid} invalid`,
    ];
    process.stdout.write(
      `${dryRun ? "dry run (nothing written): " : ""}${parts.join(", ")} in ${s.toFixed(1)} s\n`,
    );
    for (const w of warnings) process.stderr.write(`tollgate keys import: warning: ${w}\n`);
  }
  return counts.conflicts + counts.invalid > 0 ? 3 : 0;
}

function parse(argv: string[]) {
  checkFlags(argv, keysFlags("import"), "keys import", KEYS_SIBLINGS);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: keysFlags("import"),
  });
  if (positionals.length > 1) throw new Error(`unexpected argument "${positionals[1]}"`);
  const map: Record<string, string> = {};
  for (const m of values.map ?? []) {
    const i = m.indexOf("=");
    if (i <= 0 || i === m.length - 1) throw new Error(`--map wants FIELD=COLUMN, got "${m}"`);
    map[m.slice(0, i)] = m.slice(i + 1);
  }
  return {
    o: { ...values, map, ignore: values.ignore ?? [] },
    file: positionals[0],
  };
}
