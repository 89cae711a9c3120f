// Rewrites the README's settings table from the settings module (the same
// source as `tollgate --help`). Run after `npm run build`.
import { readFileSync, writeFileSync } from "node:fs";
import { settingsMarkdown } from "../dist/config/settings.js";

const START = /<!-- settings:start[^>]*-->\n/;
const END = "<!-- settings:end -->";
const readme = readFileSync("README.md", "utf8");
const m = START.exec(readme);
const end = readme.indexOf(END);
if (!m || end < 0) throw new Error("README.md lacks the settings markers");
const next = readme.slice(0, m.index + m[0].length) + settingsMarkdown() + "\n" + readme.slice(end);
writeFileSync("README.md", next);
