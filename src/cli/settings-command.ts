/**
 * `tollgate settings`: every setting's effective value (secrets masked) and
 * where it came from — the environment, the configuration file or the
 * default — as `serve` with the same environment and --config would see it.
 * `--markdown` prints the documentation table instead; `--help` explains.
 */
import { settingsHelp, settingsMarkdown } from "../config/settings.js";
import { effectiveSettings, readSettingsFile } from "../config/settings-file.js";

const HELP = `Usage: tollgate settings [--config FILE] [--markdown]

Prints each setting's effective value and its source (environment, file, default), secrets
masked. --config FILE (or TOLLGATE_CONFIG) names the configuration file serve would read.
--markdown prints the settings table of the README instead.
`;

/** Runs the command; returns the exit code. */
export function settingsCommand(args: string[]): number {
  let config = process.env.TOLLGATE_CONFIG;
  let markdown = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--markdown") markdown = true;
    else if (a === "--config" && args[i + 1] !== undefined) config = args[++i];
    else if (a === "--help" || a === "-h") {
      process.stdout.write(`${HELP}\nSettings:\n${settingsHelp()}\n`);
      return 0;
    } else {
      process.stderr.write(`tollgate settings: unknown argument "${a}"\n\n${HELP}`);
      return 2;
    }
  }
  if (markdown) {
    process.stdout.write(`${settingsMarkdown()}\n`);
    return 0;
  }
  let file: Record<string, string> = {};
  try {
    if (config) file = readSettingsFile(config);
  } catch (err) {
    process.stderr.write(`tollgate settings: ${(err as Error).message}\n`);
    return 2;
  }
  const rows = effectiveSettings(process.env, file);
  const width = Math.max(...rows.map((r) => r.env.length));
  const lines = rows.map((r) => `${r.env.padEnd(width)}  ${r.source.padEnd(11)}  ${r.shown}`);
  process.stdout.write(
    `${"setting".padEnd(width)}  ${"source".padEnd(11)}  value\n${lines.join("\n")}\n`,
  );
  return 0;
}
