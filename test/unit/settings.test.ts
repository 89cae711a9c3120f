/**
 * Settings: every environment variable is validated at boot; a bad one stops
 * the process with a message naming the variable — and never its value when
 * the setting holds a secret.
 */
import { describe, expect, it } from "vitest";
import { loadSettings, SETTINGS, SettingsError, settingsHelp } from "../../src/config/settings.js";

const refusal = (env: Record<string, string>): string => {
  try {
    loadSettings(env);
  } catch (err) {
    expect(err).toBeInstanceOf(SettingsError);
    return (err as Error).message;
  }
  throw new Error("the settings were accepted");
};

describe("loadSettings", () => {
  it("gives every default when nothing is set", () => {
    const s = loadSettings({});
    expect(s).toMatchObject({
      grpcAddr: "127.0.0.1:50051",
      adminAddr: "127.0.0.1:9464",
      redisUrl: "",
      redisMode: "standalone",
      redisCommandTimeoutMs: 250,
      breakerTimeoutMs: 250,
      redisPingIntervalMs: 500,
      failMode: "closed",
      cacheTtlMs: 5000,
      negativeCacheTtlMs: 1000,
      cacheMaxEntries: 100_000,
      allowPlaintext: false,
      corsOrigins: [],
      envoyIdentityHeaders: ["key-id", "owner", "tier", "scopes"],
      keyEnvironment: "live",
      redisPrefix: "tg:",
    });
  });

  it("parses numbers, booleans and lists", () => {
    const s = loadSettings({
      TOLLGATE_CACHE_TTL_MS: "250",
      TOLLGATE_ALLOW_PLAINTEXT: "true",
      TOLLGATE_CORS_ORIGINS: " https://a.example.com , ,http://localhost:3000",
      TOLLGATE_FAILOPEN_LIMIT_SHARE: "0.25",
      TOLLGATE_ADDR: "[::1]:50051",
    });
    expect(s.cacheTtlMs).toBe(250);
    expect(s.allowPlaintext).toBe(true);
    expect(s.corsOrigins).toEqual(["https://a.example.com", "http://localhost:3000"]);
    expect(s.failOpenLimitShare).toBe(0.25);
    expect(s.grpcAddr).toBe("[::1]:50051");
  });

  it.each([
    ["TOLLGATE_ADDR", "localhost"],
    ["TOLLGATE_ADDR", "127.0.0.1:70000"],
    ["TOLLGATE_REDIS_MODE", "replicated"],
    ["TOLLGATE_CACHE_TTL_MS", "five"],
    ["TOLLGATE_CACHE_TTL_MS", "-1"],
    ["TOLLGATE_CACHE_MAX_ENTRIES", "0"],
    ["TOLLGATE_REDIS_COMMAND_TIMEOUT_MS", "1.5"],
    ["TOLLGATE_FAIL_MODE", "OPEN"],
    ["TOLLGATE_ALLOW_PLAINTEXT", "yes"],
    ["TOLLGATE_KEY_ENVIRONMENT", "Live"],
    ["TOLLGATE_REDIS_PREFIX", "tg{x}:"],
    ["TOLLGATE_CORS_ORIGINS", "*"],
    ["TOLLGATE_ENVOY_IDENTITY_HEADERS", "key-id,secret"],
  ])("names %s when it is %j", (name, value) => {
    const msg = refusal({ [name]: value });
    expect(msg).toMatch(new RegExp(`(^|; |: )${name}: `));
    // Only the bad variable is reported.
    const named = Object.values(SETTINGS).filter((s) => msg.includes(`${s.env}:`));
    expect(named.map((s) => s.env)).toEqual([name]);
  });

  it("reports every bad variable in one message", () => {
    const msg = refusal({
      TOLLGATE_ADDR: "nope",
      TOLLGATE_FAIL_MODE: "sideways",
      TOLLGATE_CACHE_TTL_MS: "x",
    });
    for (const name of ["TOLLGATE_ADDR", "TOLLGATE_FAIL_MODE", "TOLLGATE_CACHE_TTL_MS"]) {
      expect(msg).toContain(`${name}: `);
    }
  });

  it("never prints the value of a secret setting", () => {
    const marker = "S3cr3tMarker";
    const env = {
      TOLLGATE_PEPPER: `${marker}`, // too short
      TOLLGATE_MANAGEMENT_TOKEN: `${marker}`, // too short
      REDIS_URL: `http://user:${marker}@redis:6379`, // wrong scheme
      TOLLGATE_REDIS_SENTINEL_PASSWORD: `${marker}${"x".repeat(600)}`, // too long
    };
    const msg = refusal(env);
    for (const name of Object.keys(env)) expect(msg).toContain(`${name}: `);
    expect(msg).not.toContain(marker);
    expect(msg).not.toContain("redis:6379");
    for (const s of Object.values(SETTINGS)) {
      if ("secret" in s && s.secret) expect(settingsHelp()).toContain(s.env);
    }
  });

  it("marks every secret-bearing setting as secret", () => {
    const secret = Object.values(SETTINGS)
      .filter((s) => "secret" in s && s.secret)
      .map((s) => s.env)
      .sort();
    expect(secret).toEqual(
      [
        "REDIS_URL",
        "TOLLGATE_MANAGEMENT_TOKEN",
        // An OTLP URL may carry credentials (user:password@, a token in the query), as REDIS_URL may.
        "TOLLGATE_OTLP_TRACES_URL",
        "TOLLGATE_PEPPER",
        "TOLLGATE_REDIS_SENTINEL_PASSWORD",
      ].sort(),
    );
  });

  it("accepts secrets of the minimum length", () => {
    const s = loadSettings({
      TOLLGATE_PEPPER: "p".repeat(16),
      TOLLGATE_MANAGEMENT_TOKEN: "t".repeat(16),
      REDIS_URL: "rediss://u:p@redis.example.com:6380/0",
    });
    expect(s.pepper).toHaveLength(16);
    expect(s.redisUrl).toBe("rediss://u:p@redis.example.com:6380/0");
  });
});

