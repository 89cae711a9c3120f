/**
 * What build is running: `tollgate version` / `--version`, the version in the
 * "tollgate serving" log line, and the tollgate_build_info metric agree.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CLI, startTollgateProcess } from "../helpers/tollgate-process.js";

const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

describe("tollgate version", () => {
  it("prints the version, the commit and Node, as version and --version", () => {
    for (const arg of ["version", "--version"]) {
      const out = execFileSync(process.execPath, [CLI, arg]).toString();
      expect(out).toMatch(
        new RegExp(
          `^tollgate ${VERSION.replace(/\./g, "\\.")} \\(commit ([0-9a-f]{7,40}|unknown), node v\\d+`,
        ),
      );
      expect(out).toContain(`node ${process.version}`);
    }
  });

  it("is in the startup log line and the tollgate_build_info metric", async () => {
    const p = await startTollgateProcess({});
    try {
      const serving = p.logs.find((l) => l.msg === "tollgate serving") as Record<string, unknown>;
      expect(serving.version).toBe(VERSION);
      const metrics = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
      expect(metrics).toMatch(
        new RegExp(
          `^tollgate_build_info\\{version="${VERSION}",commit="${serving.commit}",node="${process.version}"\\} 1$`,
          "m",
        ),
      );
    } finally {
      await p.stop();
    }
  });
});
