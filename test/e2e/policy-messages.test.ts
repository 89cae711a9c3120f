/**
 * A policy file as a newcomer gets it wrong, through the built CLI:
 * `check-config` lists one error per line with its field's path, in words
 * (never a regular expression); a method that is not an HTTP method is
 * refused; the envoy_ratelimit section is in the printed table; and `serve`
 * names TOLLGATE_POLICY_FILE when the file cannot be read.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli } from "../helpers/clients.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-policy-messages-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("tollgate check-config", () => {
  it("prints one error per line with its path, in words, and refuses method GETT", async () => {
    const p = file(
      "bad.yaml",
      `version: 1
default_tier: free
tiers:
  free: {}
endpoints:
  - name: "-orders"
    method: GETT
    path: /v1/orders
  - name: list
    method: [GET, fetch]
    path: /v1/list
    scopes: ["no spaces"]
`,
    );
    const r = await cli(["check-config", p]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(`invalid policy: ${p}: 4 errors`);
    expect(lines.slice(1)).toEqual([
      "  endpoints.0.name: must be 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit",
      expect.stringMatching(
        /^ {2}endpoints\.0\.method: must be an HTTP method in capitals \(GET, /,
      ),
      expect.stringMatching(/^ {2}endpoints\.1\.method\.1: must be an HTTP method/),
      "  endpoints.1.scopes.0: must be a scope: 1..128 letters, digits or any of : . _ / * -",
    ]);
    expect(r.stderr).not.toContain("; ");
    expect(r.stderr).not.toMatch(/\/\^|\[A-Za-z|pattern/);
  });

  it("accepts the real methods and '*'", async () => {
    const p = file(
      "methods.yaml",
      `version: 1
default_tier: free
tiers:
  free: {}
endpoints:
  - { name: a, method: [GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH], path: /a }
  - { name: b, method: "*", path: /b }
`,
    );
    const r = await cli(["check-config", p]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("prints the envoy_ratelimit section", async () => {
    const r = await cli(["check-config", "examples/policy.yaml"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("envoy_ratelimit (descriptors");
    expect(r.stdout).toMatch(/^ {2}edge\s+remote_address\s+50\/second$/m);
    expect(r.stdout).toMatch(/^ {2}edge\s+header_match=internal\s+unlimited$/m);
  });
});

describe("tollgate serve", () => {
  it("names TOLLGATE_POLICY_FILE when the policy file cannot be read (exit 2)", async () => {
    const r = await cli(["serve"], {
      TOLLGATE_ADDR: "127.0.0.1:0",
      TOLLGATE_HTTP_ADDR: "127.0.0.1:0",
      TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
      TOLLGATE_POLICY_FILE: join(dir, "missing.yaml"),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `tollgate: TOLLGATE_POLICY_FILE: ${join(dir, "missing.yaml")}: cannot read: ENOENT`,
    );
  });
});
