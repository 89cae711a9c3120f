/**
 * The sidecar container the chart renders (the `tollgate.sidecar` template,
 * injected by the webhook and used by the demo): shape, probes, the settings
 * it sets — checked against Tollgate's own settings table — Redis modes and
 * secrets.
 */
import { describe, expect, it } from "vitest";
import { loadSettings, SETTINGS } from "../../src/config/settings.js";
import { envOf, type K8s, one, render } from "./render.js";

/** The sidecar as the injector would inject it. */
async function sidecar(
  values: Record<string, unknown> = {},
): Promise<{ container: K8s; volumes: K8s[]; docs: K8s[] }> {
  const docs = await render(values);
  const cm = one(docs, "ConfigMap", "-injector");
  return { ...JSON.parse(cm.data["sidecar.json"]), docs };
}

/** The env Tollgate would see: $(VAR) references expanded the way the kubelet does. */
function processEnv(container: K8s, secrets: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of container.env as K8s[]) {
    const v =
      e.value !== undefined
        ? String(e.value).replace(
            /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
            (_m, n: string) => out[n] ?? `$(${n})`,
          )
        : (secrets[`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`] ?? "");
    out[e.name] = v;
  }
  return out;
}

const KNOWN_ENV = new Set([
  ...Object.values(SETTINGS).map((s) => s.env),
  // Not Tollgate settings: the Redis password, expanded into REDIS_URL, and Node's CA bundle.
  "REDIS_PASSWORD",
  "NODE_EXTRA_CA_CERTS",
]);

