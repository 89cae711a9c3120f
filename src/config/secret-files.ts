/**
 * Secrets mounted as files (Kubernetes Secrets): the management token(s) and
 * the pepper. A file that cannot be read stops the start, naming its setting;
 * no message ever echoes a file's content.
 */
import { readFileSync } from "node:fs";
import { StartupError } from "./startup-error.js";

/** A management token with the name audit logs attribute its actions to. */
export interface NamedToken {
  name: string;
  token: string;
  /** True for a look-only token: read RPCs answer it, changes refuse it (PERMISSION_DENIED). */
  readOnly?: boolean;
}

/**
 * The file's text without surrounding whitespace (editors and `kubectl create
 * secret --from-file` leave a trailing newline).
 * @throws StartupError naming `setting` when the file cannot be read.
 */
export function readSecretFile(path: string, setting: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new StartupError(
      `${setting}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

/**
 * Reads `name:token` lines (blank lines and `#` comments ignored), each
 * optionally followed by whitespace and a role, `read-only` or `full` (the
 * default). A token never holds whitespace (a Bearer credential cannot), so
 * the role column cannot be mistaken for part of it. Names attribute actions
 * in audit logs; tokens must be at least 16 bytes.
 * @throws StartupError for an unreadable file or a malformed entry (by number, never its text).
 */
export function readTokensFile(path: string): NamedToken[] {
  const text = readSecretFile(path, "TOLLGATE_MANAGEMENT_TOKENS_FILE");
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l, i) => {
      const [entry = "", role = "full", ...rest] = l.split(/\s+/);
      const sep = entry.indexOf(":");
      const name = entry.slice(0, sep);
      const token = entry.slice(sep + 1);
      if (
        sep <= 0 ||
        !/^[A-Za-z0-9._-]{1,64}$/.test(name) ||
        Buffer.byteLength(token) < 16 ||
        (role !== "full" && role !== "read-only") ||
        rest.length > 0
      ) {
        // Never echo the line: it holds a token.
        throw new StartupError(
          `TOLLGATE_MANAGEMENT_TOKENS_FILE: entry ${i + 1} must be name:token with a 1..64 char name of [A-Za-z0-9._-] and a token of at least 16 bytes`,
        );
      }
      return role === "read-only" ? { name, token, readOnly: true } : { name, token };
    });
}
