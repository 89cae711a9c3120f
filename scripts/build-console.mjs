#!/usr/bin/env node
// Builds the web console into dist/console-web/: its own files from web/console/
// and the front-end libraries it imports, copied from node_modules (htm's
// standalone build of Preact + hooks + htm, and uPlot). Nothing is fetched:
// the console runs with no network beyond its own origin.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/console-web`;
rmSync(out, { recursive: true, force: true });
mkdirSync(`${out}/vendor`, { recursive: true });
cpSync(`${root}web/console`, out, { recursive: true });
for (const [from, to] of [
  ["htm/preact/standalone.module.js", "preact-htm.js"],
  ["uplot/dist/uPlot.esm.js", "uPlot.esm.js"],
  ["uplot/dist/uPlot.min.css", "uPlot.min.css"],
  ["htm/LICENSE", "htm.LICENSE.txt"],
  ["uplot/LICENSE", "uPlot.LICENSE.txt"],
]) {
  cpSync(`${root}node_modules/${from}`, `${out}/vendor/${to}`);
}
console.log("built the web console into dist/console-web/");
