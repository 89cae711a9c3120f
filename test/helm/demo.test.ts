/** The optional demo (Envoy + an echo app + Tollgate added by hand) and the optional ServiceMonitor. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CHART, envOf, type K8s, one, render } from "./render.js";

describe("demo", () => {
  it("is disabled by default", async () => {
    const docs = await render();
    expect(docs.some((d) => d.metadata.name.endsWith("-demo"))).toBe(false);
  });

  it("runs Envoy and the app with Tollgate as a native sidecar identical to the injected one", async () => {
    const docs = await render({ "demo.enabled": true });
    const pod = one(docs, "Deployment", "-demo").spec.template;
    expect(pod.metadata.labels["tollgate.dev/inject"]).toBe("disabled");
    expect(pod.spec.initContainers).toHaveLength(1);
    const injected = JSON.parse(one(docs, "ConfigMap", "-injector").data["sidecar.json"]);
    // The hand-added sidecar (the tollgate.sidecar template) is what the injector injects.
    expect(pod.spec.initContainers[0]).toEqual(injected.container);
    for (const v of injected.volumes) expect(pod.spec.volumes).toContainEqual(v);
    expect(pod.spec.containers.map((c: K8s) => c.name)).toEqual(["envoy", "app"]);
    const app = pod.spec.containers[1];
    // Only Envoy, in the same pod, reaches the application.
    expect(app.args).toContain("-listen=127.0.0.1:8081");
  });

  it("configures Envoy with the repository's example (ext_authz and rate limit to 127.0.0.1:50051)", async () => {
    const docs = await render({ "demo.enabled": true });
    const config = one(docs, "ConfigMap", "-demo-envoy").data["envoy.yaml"];
    expect(config).toBe(readFileSync(`${CHART}/files/demo-envoy.yaml`, "utf8"));
    expect(config).toContain("port_value: 50051");
    const envoy = one(docs, "Deployment", "-demo").spec.template.spec.containers[0];
    expect(envoy.command).toEqual(["envoy"]);
    expect(envoy.args).toContain("/etc/envoy/envoy.yaml");
    // The sidecar's gRPC port is the one Envoy's cluster points at.
    const sidecar = one(docs, "Deployment", "-demo").spec.template.spec.initContainers[0];
    expect(envOf(sidecar).TOLLGATE_ADDR).toBe("127.0.0.1:50051");
  });

  it("exposes Envoy and the admin port, labelled for the ServiceMonitor", async () => {
    const svc = one(await render({ "demo.enabled": true }), "Service", "-demo");
    expect(svc.metadata.labels["tollgate.dev/metrics"]).toBe("true");
    expect(svc.spec.ports.map((p: K8s) => [p.name, p.port])).toEqual([
      ["http", 8000],
      ["tollgate-admin", 9464],
    ]);
  });

  it("NetworkPolicy: HTTP and admin in; DNS out, and Redis ports only when Redis is configured", async () => {
    const np = one(await render({ "demo.enabled": true }), "NetworkPolicy", "-demo");
    expect(np.spec.ingress[0].ports.map((p: K8s) => p.port)).toEqual(["http", "tollgate-admin"]);
    expect(np.spec.egress).toHaveLength(1);
    const withRedis = one(
      await render({ "demo.enabled": true, "redis.url": "redis://redis:6379" }),
      "NetworkPolicy",
      "-demo",
    );
    expect(withRedis.spec.egress[1].ports.map((p: K8s) => p.port)).toEqual([6379, 26379]);
  });

  it("has its own PodDisruptionBudget", async () => {
    const pdb = one(await render({ "demo.enabled": true }), "PodDisruptionBudget", "-demo");
    expect(pdb.spec.selector.matchLabels["app.kubernetes.io/component"]).toBe("demo");
  });
});

describe("ServiceMonitor", () => {
  it("is disabled by default", async () => {
    expect((await render()).some((d) => d.kind === "ServiceMonitor")).toBe(false);
  });

  it("scrapes /metrics on tollgate-admin of labelled Services in every namespace, or the listed ones", async () => {
    const sm = one(
      await render({
        "serviceMonitor.enabled": true,
        "serviceMonitor.labels": { release: "prom" },
      }),
      "ServiceMonitor",
    );
    expect(sm.metadata.labels.release).toBe("prom");
    expect(sm.spec.selector.matchLabels).toEqual({ "tollgate.dev/metrics": "true" });
    expect(sm.spec.namespaceSelector).toEqual({ any: true });
    expect(sm.spec.endpoints).toEqual([
      { port: "tollgate-admin", path: "/metrics", scheme: "http", interval: "30s" },
    ]);
    const listed = one(
      await render({ "serviceMonitor.enabled": true, "serviceMonitor.namespaces": ["shop"] }),
      "ServiceMonitor",
    );
    expect(listed.spec.namespaceSelector).toEqual({ matchNames: ["shop"] });
  });
});
