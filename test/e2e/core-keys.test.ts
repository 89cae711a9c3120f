/**
 * The core issue's "done when", as an operator runs it against the built
 * server: the CLI (token from the environment) mints, lists, shows, updates,
 * rotates and revokes keys; `curl` over HTTP/1.1 with a JSON body asks
 * Authorize; unknown, malformed, revoked and rotated-out keys get 401 with the
 * right reason; CLI mistakes exit non-zero with a clear message; and no secret
 * minted here ever reaches the server's log.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSecret } from "../../src/keys/key-format.js";
import { cli, curlJson, pollUntil } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "e2e-management-token-0123456789";
const AS_ADMIN = { TOLLGATE_MANAGEMENT_TOKEN: TOKEN };
let server: TollgateProcess;
/** Every secret minted in this file: none may reach the log. */
const secrets: string[] = [];

beforeAll(async () => {
  server = await startTollgateProcess({
    TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    TOLLGATE_POLICY_FILE: "examples/policy.yaml",
    TOLLGATE_LOG_LEVEL: "trace",
    // A line per decision, allowed ones too: the secret scan below reads them all.
    TOLLGATE_ACCESS_LOG: "all",
  });
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  for (const s of [...secrets, TOKEN]) expect(server.output()).not.toContain(s);
  // The scan read a real log: at trace level, with a line per decision and per key created.
  expect(server.logs.filter((l) => l.msg === "decision").length).toBeGreaterThan(0);
  expect(server.logs.filter((l) => l.audit === "create").length).toBeGreaterThanOrEqual(
    secrets.length > 0 ? 1 : 0,
  );
});

/** `tollgate keys create … --json` against the server; returns the secret and id. */
async function mint(extra: string[] = []): Promise<{ secret: string; id: string }> {
  const r = await cli(
    ["keys", "create", "--owner", "acme", "--scope", "orders:read", "--json", ...extra],
    { ...AS_ADMIN, TOLLGATE_SERVER: server.url },
  );
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { secret: string; key: { id: string } };
  secrets.push(out.secret);
  return { secret: out.secret, id: out.key.id };
}

/** `curl` Authorize with a JSON body over HTTP/1.1 on the main port. */
function authorize(body: Record<string, unknown>) {
  return curlJson(`${server.url}/tollgate.v1.TollgateService/Authorize`, body);
}

const keys = (args: string[], env: Record<string, string> = AS_ADMIN, input?: string) =>
  cli(["keys", ...args, "--server", server.url], env, input);

