/**
 * "A newcomer's first hour", against the built CLI and server: each
 * subcommand's --help shows its own flags and an example; an unknown or
 * misplaced flag is refused with a suggestion, never Node's raw parseArgs
 * message; `keys list` has a header and says when it is empty; the keys
 * command's errors carry the same hints as the other commands'.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, curlJson } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const TOKEN = "cli-newcomer-token-0123456789";
let server: TollgateProcess;
beforeAll(async () => {
  server = await startTollgateProcess({ TOLLGATE_MANAGEMENT_TOKEN: TOKEN });
}, 30_000);
afterAll(async () => {
  expect(await server?.stop()).toBe(0);
});

const keys = (args: string[], env: Record<string, string> = { TOLLGATE_MANAGEMENT_TOKEN: TOKEN }) =>
  cli(["keys", ...args, "--server", server.url], env);

describe("per-command help", () => {
  it("keys <command> --help shows that command's flags and an example, not the group", async () => {
    const expected: [string, string[]][] = [
      ["create", ["--owner O", "--scope S ...", "--ttl DURATION", "--env ENV"]],
      ["get", ["keys get ID"]],
      ["list", ["--all", "include revoked keys", "--page-token T"]],
      ["update", ["--scope S ...", "--no-expiry"]],
      ["revoke", ["--reason TEXT"]],
      ["rotate", ["--grace DURATION", "--secret-stdin"]],
    ];
    const results = await Promise.all(expected.map(([sub]) => cli(["keys", sub, "--help"])));
    for (const [i, [sub, wanted]] of expected.entries()) {
      const r = results[i];
      expect(r?.code, sub).toBe(0);
      expect(r?.stdout, sub).toContain(`Usage: tollgate keys ${sub}`);
      expect(r?.stdout, sub).toMatch(new RegExp(`Example:\\n  tollgate keys ${sub}`));
      for (const w of wanted) expect(r?.stdout, sub).toContain(w);
      // Not the group's list of commands.
      expect(r?.stdout, sub).not.toContain("Commands:");
    }
    // The create help does not offer update's --no-expiry, nor list's --all.
    expect(results[0]?.stdout).not.toContain("--no-expiry");
    expect(results[0]?.stdout).not.toMatch(/--all\b/);
  });

  it("keys help create, keys export --help and keys import --help are their own", async () => {
    const [help, exp, imp] = await Promise.all([
      cli(["keys", "help", "create"]),
      cli(["keys", "export", "--help"]),
      cli(["keys", "import", "--help"]),
    ]);
    expect(help.stdout).toContain("Usage: tollgate keys create");
    expect(exp.stdout).toContain("Usage: tollgate keys export");
    expect(imp.stdout).toContain("Usage: tollgate keys import FILE");
  });

  it("blocks and events subcommands have their own help", async () => {
    const [lift, list, alerts] = await Promise.all([
      cli(["blocks", "lift", "--help"]),
      cli(["events", "list", "--help"]),
      cli(["events", "alerts", "--help"]),
    ]);
    expect(lift.stdout).toContain("Usage: tollgate blocks lift");
    expect(lift.stdout).toContain("Example:\n  tollgate blocks lift");
    expect(list.stdout).toContain("--kind key|ip|owner|caller");
    expect(alerts.stdout).toContain("--rule NAME");
    expect(alerts.stdout).not.toContain("--kind");
  });

  it("serve --help shows what serve takes, not the top-level help", async () => {
    const r = await cli(["serve", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Usage: tollgate serve [--config FILE]");
    expect(r.stdout).toContain("tollgate settings");
    expect(r.stdout).not.toContain("tollgate keys <command>");
  });
});

describe("unknown and misplaced flags", () => {
  it("are refused with a suggestion (exit 2), never parseArgs' raw message", async () => {
    const cases: [string[], string][] = [
      [
        ["keys", "create", "--owner", "a", "--scopes", "a,b"],
        "tollgate keys create: unknown flag --scopes: did you mean --scope?",
      ],
      [
        ["keys", "update", "key_0000000000000000", "--scopes", "a,b"],
        "tollgate keys update: unknown flag --scopes: did you mean --scope?",
      ],
      [
        ["keys", "create", "--owner", "a", "--all"],
        "--all is not a flag of keys create (keys list takes it)",
      ],
      [
        ["keys", "revoke", "key_0000000000000000", "--grace", "1h"],
        "--grace is not a flag of keys revoke (keys rotate takes it)",
      ],
      [["keys", "list", "--bogus"], "unknown flag --bogus; see tollgate keys list --help"],
      [["keys", "list", "--owner"], "--owner needs a value"],
      [["keys", "export", "--bogus"], "unknown flag --bogus; see tollgate keys export --help"],
      [["keys", "import", "f.jsonl", "--dryrun"], "did you mean --dry-run?"],
      [["blocks", "list", "--limt", "3"], "did you mean --limit?"],
      [["events", "alerts", "--kind", "ip"], "events list takes it"],
      [["usage", "key_0000000000000000", "--sinse", "1h"], "did you mean --since?"],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    for (const [i, [args, message]] of cases.entries()) {
      expect(results[i]?.code, args.join(" ")).toBe(2);
      expect(results[i]?.stderr, args.join(" ")).toContain(message);
      expect(results[i]?.stderr, args.join(" ")).not.toContain("Unknown option");
    }
  });

  it("update takes --scope repeated, like create", async () => {
    const created = await keys(["create", "--owner", "newcomer", "--scope", "a", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const id = (JSON.parse(created.stdout) as { key: { id: string } }).key.id;
    const r = await keys(["update", id, "--scope", "b", "--scope", "c"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^scopes\s+b c$/m);
    await keys(["revoke", id]);
  });

  it("tollgate completion offers each subcommand's own flags", async () => {
    const r = await cli(["completion", "bash"]);
    expect(r.stdout).toMatch(/update\) flags="[^"]*--scope /);
    expect(r.stdout).not.toMatch(/update\) flags="[^"]*--scopes/);
    expect(r.stdout).toMatch(/export\) flags="[^"]*--page-size/);
    expect(r.stdout).toMatch(/lift\) flags="--key --ip --subject/);
  });
});

describe("keys list", () => {
  it("has a header line and says when it is empty", async () => {
    const none = await keys(["list", "--owner", "nobody-at-all"]);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toBe("no active keys; --all includes revoked ones\n");
    const all = await keys(["list", "--owner", "nobody-at-all", "--all"]);
    expect(all.stdout).toBe("no keys\n");

    const created = await keys(["create", "--owner", "listed", "--json"]);
    const id = (JSON.parse(created.stdout) as { key: { id: string } }).key.id;
    const list = await keys(["list", "--owner", "listed"]);
    const [header, row] = list.stdout.split("\n");
    expect(header).toMatch(/^ID\s+STATUS\s+TIER\s+OWNER$/);
    expect(row).toMatch(new RegExp(`^${id}\\s+active\\s+free\\s+listed$`));
  });
});

describe("keys errors carry the same hints as the other commands", () => {
  it("no management token: names the variables and the flag", async () => {
    const r = await keys(["list"], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "(set TOLLGATE_MANAGEMENT_TOKEN or TOLLGATE_MANAGEMENT_TOKEN_FILE, or pass --token-file FILE)",
    );
  });

  it("the admin port: says so and names the main one", async () => {
    const r = await cli(["keys", "list", "--server", `http://127.0.0.1:${server.adminPort}`], {
      TOLLGATE_MANAGEMENT_TOKEN: TOKEN,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is tollgate's admin port: point the CLI at the main port");
  });
});

describe("a wrong value names the valid ones", () => {
  it("keys create --tier platinum lists the policy's tiers", async () => {
    const r = await keys(["create", "--owner", "a", "--tier", "platinum"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("tier: must be a tier of the policy: free, pro");
    expect(r.stderr).not.toContain("platinum");
  });

  it("CheckRateLimit lists the policy's tiers and endpoints", async () => {
    const url = `${server.url}/tollgate.v1.TollgateService/CheckRateLimit`;
    const tier = await curlJson(url, { subject: "s", tier: "platinum" });
    expect(JSON.stringify(tier.json)).toContain("tier: must be a tier of the policy: free, pro");
    const endpoint = await curlJson(url, { subject: "s", endpoint: "nope" });
    expect(JSON.stringify(endpoint.json)).toContain(
      "endpoint: must name an endpoint of the policy: (none)",
    );
  });
});
