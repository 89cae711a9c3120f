/**
 * The Dockerfile, linted without a Docker engine (dockerfile-utils is the
 * validator behind the Dockerfile language server) and checked for the
 * properties the chart relies on: multi-stage, uid 65532, node as PID 1.
 */
import { readFileSync } from "node:fs";
import { validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";

const text = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");
const ignore = readFileSync(new URL("../../.dockerignore", import.meta.url), "utf8");

/** Instructions as [KEYWORD, arguments], continuation lines joined, comments dropped. */
function instructions(src: string): [string, string][] {
  const joined = src.replace(/\\\r?\n/g, " ");
  return joined
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const m = /^(\S+)\s*(.*)$/.exec(l) as RegExpExecArray;
      return [(m[1] as string).toUpperCase(), m[2] as string];
    });
}

const ins = instructions(text);
const stages = ins.filter(([k]) => k === "FROM");
const lastFrom = ins.map(([k]) => k).lastIndexOf("FROM");
const runtime = ins.slice(lastFrom);

describe("Dockerfile", () => {
  it("passes dockerfile-utils validation with no problems", () => {
    const problems = validate(text).map((d) => `${d.range.start.line + 1}: ${d.message}`);
    expect(problems).toEqual([]);
  });

  it("is multi-stage: deps, build, runtime on the Node LTS image", () => {
    expect(stages.map(([, a]) => a.split(/\s+AS\s+/i)[1])).toEqual(["deps", "build", "runtime"]);
    expect(text).toMatch(/^ARG NODE_IMAGE=node:26-slim$/m);
  });

  it("runs the runtime stage as uid 65532 and never as root", () => {
    const users = runtime.filter(([k]) => k === "USER").map(([, a]) => a);
    expect(users).toEqual(["65532:65532"]);
  });

  it("starts node directly, without npm, in exec form", () => {
    const cmd = runtime.filter(([k]) => k === "CMD");
    expect(cmd).toHaveLength(1);
    expect(JSON.parse((cmd[0] as [string, string])[1])).toEqual([
      "node",
      "dist/cli/main.js",
      "serve",
    ]);
    expect(runtime.some(([k]) => k === "ENTRYPOINT")).toBe(false);
  });

  it("ships only dist, lua, the OpenAPI document, package.json and production node_modules", () => {
    const copies = runtime.filter(([k]) => k === "COPY").map(([, a]) => a);
    expect(copies).toEqual([
      "--from=deps /app/node_modules ./node_modules",
      "--from=build /app/dist ./dist",
      "--from=build /app/docs/openapi.yaml ./docs/openapi.yaml",
      "lua ./lua",
      "package.json ./",
    ]);
    expect(text).toMatch(/npm ci --omit=dev/);
    expect(runtime.some(([k, a]) => k === "RUN" && /\bnpm\b/.test(a))).toBe(false);
  });

  it("carries OCI labels", () => {
    for (const l of ["title", "version", "revision", "licenses", "source"]) {
      expect(text).toContain(`org.opencontainers.image.${l}=`);
    }
  });

  it(".dockerignore keeps node_modules, dist and secrets out of the build context", () => {
    const lines = ignore.split("\n").map((l) => l.trim());
    expect(lines[lines.findIndex((l) => !l.startsWith("#") && l !== "")]).toBe("**");
    expect(lines).not.toContain("!node_modules/**");
    expect(lines).not.toContain("!dist/**");
    expect(lines).toContain("src/gen/**");
  });
});
