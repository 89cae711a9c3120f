/**
 * One decision, every door: each fixture (a sequence of requests with the
 * same facts) runs through Authorize(apply_limits) on one harness and through
 * Envoy's ext_authz Check on a fresh one, and both doors must answer alike —
 * allowed or not, HTTP status, the caller-facing message, the response headers
 * (WWW-Authenticate, Retry-After, RateLimit…), the endpoint and the key.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { CheckRequestSchema } from "../../src/gen/envoy/service/auth/v3/external_auth_pb.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free:
    limits:
      - { name: per-key, by: key, rate: { requests: 3, per: 1m } }
  pro:
    limits:
      - { name: per-key, by: key, rate: { requests: 100, per: 1m } }
endpoints:
  - name: orders
    method: GET
    path: /v1/orders/**
    scopes: [orders:read]
  - name: export
    path: /v1/exports/**
    cost: 2
    limits:
      - { name: per-ip, by: ip, rate: { requests: 1, per: 1m } }
blocking:
  by: [key, ip]
  after: 2
  within: 1m
  duration: 30s
`;

/** Which secret a request presents. */
type Presented = "main" | "other" | "none" | "malformed" | "unknown" | "revoked" | "expired";

interface Req {
  key: Presented;
  method?: string;
  path?: string;
  ip?: string;
  endpoint?: string;
  scopes?: string[];
}

interface Fixture {
  name: string;
  requests: Req[];
  /** Keys' settings (main: tier free, scopes orders:read; other: tier pro). */
  main?: { ipAllow?: string[]; scopes?: string[] };
}

const FIXTURES: Fixture[] = [
  { name: "no key", requests: [{ key: "none" }] },
  { name: "a malformed key", requests: [{ key: "malformed" }] },
  { name: "a well-formed unknown key", requests: [{ key: "unknown" }] },
  { name: "a revoked key", requests: [{ key: "revoked", path: "/v1/orders/1" }] },
  { name: "an expired key", requests: [{ key: "expired", path: "/v1/orders/1" }] },
  {
    name: "an allowed key on a matched endpoint",
    requests: [{ key: "main", path: "/v1/orders/7" }],
  },
  {
    name: "an allowed key on an endpoint named explicitly",
    requests: [{ key: "main", path: "/anything", endpoint: "orders" }],
  },
  {
    name: "a key lacking the endpoint's scope",
    main: { scopes: [] },
    requests: [{ key: "main", path: "/v1/orders/1" }],
  },
  {
    name: "a key lacking a required extra scope",
    requests: [{ key: "main", path: "/v1/orders/1", scopes: ["orders:write"] }],
  },
  {
    name: "a key used from an address outside its allow list",
    main: { ipAllow: ["192.0.2.0/24"] },
    requests: [{ key: "main", ip: "198.51.100.7" }],
  },
  {
    name: "a key within its allow list",
    main: { ipAllow: ["192.0.2.0/24"] },
    requests: [{ key: "main", ip: "192.0.2.9" }],
  },
  {
    name: "a key over its rate, then blocked by escalation, then its IP refused for another key",
    requests: [
      ...Array.from({ length: 6 }, () => ({ key: "main" as const, path: "/v1/orders/1" })),
      { key: "other", path: "/v1/orders/1" },
    ],
  },
  {
    name: "an endpoint's per-IP limit with its cost",
    requests: [
      { key: "other", path: "/v1/exports/a" },
      { key: "other", path: "/v1/exports/b" },
      { key: "other", path: "/v1/exports/c", ip: "2001:db8::1" },
    ],
  },
];

/** A door's answer, in the terms both doors share. */
interface Answer {
  allowed: boolean;
  status: number;
  message: string;
  headers: string[];
  endpoint?: string;
  key?: string;
}

const harnesses: ServiceHarness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

/** A fresh harness with the fixture's keys; returns the secret of each presented kind. */
async function setUp(f: Fixture) {
  const h = await createServiceHarness({ policyYaml: POLICY });
  harnesses.push(h);
  const mint = async (o: Record<string, unknown>) => {
    const r = await h.keys.createKey({ owner: "acme", ...o }, h.auth);
    return { secret: r.secret, id: r.key?.id ?? "" };
  };
  const main = await mint({
    tier: "free",
    scopes: f.main?.scopes ?? ["orders:read"],
    ipAllow: f.main?.ipAllow ?? [],
  });
  const other = await mint({ tier: "pro", scopes: ["orders:read"] });
  const revoked = await mint({ scopes: ["orders:read"] });
  await h.keys.revokeKey({ id: revoked.id, reason: "leaked" }, h.auth);
  const expired = await mint({
    scopes: ["orders:read"],
    expireTime: timestampFromMs(h.clock.now() + 1000),
  });
  h.clock.advance(2000);
  const secrets: Record<Presented, string> = {
    main: main.secret,
    other: other.secret,
    revoked: revoked.secret,
    expired: expired.secret,
    none: "",
    malformed: "not-a-key",
    unknown: "",
  };
  // Well-formed (checksum and all) but unknown here: a key another Tollgate issued.
  const stranger = await createServiceHarness({ policyYaml: POLICY });
  harnesses.push(stranger);
  secrets.unknown = (await stranger.keys.createKey({ owner: "x" }, stranger.auth)).secret;
  const names = new Map([
    [main.id, "main"],
    [other.id, "other"],
  ]);
  return { h, secrets, names };
}