describe("the done-when scenario", () => {
  it("the CLI mints a key; curl Authorize with it is allowed with the identity", async () => {
    const r = await keys(["create", "--owner", "acme", "--scope", "orders:read"]);
    expect(r.code, r.stderr).toBe(0);
    const secret = /^secret: (tg_live_[0-9A-Za-z]{30})$/m.exec(r.stdout)?.[1] ?? "";
    const id = /^id\s+(key_[0-9A-Za-z]{16})$/m.exec(r.stdout)?.[1] ?? "";
    secrets.push(secret);
    expect(secret).not.toBe("");
    expect(r.stdout).toContain("(shown once: store it now)");
    expect(r.stdout).toMatch(/^owner\s+acme$/m);
    expect(r.stdout).toMatch(/^scopes\s+orders:read$/m);

    const ok = await authorize({
      apiKey: secret,
      method: "GET",
      path: "/v1/orders",
      clientIp: "203.0.113.1",
    });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({
      allowed: true,
      reason: "REASON_OK",
      httpStatus: 200,
      endpoint: "list-orders",
      identity: {
        keyId: id,
        owner: "acme",
        tier: "free",
        scopes: ["orders:read"],
        environment: "live",
      },
    });
    expect(String(ok.json.decisionId)).toMatch(/^[0-9a-f]{24}$/);
    expect(JSON.stringify(ok.json)).not.toContain(secret);
  });

  it("a wrong well-formed key gets 401 UNKNOWN_KEY; a malformed key 401 MALFORMED_KEY; none 401 MISSING_KEY", async () => {
    const { secret } = await mint();
    const wrong = generateSecret("live");
    const unknown = await authorize({ apiKey: wrong });
    // A denial is data in an OK response: HTTP 200 on the wire, 401 in the answer.
    expect(unknown.status).toBe(200);
    expect(unknown.json).toMatchObject({ reason: "REASON_UNKNOWN_KEY", httpStatus: 401 });
    expect(unknown.json.allowed).toBeUndefined(); // proto JSON omits false
    expect(unknown.json.identity).toBeUndefined();
    for (const bad of [`${secret}x`, secret.slice(0, -1), "tg_live_123", "hunter2"]) {
      const m = await authorize({ apiKey: bad });
      expect(m.json, bad).toMatchObject({ reason: "REASON_MALFORMED_KEY", httpStatus: 401 });
    }
    expect((await authorize({ path: "/v1/orders" })).json).toMatchObject({
      reason: "REASON_MISSING_KEY",
      httpStatus: 401,
      responseHeaders: [{ name: "www-authenticate", value: 'ApiKey realm="tollgate"' }],
    });
    // The key may also come in the request's headers, under any case.
    const viaHeaders = await authorize({ headers: { "X-Api-Key": secret } });
    expect(viaHeaders.json).toMatchObject({ allowed: true, reason: "REASON_OK" });
  });

  it("keys revoke: the key gets 401 REVOKED_KEY at once", async () => {
    const { secret, id } = await mint();
    expect((await authorize({ apiKey: secret })).json.allowed).toBe(true);
    const r = await keys(["revoke", id, "--reason", "leaked in a log"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^status\s+revoked$/m);
    expect(r.stdout).toMatch(/^revoke reason\s+leaked in a log$/m);
    expect((await authorize({ apiKey: secret })).json).toMatchObject({
      reason: "REASON_REVOKED_KEY",
      httpStatus: 401,
    });
    // The reason stays readable: keys get, human and --json.
    const human = await keys(["get", id]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^revoke reason\s+leaked in a log$/m);
    expect(human.stdout).toMatch(/^revoked\s+\d{4}-\d\d-\d\dT/m);
    const json = await keys(["get", id, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: "KEY_STATUS_REVOKED",
      revokedReason: "leaked in a log",
      revokeTime: expect.any(String),
    });
  });

  it("keys rotate ID --grace 2s: both secrets work, then after ~2 s the old one gets 401", async () => {
    const { secret: old, id } = await mint();
    const startedAt = Date.now();
    const r = await keys(["rotate", id, "--grace", "2s", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { secret: string; graceEndTime: string };
    secrets.push(out.secret);
    expect(out.secret).not.toBe(old);
    // Server and test share this machine's clock.
    const graceEnd = Date.parse(out.graceEndTime);
    expect(graceEnd - startedAt).toBeGreaterThanOrEqual(1990);
    expect(graceEnd - Date.now()).toBeLessThanOrEqual(2000);

    expect((await authorize({ apiKey: out.secret })).json).toMatchObject({
      allowed: true,
      identity: { keyId: id },
    });
    const during = await authorize({ apiKey: old });
    // (On a machine so loaded that 2 s passed already, the old secret is rightly refused.)
    if (Date.now() < graceEnd) {
      expect(during.json).toMatchObject({
        allowed: true,
        identity: { keyId: id },
        hints: { inGracePeriod: true, rotationDue: true, graceEndTime: out.graceEndTime },
      });
    }

    const { value } = await pollUntil(
      () => authorize({ apiKey: old }),
      (res) => res.json.allowed !== true,
      5000,
      50,
    );
    const refusedAt = Date.now();
    console.log(
      `old secret refused ${refusedAt - startedAt} ms after \`keys rotate --grace 2s\` started (${refusedAt - graceEnd} ms after the grace end)`,
    );
    expect(value.json).toMatchObject({ reason: "REASON_UNKNOWN_KEY", httpStatus: 401 });
    expect(refusedAt).toBeGreaterThanOrEqual(graceEnd);
    expect(refusedAt - graceEnd).toBeLessThan(1500);
    expect((await authorize({ apiKey: out.secret })).json.allowed).toBe(true);
  });

  it("keys rotate --secret-stdin rotates a key by its own secret, without the management token", async () => {
    const { secret, id } = await mint();
    const r = await keys(["rotate", "--secret-stdin", "--grace", "0s", "--json"], {}, secret);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { secret: string; key: { id: string } };
    secrets.push(out.secret);
    expect(out.key.id).toBe(id);
    expect((await authorize({ apiKey: out.secret })).json.allowed).toBe(true);
    expect((await authorize({ apiKey: secret })).json.reason).toBe("REASON_UNKNOWN_KEY");
  });

  it("reads the management token from --token-file too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-token-"));
    try {
      writeFileSync(join(dir, "token"), `${TOKEN}\n`, { mode: 0o600 });
      const r = await keys(["list", "--owner", "acme", "--token-file", join(dir, "token")], {});
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^key_[0-9A-Za-z]{16}\s+active/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keys list, get and update work, and never print a secret", async () => {
    const { secret, id } = await mint(["--meta", "team=web"]);
    const got = await keys(["get", id]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
    expect(got.stdout).toMatch(/^metadata\s+team=web$/m);

    const upd = await keys([
      "update",
      id,
      "--tier",
      "pro",
      "--scope",
      "orders:read",
      "--scope",
      "orders:write",
      "--meta",
      "team=api",
    ]);
    expect(upd.code, upd.stderr).toBe(0);
    expect(upd.stdout).toMatch(/^tier\s+pro$/m);
    expect(upd.stdout).toMatch(/^scopes\s+orders:read orders:write$/m);
    // The update applies to Authorize at once: the new scope is granted.
    const write = await authorize({ apiKey: secret, method: "POST", path: "/v1/orders" });
    expect(write.json).toMatchObject({ allowed: true, identity: { tier: "pro" } });

    const list = await keys(["list", "--owner", "acme"]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+active\\s+pro\\s+acme$`, "m"));
    const json = await keys(["list", "--owner", "acme", "--all", "--json"]);
    const listed = JSON.parse(json.stdout) as { keys: { id: string; status: string }[] };
    expect(listed.keys.map((k) => k.id)).toContain(id);
    expect(listed.keys.some((k) => k.status === "KEY_STATUS_REVOKED")).toBe(true);

    const page = await keys(["list", "--owner", "acme", "--page-size", "1"]);
    expect(page.stdout).toMatch(/^next page: --page-token \S+$/m);
    for (const out of [got, upd, list, json, page]) {
      for (const s of secrets) expect(out.stdout + out.stderr).not.toContain(s);
    }
  });

  it("a wrong-scope key gets 403 INSUFFICIENT_SCOPE with its identity", async () => {
    const { id, secret } = await mint();
    const r = await authorize({ apiKey: secret, method: "POST", path: "/v1/orders" });
    expect(r.json).toMatchObject({
      reason: "REASON_INSUFFICIENT_SCOPE",
      httpStatus: 403,
      missingScopes: ["orders:write"],
      identity: { keyId: id },
    });
  });
});

describe("CLI errors exit non-zero with a clear message", () => {
  it("refuses management without the token, or with a wrong one (exit 1, Unauthenticated)", async () => {
    const none = await keys(["list"], {});
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      "tollgate keys list: Unauthenticated: this RPC needs the management token: send 'authorization: Bearer <token>' (set TOLLGATE_MANAGEMENT_TOKEN or TOLLGATE_MANAGEMENT_TOKEN_FILE, or pass --token-file FILE)\n",
    );
    const wrong = await keys(["create", "--owner", "x"], {
      TOLLGATE_MANAGEMENT_TOKEN: "wrong-token-wrong-token",
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      /^tollgate keys create: Unauthenticated: the management token is not valid \(set TOLLGATE_MANAGEMENT_TOKEN/,
    );
  });

  it("reports server-side refusals: unknown id, bad id, unknown tier (exit 1)", async () => {
    const missing = await keys(["get", "key_0000000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("tollgate keys get: NotFound: no key has this id\n");
    const badId = await keys(["revoke", "nope"]);
    expect(badId.code).toBe(1);
    expect(badId.stderr).toContain("InvalidArgument");
    expect(badId.stderr).toContain("id: must be a key id");
    const tier = await keys(["create", "--owner", "a", "--tier", "gold"]);
    expect(tier.code).toBe(1);
    expect(tier.stderr).toContain("tier: must be a tier of the policy: free, pro");
  });

  it("reports command-line mistakes before calling (exit 2)", async () => {
    const cases: [string[], string][] = [
      [["create"], "create needs --owner"],
      [["get"], "get needs a key id"],
      [["frobnicate"], 'unknown command "frobnicate"'],
      [["update", "key_0000000000000000"], "update needs at least one field to change"],
      [["rotate", "key_0000000000000000", "--grace", "soon"], '--grace: not a duration: "soon"'],
      [["create", "--owner", "a", "--ttl", "5x"], '--ttl: not a duration: "5x"'],
      [
        ["create", "--owner", "a", "--ttl", "30"],
        '--ttl: "30" needs a unit: e.g. 30s, 30m, 30h or 30d',
      ],
      [["create", "--owner", "a", "--meta", "novalue"], '--meta wants KEY=VALUE, got "novalue"'],
      [
        ["create", "--owner", "a", "--expires", "tomorrow"],
        '--expires: not an ISO time: "tomorrow"',
      ],
      [["list", "--page-size", "many"], '--page-size: not a whole number: "many"'],
      [["list", "--bogus"], "unknown flag --bogus; see tollgate keys list --help"],
      [
        ["list", "--token-file", "/nonexistent/token"],
        "--token-file: cannot read the token file (ENOENT)",
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => keys(args)));
    for (const [i, [args, message]] of cases.entries()) {
      expect(results[i]?.code, args.join(" ")).toBe(2);
      expect(results[i]?.stderr, args.join(" ")).toContain(message);
    }
    const empty = await keys(["rotate", "--secret-stdin"], {}, "");
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("no secret on standard input");
  });

  it("names --server when it is not a URL (exit 2)", async () => {
    const r = await cli(["keys", "list", "--server", "127.0.0.1:50051"], AS_ADMIN);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--server: not an http(s) URL: "127.0.0.1:50051"');
  });

  it("says where it tried to connect when no server answers (exit 1)", async () => {
    const r = await cli(["keys", "list", "--server", "http://127.0.0.1:1"], AS_ADMIN);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tollgate keys list: Unavailable: .*ECONNREFUSED/);
    expect(r.stderr).toContain(
      "(is tollgate serving at http://127.0.0.1:1? set --server or TOLLGATE_SERVER)",
    );
  });
});
