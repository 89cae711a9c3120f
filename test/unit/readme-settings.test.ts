/** `tollgate --help` and the README's settings table come from one source and agree. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SETTINGS, settingsHelp, settingsMarkdown } from "../../src/config/settings.js";

describe("settings documentation", () => {
  it("README's table is exactly the generated one (npm run docs:settings)", () => {
    const readme = readFileSync("README.md", "utf8");
    const start = readme.indexOf("\n", readme.indexOf("<!-- settings:start")) + 1;
    const end = readme.indexOf("<!-- settings:end -->");
    expect(readme.slice(start, end).trim()).toBe(settingsMarkdown().trim());
  });

  it("--help lists every setting with its default", () => {
    const help = settingsHelp();
    for (const s of Object.values(SETTINGS)) {
      expect(help).toContain(s.env);
      if (s.default) expect(help).toContain(`(default ${s.default})`);
    }
  });
});
