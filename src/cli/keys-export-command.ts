/**
 * `tollgate keys export [--out FILE]`: every key of a running server, as the
 * JSON Lines backup file (key-file.ts), written page by page as ExportKeys
 * answers, so memory stays flat whatever the number of keys. With --out the
 * file is written as FILE.partial (mode 0600: it holds digests) and renamed
 * only when complete.
 */
import { once } from "node:events";
import { createWriteStream, existsSync, renameSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { clientsFromOptions, reportRpcError } from "./client.js";
import { checkFlags } from "./flags.js";
import { headerLine, recordLine, trailerLine } from "./key-file.js";
import { KEYS_SIBLINGS, keysFlags } from "./keys-flags.js";
import { Progress } from "./progress.js";

const HELP = `Usage: tollgate keys export [--out FILE] [--force] [--page-size N]

Writes every key (revoked ones too) with the digests of its secrets — never a
secret — as JSON Lines: a header line, one record per key, a trailer line.
Without --out the file goes to standard output. Protect it like the Redis:
digests let whoever holds the pepper test guessed secrets offline.

  --out FILE        write FILE (created with mode 0600; refused if it exists)
  --force           replace an existing FILE
  --page-size N     keys per ExportKeys call, 1..1000 (default 1000)
  --server URL, --token-file F   as for the other keys commands

Example:
  tollgate keys export --out keys.jsonl
`;

/** Runs `keys export`; returns the exit code. */
export async function keysExportCommand(argv: string[]): Promise<number> {
  let o: Record<string, string | boolean | undefined>;
  try {
    checkFlags(argv, keysFlags("export"), "keys export", KEYS_SIBLINGS);
    ({ values: o } = parseArgs({ args: argv, options: keysFlags("export") }));
  } catch (err) {
    process.stderr.write(`tollgate keys export: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const pageSize = o["page-size"] === undefined ? 1000 : Number(o["page-size"]);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
    process.stderr.write("tollgate keys export: --page-size must be a whole number 1..1000\n");
    return 2;
  }
  const out = typeof o.out === "string" ? o.out : undefined;
  if (out !== undefined && existsSync(out) && !o.force) {
    process.stderr.write(`tollgate keys export: ${out} exists (--force replaces it)\n`);
    return 2;
  }
  let clients: ReturnType<typeof clientsFromOptions>;
  try {
    clients = clientsFromOptions(o);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    process.stderr.write(`tollgate keys export: cannot read the token file (${code})\n`);
    return 2;
  }
  const partial = out === undefined ? undefined : `${out}.partial`;
  const sink = partial === undefined ? process.stdout : createWriteStream(partial, { mode: 0o600 });
  let sinkError: Error | undefined;
  sink.on("error", (err: Error) => {
    sinkError = err;
  });
  const write = async (line: string) => {
    if (sinkError) throw sinkError;
    // once() rejects if the stream fails while we wait.
    if (!sink.write(`${line}\n`)) await once(sink, "drain");
  };
  const progress = new Progress({ verb: "exported" });
  const startedAt = new Date();
  try {
    let pageToken = "";
    let first = true;
    do {
      const page = await clients.keys.exportKeys({ pageSize, pageToken });
      if (first) await write(headerLine(page.pepperFingerprintPrefix, startedAt));
      first = false;
      for (const k of page.keys) await write(recordLine(k));
      progress.add(page.keys.length);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    await write(trailerLine(progress.total));
    if (partial !== undefined && out !== undefined) {
      const closed = once(sink, "close");
      sink.end();
      await closed;
      if (sinkError) throw sinkError;
      renameSync(partial, out);
    }
  } catch (err) {
    progress.done();
    if (partial !== undefined) {
      sink.destroy();
      rmSync(partial, { force: true });
    }
    if (err === sinkError) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      process.stderr.write(`tollgate keys export: cannot write the file (${code})\n`);
      return 1;
    }
    return reportRpcError("tollgate keys export", err, clients.baseUrl);
  }
  progress.done();
  const s = progress.seconds;
  process.stderr.write(
    `exported ${progress.total} keys${out ? ` to ${out}` : ""} in ${s.toFixed(1)} s (${Math.round(progress.total / Math.max(s, 0.001))}/s)\n`,
  );
  return 0;
}
