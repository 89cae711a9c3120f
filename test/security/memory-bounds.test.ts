/**
 * Memory bounds of the embedded store under attack (issue "Hardening", point 5),
 * all kinds of hostile input in one process whose V8 old space is capped at
 * 200 MB: the state of every kind adds up as under a real attack, and the cap
 * turns unbounded growth into a crash (before the bounds, this process thrashed
 * and stalled at ≈ 90 k unknown keys). After each kind of 150 000 distinct
 * inputs: alive, RSS under 400 MB throughout, every size gauge within its
 * default bound, and the state that matters kept — a subject and an IP at
 * their limits before the flood are still denied after it (eviction cannot be
 * used to reset a limit), and a real key still works.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason } from "../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { ATTACKS, type Attack, N, report, Target } from "./memory-attacks.js";

/** V8 old-space cap, MB: the bounds must hold the live heap well under it. */
const HEAP_CAP_MB = 200;

afterAll(() => console.log(`memory bounds, heap capped:\n  ${report.join("\n  ")}`));

describe(`all kinds in one process, ${N} distinct inputs each, V8 old space capped at ${HEAP_CAP_MB} MB`, () => {
  let target: Target;
  let tollgate: ReturnType<typeof createClient<typeof TollgateService>>;
  let validSecret: string;

  beforeAll(async () => {
    target = await Target.start([`--max-old-space-size=${HEAP_CAP_MB}`]);
    const transport = createGrpcTransport({ baseUrl: target.proc.url });
    tollgate = createClient(TollgateService, transport);
    // Dev mode (no management token, loopback only): KeyService is open.
    validSecret = (await createClient(KeyService, transport).createKey({ owner: "acme" })).secret;
  }, 60_000);
  afterAll(() => target?.stop());

  const [keys, subjects, ips, events] = ATTACKS as [Attack, Attack, Attack, Attack];

  it(keys.kind, async () => {
    await target.attack(keys, "capped");
    await target.expectWithinBounds(keys.bounds);
    const ok = await tollgate.authorize({ apiKey: validSecret, method: "GET", path: "/v1/x" });
    expect(ok.reason).toBe(Reason.OK);
  }, 180_000);

  it(`${subjects.kind}, without resetting a subject at its limit`, async () => {
    const check = (subject: string) =>
      tollgate.checkRateLimit({ subject, endpoint: "per-subject" });
    // The victim spends its monthly quota (5) and is denied.
    for (let i = 0; i < 5; i++) expect((await check("victim")).allowed).toBe(true);
    expect((await check("victim")).allowed).toBe(false);
    await target.attack(subjects, "capped");
    await target.expectWithinBounds(subjects.bounds);
    const after = await check("victim");
    expect(after.allowed).toBe(false);
    expect(after.reason).toBe(Reason.RATE_LIMITED);
  }, 180_000);

  it(`${ips.kind}, without resetting an IP at its limit`, async () => {
    const check = (clientIp: string) => tollgate.checkRateLimit({ clientIp, endpoint: "per-ip" });
    for (let i = 0; i < 5; i++) expect((await check("192.0.2.1")).allowed).toBe(true);
    expect((await check("192.0.2.1")).allowed).toBe(false);
    await target.attack(ips, "capped");
    await target.expectWithinBounds(ips.bounds);
    expect((await check("192.0.2.1")).allowed).toBe(false);
  }, 180_000);

  it(events.kind, async () => {
    await target.attack(events, "capped");
    await target.expectWithinBounds(events.bounds);
    // Still serving: a real key, and a fresh subject's first request.
    const ok = await tollgate.authorize({ apiKey: validSecret, method: "GET", path: "/v1/x" });
    expect(ok.reason).toBe(Reason.OK);
    expect(
      (await tollgate.checkRateLimit({ subject: "new", endpoint: "per-subject" })).allowed,
    ).toBe(true);
  }, 180_000);
});
