/**
 * The registry of Tollgate's Lua scripts: each file of the package's `lua/`
 * folder is read once, here, with its SHA-1 (what EVALSHA names it by). Every
 * Redis store runs them through `runScript` (script-runner.ts); none defines
 * its own command. Redis scripts cannot load modules, so code two scripts
 * share lives once in `lua/includes/` and is pasted in at load time by a
 * `--!include <file>` line (as bullmq's script loader does).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/** One Lua script: its file name, text, SHA-1 and fixed key count (absent for `-n`). */
export interface LuaScript {
  readonly file: string;
  readonly lua: string;
  readonly sha: string;
  /** The number of KEYS, from the file name; undefined for `-n` (variable) scripts. */
  readonly numberOfKeys?: number;
}

/**
 * Reads a Lua script shipped in the package's `lua/` folder. Scripts are named
 * `<name>-<numKeys>.lua`; the key count is taken from the name so it cannot
 * drift from the script.
 */
export function loadLuaScript(file: string): LuaScript {
  const m = /-(\d+|n)\.lua$/.exec(file);
  if (!m) throw new Error(`Lua script name ${file} lacks its -<numKeys> (or -n) suffix`);
  // src/store and dist/store are both two levels below the package root.
  const lua = expandIncludes(readFileSync(new URL(`../../lua/${file}`, import.meta.url), "utf8"));
  const sha = createHash("sha1").update(lua).digest("hex");
  return m[1] === "n" ? { file, lua, sha } : { file, lua, sha, numberOfKeys: Number(m[1]) };
}

/**
 * `text` with each `--!include <file>` line replaced by `lua/includes/<file>`
 * (includes do not nest). An unknown file throws at load, naming it.
 */
export function expandIncludes(text: string): string {
  return text.replace(/^--!include ([a-z0-9-]+\.lua)$/gm, (_, name: string) =>
    readFileSync(new URL(`../../lua/includes/${name}`, import.meta.url), "utf8").trimEnd(),
  );
}

/** Every script Tollgate runs, loaded once per process. */
export const SCRIPTS = {
  rateLimit: loadLuaScript("rate-limit-n.lua"),
  refund: loadLuaScript("refund-n.lua"),
  take: loadLuaScript("take-1.lua"),
  placeBlock: loadLuaScript("place-block-n.lua"),
  recordEvent: loadLuaScript("record-event-3.lua"),
  appendTrimmed: loadLuaScript("append-trimmed-1.lua"),
  detectWindow: loadLuaScript("detect-window-2.lua"),
  detectSpike: loadLuaScript("detect-spike-2.lua"),
  detectTrack: loadLuaScript("detect-track-1.lua"),
  replaceIfVersion: loadLuaScript("replace-if-version-1.lua"),
  claimDigest: loadLuaScript("claim-digest-1.lua"),
  creditsAdjust: loadLuaScript("credits-adjust-1.lua"),
} as const satisfies Record<string, LuaScript>;
