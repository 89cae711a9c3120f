/**
 * The console's files, built by `npm run build` (scripts/build-console.mjs)
 * into dist/console-web/: the page, its script and style, and the bundled
 * front-end libraries. They are read once, at start, and served from memory.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where the built files are: dist/console-web/ beside dist/console/ (this
 * module once compiled), and the same directory when run from src/ in tests.
 */
export const CONSOLE_ASSET_DIR = fileURLToPath(new URL("../../dist/console-web/", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** One served file. */
export interface ConsoleAsset {
  type: string;
  body: Buffer;
}

/**
 * The files under `dir` by URL path below /console/ (`index.html` also as
 * `/console/`). Empty when the directory is missing (console not built).
 */
export function loadConsoleAssets(dir: string = CONSOLE_ASSET_DIR): Map<string, ConsoleAsset> {
  const out = new Map<string, ConsoleAsset>();
  if (!existsSync(dir)) return out;
  const walk = (sub: string) => {
    for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) walk(rel);
      else {
        const type = TYPES[extname(e.name)];
        if (type) out.set(`/console/${rel}`, { type, body: readFileSync(join(dir, rel)) });
      }
    }
  };
  walk("");
  const index = out.get("/console/index.html");
  if (index) out.set("/console/", index);
  return out;
}
