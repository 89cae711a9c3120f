#!/usr/bin/env node
// Runs the end-to-end suite (test/e2e, or the files given as arguments) on
// the Node major the container image ships, so a Node upgrade in the image
// is tested before it ships. The Node binary comes from the npm package
// node@<major> (the only registry reachable in CI), installed once into
// node_modules/.cache/node-lts — the same cache test/image/production-install
// uses. Vitest runs under that binary, so every Tollgate process the tests
// spawn (process.execPath) runs on it too.
//
// Usage: node test/image/e2e-on-image-node.mjs [vitest file filters...]
// Needs `npm run build` first (npm test does it).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
// The image's Node major, read from the Dockerfile so the two cannot drift.
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
const major = /^ARG NODE_IMAGE=node:(\d+)/m.exec(dockerfile)?.[1];
if (!major) {
  console.error("e2e-on-image-node: no `ARG NODE_IMAGE=node:<major>` in the Dockerfile");
  process.exit(2);
}
const prefix = join(root, "node_modules/.cache/node-lts");
const node = join(prefix, "node_modules/node/bin/node");
const version = () =>
  existsSync(node) ? execFileSync(node, ["--version"], { encoding: "utf8" }).trim() : "";
if (!version().startsWith(`v${major}.`)) {
  console.log(`e2e-on-image-node: installing node@${major} from npm into ${prefix}`);
  execFileSync(
    "npm",
    ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, `node@${major}`],
    { stdio: "inherit" },
  );
}
const filters = process.argv.slice(2);
console.log(`e2e-on-image-node: vitest on Node ${version()}: ${filters.join(" ") || "test/e2e"}`);
const r = spawnSync(
  node,
  [
    join(root, "node_modules/vitest/vitest.mjs"),
    "run",
    ...(filters.length ? filters : ["test/e2e"]),
  ],
  { cwd: root, stdio: "inherit" },
);
process.exit(r.status ?? 1);
