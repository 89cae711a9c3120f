// Builds (npm run build) only when an input changed since the last build, so
// `npm start` starts in about a second on an unchanged checkout. Inputs: the
// sources, protos, Lua scripts, build configs and the installed dependencies
// (package-lock.json). The stamp is written after a successful build.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const STAMP = "dist/.build-stamp";
const INPUTS = [
  "src",
  "proto",
  "lua",
  "web",
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "tsconfig.build.json",
  "buf.yaml",
  "buf.gen.yaml",
  "buf.envoy.yaml",
  "buf.gen.envoy.yaml",
];

/** Newest modification time under `path` (generated code excluded: the build writes it). */
function newest(path) {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let max = 0;
  for (const name of readdirSync(path)) {
    if (path === "src" && name === "gen") continue;
    max = Math.max(max, newest(join(path, name)));
  }
  return max;
}

// `npm run build` ends with --stamp-only: it just built, so it records that,
// with what `tollgate version` and tollgate_build_info report.
if (process.argv.includes("--stamp-only")) {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], {
      stdio: ["ignore", "pipe", "ignore"],
    })
      .toString()
      .trim();
  } catch {
    // Not a git checkout (e.g. an image build without .git).
  }
  const { version } = JSON.parse(readFileSync("package.json", "utf8"));
  writeFileSync("dist/build-info.json", `${JSON.stringify({ version, commit })}\n`);
  // The package's bin: tsc writes it without the executable bit, so `npx
  // tollgate` in a fresh clone would be "Permission denied".
  chmodSync("dist/cli/main.js", 0o755);
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  process.exit(0);
}
const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
const changed = Math.max(...INPUTS.map(newest));
const stale = built === 0 || changed > built || !existsSync("dist/cli/main.js");
// --check: only say (exit 1 when a build is needed), e.g. for a test that must not build.
if (process.argv.includes("--check")) process.exit(stale ? 1 : 0);
if (stale) {
  execFileSync("npm", ["run", "build", "--silent"], { stdio: "inherit" });
}
