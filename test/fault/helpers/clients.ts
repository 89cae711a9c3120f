/**
 * Clients and probes of the fault suite: Connect's gRPC transport from
 * connect-node against Tollgate's main port, a valid and a revoked key created
 * through KeyService, and the standard mix of probes.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Reason } from "../../../src/gen/tollgate/v1/common_pb.js";
import { KeyService } from "../../../src/gen/tollgate/v1/key_service_pb.js";
import { TollgateService } from "../../../src/gen/tollgate/v1/tollgate_service_pb.js";
import { generateSecret } from "../../../src/keys/key-format.js";
import type { Answer, Probe } from "./load.js";

/** The two clients of one Tollgate. */
export interface Clients {
  tollgate: Client<typeof TollgateService>;
  keys: Client<typeof KeyService>;
}

/** Clients over one HTTP/2 connection to `baseUrl`. */
export function clientsFor(baseUrl: string): Clients {
  const transport = createGrpcTransport({ baseUrl });
  return {
    tollgate: createClient(TollgateService, transport),
    keys: createClient(KeyService, transport),
  };
}

/** A valid key and a revoked one. */
export interface FaultKeys {
  valid: string;
  validId: string;
  revoked: string;
  revokedId: string;
}

/** Distinctive owner: the metrics test proves it never becomes a label. */
export const FAULT_OWNER = "owner-fault-acme-7f3c";

/** Creates a valid key and a key that is then revoked. */
export async function createFaultKeys(c: Clients): Promise<FaultKeys> {
  const a = await retry(() => c.keys.createKey({ owner: FAULT_OWNER }));
  const b = await retry(() => c.keys.createKey({ owner: FAULT_OWNER }));
  await retry(() => c.keys.revokeKey({ id: b.key?.id ?? "", reason: "fault suite" }));
  return {
    valid: a.secret,
    validId: a.key?.id ?? "",
    revoked: b.secret,
    revokedId: b.key?.id ?? "",
  };
}

/** Authorize on a policy endpoint, with its limits applied. */
export function authorizeProbe(
  c: Clients,
  key: Probe["key"],
  endpoint: string,
  secret: () => string,
): Probe {
  return {
    name: `${key}/${endpoint}`,
    key,
    endpoint,
    async call(timeoutMs): Promise<Answer> {
      const r = await c.tollgate.authorize(
        { apiKey: secret(), endpoint, applyLimits: true, clientIp: "203.0.113.7" },
        { timeoutMs },
      );
      return { allowed: r.allowed, decidedLocally: r.decidedLocally, reason: Reason[r.reason] };
    },
  };
}

/** The standard mix: valid, unknown (a fresh secret per call) and revoked keys on both endpoints. */
export function standardProbes(c: Clients, k: FaultKeys): Probe[] {
  const out: Probe[] = [];
  for (const endpoint of ["open", "closed"]) {
    out.push(authorizeProbe(c, "valid", endpoint, () => k.valid));
    out.push(authorizeProbe(c, "unknown", endpoint, () => generateSecret("live")));
    out.push(authorizeProbe(c, "revoked", endpoint, () => k.revoked));
  }
  return out;
}

/**
 * Warms the key cache (and the process): retries until three rounds in a row
 * answer normally from Redis. A cold process can exceed the 10 ms command
 * timeout on its first calls, which the fail modes then answer.
 */
export async function warm(c: Clients, k: FaultKeys, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let good = 0;
  let last = "";
  while (good < 3) {
    if (performance.now() > deadline) throw new Error(`warm-up: still abnormal: ${last}`);
    let normal = true;
    for (const endpoint of ["open", "closed"]) {
      try {
        const v = await c.tollgate.authorize({ apiKey: k.valid, endpoint, applyLimits: true });
        const r = await c.tollgate.authorize({ apiKey: k.revoked, endpoint, applyLimits: true });
        const ok = v.allowed && !v.decidedLocally && !r.decidedLocally;
        if (!ok || r.allowed || r.reason !== Reason.REVOKED_KEY) {
          normal = false;
          last = `${Reason[v.reason]} / ${Reason[r.reason]}`;
        }
      } catch (err) {
        normal = false;
        last = String(err);
      }
    }
    good = normal ? good + 1 : 0;
  }
}

/** Retries a setup call that needs Redis for up to `timeoutMs` (see `warm`). */
export async function retry<T>(fn: () => Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (performance.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/**
 * Waits until a call that needs Redis succeeds (readiness does not wait for
 * Redis by design); returns how long that took after the call, ms.
 */
export async function waitStore(c: Clients, timeoutMs = 5_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    try {
      await c.keys.listKeys({ pageSize: 1 });
      return performance.now() - t0;
    } catch (err) {
      if (performance.now() - t0 > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