describe("the sidecar container", () => {
  it("is a native sidecar named tollgate running `serve` from the chart's image", async () => {
    const { container } = await sidecar();
    expect(container).toMatchObject({
      name: "tollgate",
      image: "ghcr.io/tollgate/tollgate:0.1.0",
      command: ["node", "/app/dist/cli/main.js"],
      args: ["serve"],
      restartPolicy: "Always",
    });
    const pinned = await sidecar({ "image.digest": `sha256:${"a".repeat(64)}` });
    expect(pinned.container.image).toBe(`ghcr.io/tollgate/tollgate@sha256:${"a".repeat(64)}`);
  });

  it("keeps RPC on loopback and puts only the admin port on the pod IP, probed over HTTP", async () => {
    const { container } = await sidecar();
    const env = envOf(container);
    expect(env.TOLLGATE_ADDR).toBe("127.0.0.1:50051");
    expect(env.TOLLGATE_HTTP_ADDR).toBe("127.0.0.1:8080");
    expect(env.TOLLGATE_ADMIN_ADDR).toBe("0.0.0.0:9464");
    expect(env.TOLLGATE_ALLOW_PLAINTEXT).toBeUndefined();
    expect(container.ports).toEqual([
      { name: "tollgate-admin", containerPort: 9464, protocol: "TCP" },
    ]);
    expect(container.startupProbe).toEqual({
      httpGet: { path: "/readyz", port: "tollgate-admin" },
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 30,
    });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "tollgate-admin" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "tollgate-admin" });
  });

  it("with probes.type=grpc: gRPC probes on the main port, which then listens on the pod IP in plaintext", async () => {
    const { container } = await sidecar({ "sidecar.probes.type": "grpc" });
    const env = envOf(container);
    expect(env.TOLLGATE_ADDR).toBe("0.0.0.0:50051");
    expect(env.TOLLGATE_ALLOW_PLAINTEXT).toBe("true");
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      expect(container[p].grpc).toEqual({ port: 50051 });
      expect(container[p].httpGet).toBeUndefined();
    }
    expect(container.ports.map((p: K8s) => p.name)).toEqual(["tollgate-admin", "tollgate-grpc"]);
  });

  it("reads the policy and the secrets from read-only mounted files", async () => {
    const { container, volumes } = await sidecar();
    const env = envOf(container);
    expect(env.TOLLGATE_POLICY_FILE).toBe("/etc/tollgate/policy/policy.yaml");
    expect(env.TOLLGATE_PEPPER_FILE).toBe("/etc/tollgate/secrets/pepper");
    expect(env.TOLLGATE_MANAGEMENT_TOKEN_FILE).toBe("/etc/tollgate/secrets/management-token");
    expect(env.TOLLGATE_PEPPER).toBeUndefined();
    expect(container.volumeMounts.every((m: K8s) => m.readOnly === true)).toBe(true);
    expect(volumes.map((v) => v.name)).toEqual(["tollgate-policy", "tollgate-secrets"]);
    expect(volumes[0]?.configMap.name).toBe("t-tollgate-policy");
    expect(volumes[1]?.secret).toMatchObject({ secretName: "t-tollgate", defaultMode: 0o444 });
  });

  it("sets only real settings, and Tollgate's own validation accepts every value set's environment", async () => {
    const sets: Record<string, unknown>[] = [
      {},
      { "sidecar.probes.type": "grpc", "sidecar.httpPort": 0, "sidecar.logLevel": "debug" },
      {
        "redis.url": "redis-master.redis:6379/2",
        "redis.username": "tollgate",
        "redis.password.existingSecret": "redis-auth",
        "redis.tls.enabled": true,
        "redis.tls.caSecret": "redis-ca",
      },
      {
        "redis.mode": "sentinel",
        "redis.sentinel.addresses": ["s-0:26379", "s-1:26379"],
        "redis.sentinel.password.existingSecret": "sentinel-auth",
      },
      { "redis.mode": "cluster", "redis.cluster.nodes": ["c-0:6379", "c-1:6379"] },
      { "sidecar.extraEnv": [{ name: "TOLLGATE_CACHE_TTL_MS", value: "2000" }] },
    ];
    for (const values of sets) {
      const { container } = await sidecar(values);
      for (const e of container.env as K8s[])
        expect(KNOWN_ENV, JSON.stringify(values)).toContain(e.name);
      const env = processEnv(container, {
        "redis-auth/redis-password": "s3cret-pass",
        "sentinel-auth/sentinel-password": "sentinel-pass",
      });
      expect(() => loadSettings(env), JSON.stringify(values)).not.toThrow();
    }
  });

  it("honours httpPort 0 (Connect HTTP port off), extraEnv and the log level and fail mode", async () => {
    const { container } = await sidecar({
      "sidecar.httpPort": 0,
      "sidecar.logLevel": "warn",
      "sidecar.failMode": "open",
      "sidecar.extraEnv": [{ name: "TOLLGATE_CACHE_TTL_MS", value: "2000" }],
    });
    const env = envOf(container);
    expect(env.TOLLGATE_HTTP_ADDR).toBe("");
    expect(env.TOLLGATE_LOG_LEVEL).toBe("warn");
    expect(env.TOLLGATE_FAIL_MODE).toBe("open");
    expect(env.TOLLGATE_CACHE_TTL_MS).toBe("2000");
  });
});

