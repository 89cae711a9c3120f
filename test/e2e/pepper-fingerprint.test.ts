/**
 * A changed pepper is refused, not silently obeyed: Redis keeps a fingerprint
 * of the pepper its keys were made with (HMAC of a fixed label, never the
 * pepper), and the built server started against it with another pepper exits
 * 2 with a message naming TOLLGATE_PEPPER / TOLLGATE_PEPPER_FILE, instead of
 * answering UNKNOWN_KEY for every key. The right pepper still works,
 * TOLLGATE_ACCEPT_NEW_PEPPER replaces the fingerprint on purpose (loudly),
 * stores made before fingerprints existed are adopted, and a Redis that was
 * away at startup is checked once it answers. No pepper is ever printed.
 */
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { cli, clientsOver, pollUntil, type RunResult } from "../helpers/clients.js";
import { spawnRedis, type TestRedis } from "../helpers/redis-server.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

const PEPPER_A = "pepper-A-first-Qx7vT2mK9pLw4Rz8";
const PEPPER_B = "pepper-B-other-Hn3jY6cF1sDe5Gu0";
/** The documented fingerprint: HMAC-SHA256(pepper, "tollgate pepper fingerprint v1"), hex. */
const fingerprintOf = (pepper: string) =>
  createHmac("sha256", pepper).update("tollgate pepper fingerprint v1").digest("hex");

let redis: TestRedis;
let admin: Redis;
let dir: string;
/** Everything any process of this file printed, for the leak check. */
const printed: string[] = [];
const started: TollgateProcess[] = [];

