/**
 * The one way Tollgate runs a Lua script on Redis: EVALSHA by the script's
 * SHA-1, and when Redis answers NOSCRIPT (its script cache was emptied by a
 * SCRIPT FLUSH, a restart, or a failover to a replica that never saw the
 * script), EVAL of the same constant text, which also caches it again.
 *
 * Why not ioredis `defineCommand`: its own NOSCRIPT fallback does not hold
 * under auto-pipelining (the error reaches the caller; a SCRIPT FLUSH then
 * dropped a whole batch of events), and on Cluster its script commands were
 * batched across slots. EVALSHA and EVAL are plain commands: auto-pipelining
 * batches them like any other, and Cluster routes them by their first key.
 * Script text is never built from input.
 */
import type { LuaScript } from "./lua-scripts.js";
import type { RedisClient } from "./redis-client.js";

/** A script argument as Redis receives it. */
export type ScriptArg = string | number;

/** True if `err` is Redis saying it does not have the script cached. */
export function isNoScriptReply(err: unknown): boolean {
  return String((err as Error | undefined)?.message ?? "").startsWith("NOSCRIPT");
}

/**
 * Runs `script` with `keys` and `args`. Resolves to the script's raw reply
 * (the caller decodes it with the script's named decoder). A NOSCRIPT reply
 * is answered once with EVAL; any error of that EVAL (a connection lost
 * meanwhile, a script error) is what the caller sees.
 */
export async function runScript<T = unknown>(
  redis: RedisClient,
  script: LuaScript,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<T> {
  if (script.numberOfKeys !== undefined && keys.length !== script.numberOfKeys) {
    throw new Error(`${script.file} takes ${script.numberOfKeys} keys, got ${keys.length}`);
  }
  try {
    return (await redis.evalsha(script.sha, keys.length, ...keys, ...args)) as T;
  } catch (err) {
    if (!isNoScriptReply(err)) throw err;
    return (await redis.eval(script.lua, keys.length, ...keys, ...args)) as T;
  }
}