describe("the mistakes people make", () => {
  it("refuses a misspelled TOLLGATE_* variable, naming the closest setting", () => {
    expect(refusal({ TOLLGATE_POLICY: "p.yaml" })).toContain(
      "TOLLGATE_POLICY: not a Tollgate setting; did you mean TOLLGATE_POLICY_FILE?",
    );
    expect(refusal({ TOLLGATE_POLICYFILE: "p.yaml" })).toContain(
      "did you mean TOLLGATE_POLICY_FILE?",
    );
    expect(refusal({ TOLLGATE_LOGLEVEL: "debug" })).toContain("did you mean TOLLGATE_LOG_LEVEL?");
    expect(refusal({ TOLLGATE_CACHE_TTL: "5000" })).toContain(
      "did you mean TOLLGATE_CACHE_TTL_MS?",
    );
  });

  it("leaves unrelated TOLLGATE_* names alone (CLI and webhook secrets)", () => {
    expect(() =>
      loadSettings({
        TOLLGATE_SERVER: "http://127.0.0.1:50051",
        TOLLGATE_OPS_WEBHOOK_SECRET: "0123456789abcdef0123",
      }),
    ).not.toThrow();
  });

  it("takes a duration with a unit for a setting whose name carries one", () => {
    expect(loadSettings({ TOLLGATE_CACHE_TTL_MS: "5s" }).cacheTtlMs).toBe(5000);
    expect(loadSettings({ TOLLGATE_CACHE_TTL_MS: "1500ms" }).cacheTtlMs).toBe(1500);
    expect(loadSettings({ TOLLGATE_SHUTDOWN_TIMEOUT_MS: "1m" }).shutdownTimeoutMs).toBe(60_000);
    expect(loadSettings({ TOLLGATE_EVENT_RETENTION_S: "1d" }).eventRetentionS).toBe(86_400);
    expect(refusal({ TOLLGATE_EVENT_RETENTION_S: "1500ms" })).toContain(
      'TOLLGATE_EVENT_RETENTION_S: "1500ms" is not a whole number of seconds',
    );
  });

  it("says a number is expected, never 'NaN'", () => {
    const m = refusal({ TOLLGATE_MAX_HEADERS: "lots" });
    expect(m).toContain("TOLLGATE_MAX_HEADERS: must be a whole number");
    expect(m).not.toContain("NaN");
    expect(refusal({ TOLLGATE_MAX_HEADERS: "0" })).toContain("must be at least 1");
  });
});

describe("TOLLGATE_WORKERS", () => {
  it("defaults to 1 (the sidecar case) and takes 1..64", () => {
    expect(loadSettings({}).workers).toBe(1);
    expect(loadSettings({ TOLLGATE_WORKERS: "64" }).workers).toBe(64);
  });

  it.each(["0", "65", "-1", "2.5", "many"])("refuses %s, naming the setting", (v) => {
    expect(refusal({ TOLLGATE_WORKERS: v })).toMatch(/TOLLGATE_WORKERS: must be/);
  });

  it("is in the help and the README table", () => {
    expect(settingsHelp()).toContain("TOLLGATE_WORKERS (default 1)");
  });
});
