import { readFileSync } from "node:fs";

/**
 * Reads a Lua script shipped in the package's `lua/` folder. Scripts are named
 * `<name>-<numKeys>.lua`; the key count is taken from the name so it cannot
 * drift from the script.
 */
export function loadLuaScript(fileName: string): { lua: string; numberOfKeys?: number } {
  const m = /-(\d+|n)\.lua$/.exec(fileName);
  if (!m) throw new Error(`Lua script name ${fileName} lacks its -<numKeys> (or -n) suffix`);
  // src/store and dist/store are both two levels below the package root.
  const lua = readFileSync(new URL(`../../lua/${fileName}`, import.meta.url), "utf8");
  // `-n` scripts take a variable number of keys: callers pass the count first.
  return m[1] === "n" ? { lua } : { lua, numberOfKeys: Number(m[1]) };
}
