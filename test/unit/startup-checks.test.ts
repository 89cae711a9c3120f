/**
 * The checks across settings made once before anything starts: each refusal
 * names its setting in the words operators have always seen (matched byte for
 * byte), the first applicable one wins, and what passes comes back resolved —
 * the TLS files, every management token, the pepper and the warnings to log.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSettings } from "../../src/config/settings.js";
import { checkStartup, isLoopbackAddr } from "../../src/config/startup-checks.js";
import { StartupError } from "../../src/config/startup-error.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-startup-checks-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file in the test's directory holding `text`. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const PEPPER = "a-pepper-of-at-least-16-bytes";
/** Port 0 everywhere: nothing is probed, so the checks stay pure. */
const BASE = {
  TOLLGATE_ADDR: "127.0.0.1:0",
  TOLLGATE_HTTP_ADDR: "",
  TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
};

function check(env: Record<string, string>) {
  return checkStartup(loadSettings({ ...BASE, ...env }));
}

async function refusal(env: Record<string, string>): Promise<string> {
  const err = await check(env).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StartupError);
  return (err as Error).message;
}

describe("checkStartup refuses", () => {
  const cases: [string, Record<string, string>, string][] = [
    [
      "half a TLS pair",
      { TOLLGATE_TLS_CERT_FILE: "/x/cert.pem" },
      "TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE must be set together",
    ],
    [
      "a client CA without TLS",
      { TOLLGATE_TLS_CLIENT_CA_FILE: "/x/ca.pem" },
      "TOLLGATE_TLS_CLIENT_CA_FILE needs TOLLGATE_TLS_CERT_FILE and TOLLGATE_TLS_KEY_FILE",
    ],
    [
      "plaintext off this host",
      { TOLLGATE_ADDR: "0.0.0.0:0" },
      "TOLLGATE_TLS_CERT_FILE / TOLLGATE_TLS_KEY_FILE are required when an RPC port is bound to a non-loopback address (or set TOLLGATE_ALLOW_PLAINTEXT=true)",
    ],
    [
      "no management token off loopback",
      { TOLLGATE_ADDR: "0.0.0.0:0", TOLLGATE_ALLOW_PLAINTEXT: "true" },
      "TOLLGATE_MANAGEMENT_TOKEN (or _FILE) is required when any listener is bound to a non-loopback address",
    ],
    [
      "an unreadable token file",
      { TOLLGATE_MANAGEMENT_TOKEN_FILE: join(dir, "missing") },
      "TOLLGATE_MANAGEMENT_TOKEN_FILE: cannot read the file (ENOENT)",
    ],
    [
      "a short token from its file",
      { TOLLGATE_MANAGEMENT_TOKEN_FILE: file("short-token", "short\n") },
      "TOLLGATE_MANAGEMENT_TOKEN_FILE: the token must be at least 16 bytes",
    ],
    [
      "a malformed tokens-file entry, by number and never by its text",
      {
        TOLLGATE_MANAGEMENT_TOKENS_FILE: file(
          "tokens",
          "# ops\nci:a-token-of-sixteen-bytes\nno-separator-secret-text\n",
        ),
      },
      "TOLLGATE_MANAGEMENT_TOKENS_FILE: entry 2 must be name:token with a 1..64 char name of [A-Za-z0-9._-] and a token of at least 16 bytes",
    ],
    [
      "Sentinel mode without sentinels",
      { TOLLGATE_REDIS_MODE: "sentinel", TOLLGATE_PEPPER: PEPPER },
      "TOLLGATE_REDIS_SENTINELS is required with TOLLGATE_REDIS_MODE=sentinel",
    ],
    [
      "Cluster mode without nodes",
      { TOLLGATE_REDIS_MODE: "cluster", TOLLGATE_PEPPER: PEPPER },
      "REDIS_URL or TOLLGATE_REDIS_CLUSTER_NODES is required with TOLLGATE_REDIS_MODE=cluster",
    ],
    [
      "Redis without a pepper",
      { REDIS_URL: "redis://127.0.0.1:1" },
      "TOLLGATE_PEPPER (or _FILE) is required with REDIS_URL: every replica must share it",
    ],
    [
      "a short pepper from its file",
      { TOLLGATE_PEPPER_FILE: file("short-pepper", "short") },
      "TOLLGATE_PEPPER_FILE: the pepper must be at least 16 bytes",
    ],
  ];
  for (const [what, env, message] of cases) {
    it(what, async () => {
      expect(await refusal(env)).toBe(message);
    });
  }

  it("TLS before the management token, and the Redis mode before the pepper", async () => {
    expect(await refusal({ TOLLGATE_ADDR: "0.0.0.0:0" })).toMatch(/^TOLLGATE_TLS_CERT_FILE \//);
    expect(await refusal({ TOLLGATE_REDIS_MODE: "sentinel" })).toMatch(/^TOLLGATE_REDIS_SENTINELS/);
  });
});

describe("checkStartup resolves", () => {
  it("the embedded store's random pepper, with a warning, and no token (dev mode)", async () => {
    const r = await check({});
    expect(r.usingRedis).toBe(false);
    expect(r.pepper.length).toBe(32);
    expect((await check({})).pepper.equals(r.pepper)).toBe(false);
    expect(r.managementTokens).toEqual([]);
    expect(r.tls).toBeUndefined();
    expect(r.warnings).toEqual([
      "no pepper configured: using a random one; keys last as long as this process (embedded store)",
    ]);
  });

  it("files' contents without their trailing newline, the single token first", async () => {
    const r = await check({
      REDIS_URL: "redis://127.0.0.1:1",
      TOLLGATE_PEPPER_FILE: file("pepper", `${PEPPER}\n`),
      TOLLGATE_MANAGEMENT_TOKEN_FILE: file("token", "the-single-management-token\n"),
      TOLLGATE_MANAGEMENT_TOKENS_FILE: file("named", "ci:a-token-of-sixteen-bytes\n\n"),
    });
    expect(r.usingRedis).toBe(true);
    expect(r.pepper.toString()).toBe(PEPPER);
    expect(r.managementTokens).toEqual([
      { name: "default", token: "the-single-management-token" },
      { name: "ci", token: "a-token-of-sixteen-bytes" },
    ]);
    expect(r.warnings).toEqual([]);
  });

  it("a tokens-file role column: read-only marks a look-only token, full is the default", async () => {
    const r = await check({
      TOLLGATE_MANAGEMENT_TOKENS_FILE: file(
        "roles",
        "ops:a-token-of-sixteen-bytes\nview:another-token-sixteen  read-only\nci:third-token-sixteen-b full\n",
      ),
    });
    expect(r.managementTokens).toEqual([
      { name: "ops", token: "a-token-of-sixteen-bytes" },
      { name: "view", token: "another-token-sixteen", readOnly: true },
      { name: "ci", token: "third-token-sixteen-b" },
    ]);
    await expect(
      check({
        TOLLGATE_MANAGEMENT_TOKENS_FILE: file("bad-role", "ops:a-token-of-sixteen-bytes admin\n"),
      }),
    ).rejects.toThrow("entry 1 must be name:token");
  });

  it("plaintext off this host when allowed, with a warning, and the TLS files when set", async () => {
    const plain = await check({
      TOLLGATE_ADDR: "0.0.0.0:0",
      TOLLGATE_ALLOW_PLAINTEXT: "true",
      TOLLGATE_MANAGEMENT_TOKEN: "a-management-token-16",
      TOLLGATE_PEPPER: PEPPER,
    });
    expect(plain.warnings).toEqual([
      "an RPC port is reachable off this host without TLS (TOLLGATE_ALLOW_PLAINTEXT=true)",
    ]);
    const tls = await check({
      TOLLGATE_TLS_CERT_FILE: "/x/cert.pem",
      TOLLGATE_TLS_KEY_FILE: "/x/key.pem",
      TOLLGATE_PEPPER: PEPPER,
    });
    expect(tls.tls).toEqual({ certFile: "/x/cert.pem", keyFile: "/x/key.pem", clientCaFile: "" });
  });
});

describe("isLoopbackAddr", () => {
  it("is true for localhost, 127.0.0.0/8 and ::1 only", () => {
    expect(["localhost:1", "127.0.0.1:1", "127.9.9.9:1", "[::1]:1"].map(isLoopbackAddr)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(["0.0.0.0:1", "[::]:1", "10.0.0.1:1", "example.com:1"].map(isLoopbackAddr)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});
