/**
 * Policy hot reload on the built server: a valid change to the policy file is
 * applied (by the file watch, and by SIGHUP); an invalid file is refused,
 * logged with the offending field, counted in
 * tollgate_policy_reloads_total{result="failure"}, and the old limits keep
 * applying. Embedded store: reload is about policy, not Redis.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { pollUntil } from "../helpers/clients.js";
import { startTollgateProcess, type TollgateProcess } from "../helpers/tollgate-process.js";

/** A policy whose one endpoint allows `burst` requests per minute per subject. */
const policy = (burst: number | string) => `version: 1
default_tier: free
tiers:
  free: {}
endpoints:
  - name: r
    path: /v1/r
    limits:
      - { name: r, by: subject, rate: { requests: ${burst}, per: 1m } }
`;

let dir: string;
let watched: TollgateProcess; // a regular policy file, changed in place
let hupped: TollgateProcess; // a symlinked policy file whose target lives elsewhere: only SIGHUP sees a change
let watchedFile: string;
let hupTarget: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tollgate-reload-"));
  mkdirSync(join(dir, "watched"));
  mkdirSync(join(dir, "link"));
  mkdirSync(join(dir, "target"));
  watchedFile = join(dir, "watched", "policy.yaml");
  writeFileSync(watchedFile, policy(2));
  hupTarget = join(dir, "target", "policy.yaml");
  writeFileSync(hupTarget, policy(2));
  symlinkSync(hupTarget, join(dir, "link", "policy.yaml"));
  const env = { TOLLGATE_LOG_LEVEL: "info", TOLLGATE_ACCESS_LOG: "false" };
  [watched, hupped] = await Promise.all([
    startTollgateProcess({ ...env, TOLLGATE_POLICY_FILE: watchedFile }),
    startTollgateProcess({ ...env, TOLLGATE_POLICY_FILE: join(dir, "link", "policy.yaml") }),
  ]);
}, 30_000);

afterAll(async () => {
  await Promise.all([watched?.stop(), hupped?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const client = (p: TollgateProcess) =>
  createClient(TollgateService, createGrpcTransport({ baseUrl: p.url }));
/** The limit (burst) in force for a fresh subject on /v1/r. */
const limitInForce = async (p: TollgateProcess) => {
  const r = await client(p).checkRateLimit({ subject: randomUUID(), path: "/v1/r" });
  return Number(r.result?.limits[0]?.limit);
};
const metric = async (p: TollgateProcess, result: "success" | "failure") => {
  const text = await (await fetch(`http://127.0.0.1:${p.adminPort}/metrics`)).text();
  const m = new RegExp(`^tollgate_policy_reloads_total\\{result="${result}"\\} (\\d+)$`, "m").exec(
    text,
  );
  return Number(m?.[1] ?? 0);
};
/** Polls `probe` until it returns `want` (or 3 s pass); returns the last value. */
async function eventually<T>(probe: () => Promise<T>, want: T): Promise<T> {
  return (await pollUntil(probe, (v) => v === want, 3_000, 50)).value;
}

describe("policy hot reload", () => {
  it("applies a valid change to the file, seen by the file watch", async () => {
    expect(await limitInForce(watched)).toBe(2);
    writeFileSync(watchedFile, policy(4));
    expect(await eventually(() => limitInForce(watched), 4)).toBe(4);
    expect(await metric(watched, "success")).toBeGreaterThanOrEqual(1);
    expect(watched.logs.some((l) => l.msg === "policy reloaded")).toBe(true);
  });

  it("refuses an invalid file loudly and keeps the old limits", async () => {
    const s = randomUUID();
    const c = client(watched);
    for (let i = 0; i < 4; i++)
      expect((await c.checkRateLimit({ subject: s, path: "/v1/r" })).allowed).toBe(true);
    const failures = await metric(watched, "failure");
    writeFileSync(watchedFile, policy(-1));
    expect(await eventually(() => metric(watched, "failure"), failures + 1)).toBe(failures + 1);
    const refused = watched.logs.find(
      (l) => l.msg === "policy reload refused; the previous policy stays in force",
    );
    expect(refused?.level).toBe("error");
    expect(JSON.stringify(refused)).toContain(
      "endpoints.0.limits.0.rate.requests: must not be negative",
    );
    // The old limit (4) still applies, to the same bucket.
    const denied = await c.checkRateLimit({ subject: s, path: "/v1/r" });
    expect(denied.allowed).toBe(false);
    expect(Number(denied.result?.limits[0]?.limit)).toBe(4);
    expect(await limitInForce(watched)).toBe(4);
  });

  it("recovers when the file is fixed", async () => {
    writeFileSync(watchedFile, policy(7));
    expect(await eventually(() => limitInForce(watched), 7)).toBe(7);
  });

  it("applies a valid change on SIGHUP", async () => {
    expect(await limitInForce(hupped)).toBe(2);
    const successes = await metric(hupped, "success");
    writeFileSync(hupTarget, policy(3));
    hupped.child.kill("SIGHUP");
    expect(await eventually(() => limitInForce(hupped), 3)).toBe(3);
    expect(await metric(hupped, "success")).toBe(successes + 1);
    expect(hupped.logs.some((l) => l.msg === "signal received: reloading policy")).toBe(true);
  });

  it("refuses an invalid file on SIGHUP, counts it, and keeps serving the old limits", async () => {
    const failures = await metric(hupped, "failure");
    writeFileSync(hupTarget, `${policy(3)}unknown_field: 1\n`);
    hupped.child.kill("SIGHUP");
    expect(await eventually(() => metric(hupped, "failure"), failures + 1)).toBe(failures + 1);
    expect(hupped.child.exitCode).toBeNull();
    expect(await limitInForce(hupped)).toBe(3);
    const refused = hupped.logs.filter(
      (l) => l.msg === "policy reload refused; the previous policy stays in force",
    );
    expect(JSON.stringify(refused.at(-1))).toContain('Unrecognized key: \\"unknown_field\\"');
  });
});
