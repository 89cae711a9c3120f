/**
 * The one error a configuration that must not start raises. `tollgate serve`
 * prints its message and exits 2, so every message names the setting at fault.
 */

/** Thrown for a configuration that must not start (names the setting). */
export class StartupError extends Error {
  override name = "StartupError";
}