beforeAll(async () => {
  redis = await spawnRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  dir = mkdtempSync(join(tmpdir(), "tollgate-pepper-"));
});
afterEach(async () => {
  for (const p of started.splice(0)) {
    await p.stop("SIGKILL");
    printed.push(p.output());
  }
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Settings of one start: the pepper from TOLLGATE_PEPPER or, with `file`, TOLLGATE_PEPPER_FILE. */
function env(pepper: string, prefix: string, extra: Record<string, string> = {}, file = false) {
  const pepperSetting: Record<string, string> = file
    ? { TOLLGATE_PEPPER_FILE: writePepper(pepper) }
    : { TOLLGATE_PEPPER: pepper };
  return { REDIS_URL: redis.url, TOLLGATE_REDIS_PREFIX: prefix, ...pepperSetting, ...extra };
}

function writePepper(pepper: string): string {
  const path = join(dir, `pepper-${pepper.slice(7, 8)}`);
  writeFileSync(path, `${pepper}\n`, { mode: 0o600 });
  return path;
}

async function start(e: Record<string, string>): Promise<TollgateProcess> {
  const p = await startTollgateProcess(e);
  started.push(p);
  return p;
}

async function stop(p: TollgateProcess): Promise<void> {
  expect(await p.stop()).toBe(0);
  started.splice(started.indexOf(p), 1);
  printed.push(p.output());
}

/** `tollgate serve` expected to refuse: resolves with its exit code and output. */
async function refusedServe(e: Record<string, string>): Promise<RunResult> {
  const r = await cli(
    ["serve"],
    {
      TOLLGATE_ADDR: "127.0.0.1:0",
      TOLLGATE_HTTP_ADDR: "",
      TOLLGATE_ADMIN_ADDR: "127.0.0.1:0",
      // As in startTollgateProcess: a loaded 2-core machine would trip the
      // production budgets, and a check that misses the startup wait is only
      // refused later (after "tollgate serving"; the last test covers that).
      TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "2000",
      TOLLGATE_BREAKER_TIMEOUT_MS: "4000",
      TOLLGATE_REDIS_CONNECT_TIMEOUT_MS: "5000",
      ...e,
    },
    undefined,
    15_000,
  );
  printed.push(r.stdout, r.stderr);
  return r;
}

function clients(p: TollgateProcess) {
  return clientsOver(createConnectTransport({ baseUrl: p.url, httpVersion: "1.1" }));
}

async function reason(p: TollgateProcess, secret: string): Promise<string> {
  const r = await clients(p).tollgate.authorize({ apiKey: secret });
  return r.allowed ? "OK" : Reason[r.reason];
}

function expectRefusal(r: RunResult): void {
  expect(r.code, r.stdout + r.stderr).toBe(2);
  expect(r.stderr).toContain("TOLLGATE_PEPPER / TOLLGATE_PEPPER_FILE");
  expect(r.stderr).toContain("keys in this Redis were created with");
  expect(r.stderr).toContain('"Changing the pepper" in the README');
  expect(r.stderr).toContain("TOLLGATE_ACCEPT_NEW_PEPPER");
  expect(r.stdout, r.stdout).not.toContain("tollgate serving");
}

describe("pepper fingerprint", () => {
  it("refuses another pepper (exit 2, naming the settings), then serves the keys again with the right one", async () => {
    const prefix = "pf1:";
    const a = await start(env(PEPPER_A, prefix));
    const created = await clients(a).keys.createKey({ owner: "alice", scopes: ["orders:read"] });
    expect(await reason(a, created.secret)).toBe("OK");
    await stop(a);

    // Another pepper, from the environment and from a file: refused both times.
    expectRefusal(await refusedServe(env(PEPPER_B, prefix)));
    const fromFile = await refusedServe(env(PEPPER_B, prefix, {}, true));
    expectRefusal(fromFile);
    // It shows where the two differ, by short prefixes only.
    expect(fromFile.stderr).toContain(`${fingerprintOf(PEPPER_A).slice(0, 8)}…`);
    expect(fromFile.stderr).toContain(`${fingerprintOf(PEPPER_B).slice(0, 8)}…`);
    expect(a.logs.some((l) => l.msg === "pepper fingerprint recorded in the store")).toBe(true);
    expect(await admin.get(`${prefix}marker:{marker}`)).toBe(fingerprintOf(PEPPER_A));
    expect(await admin.pttl(`${prefix}marker:{marker}`)).toBe(-1); // no expiry

    const again = await start(env(PEPPER_A, prefix));
    expect(await reason(again, created.secret)).toBe("OK");
    await stop(again);
  });

  it("TOLLGATE_ACCEPT_NEW_PEPPER=true starts with a new pepper, warns, and from then on the old one is refused", async () => {
    const prefix = "pf2:";
    const a = await start(env(PEPPER_A, prefix));
    const created = await clients(a).keys.createKey({ owner: "bob" });
    await stop(a);

    const b = await start(env(PEPPER_B, prefix, { TOLLGATE_ACCEPT_NEW_PEPPER: "true" }, true));
    const warning = b.logs.find((l) =>
      String(l.msg).startsWith(
        "TOLLGATE_ACCEPT_NEW_PEPPER=true: the stored pepper fingerprint was replaced",
      ),
    );
    expect(warning?.level).toBe("warn");
    // The honest consequence, as documented: old keys must be re-issued.
    expect(await reason(b, created.secret)).toBe("UNKNOWN_KEY");
    const reissued = await clients(b).keys.createKey({ owner: "bob" });
    expect(await reason(b, reissued.secret)).toBe("OK");
    await stop(b);
    expect(await admin.get(`${prefix}marker:{marker}`)).toBe(fingerprintOf(PEPPER_B));

    // Left on with an unchanged pepper, it only warns.
    const b2 = await start(env(PEPPER_B, prefix, { TOLLGATE_ACCEPT_NEW_PEPPER: "true" }));
    expect(
      b2.logs.some(
        (l) => l.level === "warn" && String(l.msg).includes("nothing replaced; remove the setting"),
      ),
    ).toBe(true);
    await stop(b2);

    expectRefusal(await refusedServe(env(PEPPER_A, prefix)));
  });

  it("adopts keys made before fingerprints were kept: records the fingerprint, says so, keeps serving them", async () => {
    const prefix = "pf3:";
    const a = await start(env(PEPPER_A, prefix));
    const created = await clients(a).keys.createKey({ owner: "carol" });
    await stop(a);
    // What an older Tollgate left: keys, no marker.
    expect(await admin.del(`${prefix}marker:{marker}`)).toBe(1);

    const adopted = await start(env(PEPPER_A, prefix));
    const line = adopted.logs.find((l) =>
      String(l.msg).startsWith("pepper fingerprint recorded for keys created before"),
    );
    expect(line?.level).toBe("warn");
    expect(await reason(adopted, created.secret)).toBe("OK");
    await stop(adopted);
    expect(await admin.get(`${prefix}marker:{marker}`)).toBe(fingerprintOf(PEPPER_A));
  });

  it("checks once a Redis that was away at startup answers: another pepper then stops the server (exit 2)", async () => {
    const prefix = "pf4:";
    const a = await start(env(PEPPER_A, prefix));
    await stop(a);
    redis.process?.kill("SIGSTOP");
    // Frozen Redis: Tollgate starts by fail mode, unable to check yet.
    const b = await start(
      env(PEPPER_B, prefix, { TOLLGATE_REDIS_COMMAND_TIMEOUT_MS: "500" }),
    ).finally(() => redis.process?.kill("SIGCONT"));
    expect(
      b.logs.some(
        (l) => l.msg === "redis not reachable at startup: serving by fail mode until it is",
      ),
    ).toBe(true);
    const exit = await pollUntil(
      async () => b.child.exitCode,
      (code) => code !== null,
      15_000,
      50,
    );
    expect(exit.value, b.output()).toBe(2);
    await forget(b);
    expect(b.output()).toContain("tollgate: TOLLGATE_PEPPER / TOLLGATE_PEPPER_FILE:");
    expect(b.logs.some((l) => l.msg === "stopped")).toBe(true);
  });

  it("never prints either pepper (raw, hex or base64) nor a whole fingerprint", () => {
    const text = printed.join("\n");
    expect(text.length).toBeGreaterThan(0);
    for (const pepper of [PEPPER_A, PEPPER_B]) {
      const b = Buffer.from(pepper);
      for (const form of [
        pepper,
        b.toString("hex"),
        b.toString("base64"),
        b.toString("base64url"),
      ]) {
        expect(text).not.toContain(form);
      }
      expect(text).not.toContain(fingerprintOf(pepper));
      expect(text).not.toContain(fingerprintOf(pepper).slice(0, 16));
    }
  });
});

/** Forgets a process that exited by itself (its output joins the leak check). */
async function forget(p: TollgateProcess): Promise<void> {
  await p.stop();
  started.splice(started.indexOf(p), 1);
  printed.push(p.output());
}
