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

/**
 * Runs a defined script command, and if Redis answers NOSCRIPT (its script
 * cache was flushed; with auto-pipelining ioredis passes that error through
 * instead of falling back), runs the same constant script text once with EVAL.
 * Script text is never built from input.
 */
export async function withNoScriptRetry<T>(
  run: () => Promise<T>,
  evalFallback: () => Promise<unknown>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!String((err as Error)?.message ?? "").startsWith("NOSCRIPT")) throw err;
    return (await evalFallback()) as T;
  }
}
