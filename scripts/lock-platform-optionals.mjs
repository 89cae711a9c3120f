// Adds lockfile entries for platform-specific optional dependencies that the
// registry mirror here does not serve (e.g. @biomejs/cli-darwin-arm64): npm
// records only the packages it could fetch, and `npm ci` then refuses the
// lockfile as out of sync. Each added entry carries its os/cpu, so npm skips it
// on other platforms without fetching it. Run after any `npm install`.
import { readFileSync, writeFileSync } from "node:fs";

const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const OS = ["darwin", "linux", "win32", "android", "freebsd", "openbsd", "sunos", "aix"];
const CPU = ["arm64", "x64", "ia32", "arm", "armv7", "ppc64", "s390x", "riscv64", "loong64"];
let added = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (lock.packages[key] || lock.packages[`${path}/${key}`]) continue;
    const parts = name.split("/").pop().split("-");
    const os = parts.find((p) => OS.includes(p));
    const cpu = parts.find((p) => CPU.includes(p));
    if (!os && !cpu) continue; // not a platform package: leave it to npm
    lock.packages[key] = {
      version,
      ...(entry.dev && { dev: true }),
      optional: true,
      ...(cpu && { cpu: [cpu === "armv7" ? "arm" : cpu] }),
      ...(os && { os: [os] }),
      ...(/musl/.test(name) && { libc: ["musl"] }),
    };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platform-optionals: added ${added} entries`);