function sortedHeaders(list: { name: string; value: string }[]): string[] {
  return list
    .filter((x) => x.name !== "content-type")
    .map((x) => `${x.name.toLowerCase()}: ${x.value}`)
    .sort();
}

async function viaAuthorize(f: Fixture): Promise<Answer[]> {
  const { h, secrets, names } = await setUp(f);
  const out: Answer[] = [];
  for (const r of f.requests) {
    const res = await h.tollgate.authorize({
      apiKey: secrets[r.key],
      method: r.method ?? "GET",
      path: r.path ?? "/",
      clientIp: r.ip ?? "192.0.2.1",
      endpoint: r.endpoint ?? "",
      requiredScopes: r.scopes ?? [],
      applyLimits: true,
    });
    out.push({
      allowed: res.allowed,
      status: res.httpStatus,
      message: res.message,
      headers: sortedHeaders(res.responseHeaders),
      ...(res.allowed && {
        endpoint: res.endpoint,
        key: names.get(res.identity?.keyId ?? "") ?? "?",
      }),
    });
  }
  return out;
}

async function viaCheck(f: Fixture): Promise<Answer[]> {
  const { h, secrets, names } = await setUp(f);
  const out: Answer[] = [];
  for (const r of f.requests) {
    const secret = secrets[r.key];
    const ext: Record<string, string> = {};
    if (r.endpoint) ext.endpoint = r.endpoint;
    if (r.scopes) ext.scopes = r.scopes.join(" ");
    const res = await h.envoyAuthz.check(
      create(CheckRequestSchema, {
        attributes: {
          source: {
            address: {
              address: { case: "socketAddress", value: { address: r.ip ?? "192.0.2.1" } },
            },
          },
          request: {
            http: {
              method: r.method ?? "GET",
              path: r.path ?? "/",
              headers: secret === "" ? {} : { "x-api-key": secret },
            },
          },
          contextExtensions: ext,
        },
      }),
    );
    const http = res.httpResponse;
    if (http.case === "okResponse") {
      const identity = new Map(http.value.headers.map((o) => [o.header?.key, o.header?.value]));
      out.push({
        allowed: true,
        status: 200,
        message: "allowed",
        headers: sortedHeaders(
          http.value.responseHeadersToAdd.map((o) => ({
            name: o.header?.key ?? "",
            value: o.header?.value ?? "",
          })),
        ),
        endpoint: String(res.dynamicMetadata?.endpoint ?? ""),
        key: names.get(identity.get("x-tollgate-key-id") ?? "") ?? "?",
      });
    } else if (http.case === "deniedResponse") {
      out.push({
        allowed: false,
        status: http.value.status?.code ?? 0,
        message: (JSON.parse(http.value.body) as { message: string }).message,
        headers: sortedHeaders(
          http.value.headers.map((o) => ({
            name: o.header?.key ?? "",
            value: o.header?.value ?? "",
          })),
        ),
      });
    } else throw new Error("Check answered neither OK nor denied");
  }
  return out;
}

describe("Authorize and Envoy Check take the same decision for the same facts", () => {
  for (const f of FIXTURES) {
    it(f.name, async () => {
      const a = await viaAuthorize(f);
      const c = await viaCheck(f);
      expect(c).toEqual(a);
      // The fixture means something: it has at least one answer of the kind its name says.
      expect(a.length).toBe(f.requests.length);
    });
  }

  it("covers every outcome: allowed, 401, 403 and 429 (limited and blocked)", async () => {
    const statuses = new Set<number>();
    const messages = new Set<string>();
    for (const f of FIXTURES) {
      for (const a of await viaAuthorize(f)) {
        statuses.add(a.status);
        messages.add(a.message);
      }
    }
    expect([...statuses].sort()).toEqual([200, 401, 403, 429]);
    expect(messages).toContain("rate limit exceeded");
    expect(messages).toContain("too many violations: temporarily blocked");
  });
});
