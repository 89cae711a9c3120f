/**
 * A single configuration file for people who would rather not set dozens of
 * variables: YAML (or JSON) mapping setting names — the same names as the
 * environment variables, e.g. `TOLLGATE_POLICY_FILE: policy.yaml` — to values.
 * The environment overrides the file; the file overrides the defaults. Given by
 * `tollgate serve --config FILE` or TOLLGATE_CONFIG.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { closestSetting, SETTINGS, SettingsError } from "./settings.js";

/** Where a setting's effective value came from. */
export type SettingSource = "default" | "file" | "environment";

/** One setting as `tollgate settings` shows it. */
export interface EffectiveSetting {
  env: string;
  /** The value in force ("(secret)" for a set secret). */
  shown: string;
  source: SettingSource;
}

/**
 * Reads the configuration file into environment-style strings. Unknown names
 * are refused naming the closest setting; values must be scalars.
 */
export function readSettingsFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new SettingsError(
      `TOLLGATE_CONFIG / --config: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 10 });
  } catch (err) {
    throw new SettingsError(`${path}: not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new SettingsError(`${path}: must be a mapping of setting names to values`);
  }
  const known = Object.values(SETTINGS).map((s) => s.env);
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const [name, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!known.includes(name)) {
      const close = closestSetting(name.toUpperCase(), known);
      problems.push(`${name}: not a Tollgate setting${close ? `; did you mean ${close}?` : ""}`);
      continue;
    }
    if (value === null || typeof value === "object") {
      problems.push(`${name}: must be a single value (a string, number or boolean)`);
      continue;
    }
    out[name] = String(value);
  }
  if (problems.length > 0) throw new SettingsError(`${path}: ${problems.join("; ")}`);
  return out;
}

/**
 * The environment a server sees: the file's values under the real
 * environment's (which wins), and where each setting came from.
 */
export function mergeSettingsFile(
  env: NodeJS.ProcessEnv,
  file: Record<string, string>,
): NodeJS.ProcessEnv {
  const merged: NodeJS.ProcessEnv = { ...file };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) merged[k] = v;
  return merged;
}

/** Every setting's effective value and its source, secrets masked (for `tollgate settings`). */
export function effectiveSettings(
  env: NodeJS.ProcessEnv,
  file: Record<string, string>,
): EffectiveSetting[] {
  return Object.values(SETTINGS).map((s) => {
    const fromEnv = env[s.env];
    const fromFile = file[s.env];
    const source: SettingSource =
      fromEnv !== undefined ? "environment" : fromFile !== undefined ? "file" : "default";
    const value = fromEnv ?? fromFile ?? s.default;
    const shown = s.secret && value !== "" ? "(secret)" : value === "" ? "(empty)" : value;
    return { env: s.env, shown, source };
  });
}