describe("Redis", () => {
  it("is off by default: the embedded store, with a warning in NOTES", async () => {
    const env = envOf((await sidecar()).container);
    expect(env.REDIS_URL).toBeUndefined();
    expect(env.TOLLGATE_REDIS_MODE).toBeUndefined();
  });

  it("standalone: the password comes from its Secret and is expanded into REDIS_URL, never written in the spec", async () => {
    const { container } = await sidecar({
      "redis.url": "redis://redis-master.redis:6379/0",
      "redis.password.existingSecret": "redis-auth",
    });
    const names = (container.env as K8s[]).map((e) => e.name);
    // $(REDIS_PASSWORD) only expands when the variable is defined earlier.
    expect(names.indexOf("REDIS_PASSWORD")).toBeLessThan(names.indexOf("REDIS_URL"));
    const env = envOf(container);
    expect(env.REDIS_PASSWORD).toEqual({
      secretKeyRef: { name: "redis-auth", key: "redis-password" },
    });
    expect(env.REDIS_URL).toBe("redis://:$(REDIS_PASSWORD)@redis-master.redis:6379/0");
    expect(env.TOLLGATE_REDIS_MODE).toBe("standalone");
    expect(env.TOLLGATE_REDIS_PREFIX).toBe("tg:");
  });

  it("TLS: rediss:// and the CA from a Secret through NODE_EXTRA_CA_CERTS", async () => {
    const { container, volumes } = await sidecar({
      "redis.url": "redis-master.redis:6379",
      "redis.tls.enabled": true,
      "redis.tls.caSecret": "redis-ca",
    });
    const env = envOf(container);
    expect(env.REDIS_URL).toBe("rediss://redis-master.redis:6379");
    expect(env.NODE_EXTRA_CA_CERTS).toBe("/etc/tollgate/redis-ca/ca.crt");
    expect(container.volumeMounts).toContainEqual({
      name: "tollgate-redis-ca",
      mountPath: "/etc/tollgate/redis-ca",
      readOnly: true,
    });
    expect(volumes).toContainEqual({
      name: "tollgate-redis-ca",
      secret: { secretName: "redis-ca", items: [{ key: "ca.crt", path: "ca.crt" }] },
    });
  });

  it("Sentinel: sentinels, master name and the sentinels' own password from a Secret", async () => {
    const env = envOf(
      (
        await sidecar({
          "redis.mode": "sentinel",
          "redis.sentinel.addresses": ["s-0.redis:26379", "s-1.redis:26379"],
          "redis.sentinel.masterName": "primary",
          "redis.sentinel.password.existingSecret": "sentinel-auth",
          "redis.password.existingSecret": "redis-auth",
        })
      ).container,
    );
    expect(env.TOLLGATE_REDIS_MODE).toBe("sentinel");
    expect(env.TOLLGATE_REDIS_SENTINELS).toBe("s-0.redis:26379,s-1.redis:26379");
    expect(env.TOLLGATE_REDIS_SENTINEL_MASTER).toBe("primary");
    expect(env.TOLLGATE_REDIS_SENTINEL_PASSWORD).toEqual({
      secretKeyRef: { name: "sentinel-auth", key: "sentinel-password" },
    });
    expect(env.REDIS_URL).toBe("redis://:$(REDIS_PASSWORD)@primary");
  });

  it("Cluster: the URL is a seed and the other nodes are extra seeds", async () => {
    const env = envOf(
      (
        await sidecar({
          "redis.mode": "cluster",
          "redis.cluster.nodes": ["c-0.redis:6379", "c-1.redis:6379"],
        })
      ).container,
    );
    expect(env.TOLLGATE_REDIS_MODE).toBe("cluster");
    expect(env.REDIS_URL).toBe("redis://c-0.redis:6379");
    expect(env.TOLLGATE_REDIS_CLUSTER_NODES).toBe("c-0.redis:6379,c-1.redis:6379");
  });
});

describe("secrets and policy", () => {
  it("generates a 48-character pepper and management token, kept on uninstall", async () => {
    const secret = one(await render(), "Secret", "t-tollgate");
    for (const key of ["pepper", "management-token"]) {
      expect(Buffer.from(secret.data[key], "base64").toString()).toMatch(/^[A-Za-z0-9]{48}$/);
    }
    expect(secret.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
  });

  it("uses explicit values when given", async () => {
    const secret = one(
      await render({ "secrets.pepper": "p".repeat(20), "secrets.managementToken": "m".repeat(20) }),
      "Secret",
      "t-tollgate",
    );
    expect(Buffer.from(secret.data.pepper, "base64").toString()).toBe("p".repeat(20));
    expect(Buffer.from(secret.data["management-token"], "base64").toString()).toBe("m".repeat(20));
  });

  it("with existingSecret and existingConfigMap: creates neither and mounts those", async () => {
    const { volumes, docs } = await sidecar({
      "secrets.existingSecret": "managed",
      "policy.create": false,
      "policy.existingConfigMap": "my-policy",
    });
    expect(docs.some((d) => d.kind === "Secret" && d.metadata.name === "t-tollgate")).toBe(false);
    expect(
      docs.some((d) => d.kind === "ConfigMap" && d.metadata.name === "t-tollgate-policy"),
    ).toBe(false);
    expect(volumes[0]?.configMap.name).toBe("my-policy");
    expect(volumes[1]?.secret.secretName).toBe("managed");
  });

  it("renders a custom policy from policy.content", async () => {
    const content = "version: 1\ndefault_tier: free\ntiers:\n  free: {}\n";
    const cm = one(await render({ "policy.content": content }), "ConfigMap", "-policy");
    expect(cm.data["policy.yaml"]).toBe(content);
  });
});
