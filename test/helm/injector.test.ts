/** The chart's injector: Deployment, Service, webhook configuration, TLS, RBAC, NetworkPolicy, PDB. */
import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type K8s, NAMESPACE, one, render } from "./render.js";

const webhooks = (docs: K8s[]) => one(docs, "MutatingWebhookConfiguration").webhooks as K8s[];
const byName = (docs: K8s[], name: string) => webhooks(docs).find((w) => w.name === name) as K8s;

describe("injection disabled", () => {
  it("renders no webhook, no injector workload and nothing that needs a certificate", async () => {
    const docs = await render({ "injector.enabled": false });
    expect(docs.map((d) => d.kind).sort()).toEqual(["ConfigMap", "Secret"]);
  });
});

describe("the webhook configuration", () => {
  it("registers two webhooks on Pod CREATE with AdmissionReview v1 and no side effects", async () => {
    const docs = await render();
    expect(webhooks(docs).map((w) => w.name)).toEqual([
      "namespace.inject.tollgate.dev",
      "pod.inject.tollgate.dev",
    ]);
    for (const w of webhooks(docs)) {
      expect(w.admissionReviewVersions).toEqual(["v1"]);
      expect(w.sideEffects).toBe("None");
      expect(w.rules).toEqual([
        {
          operations: ["CREATE"],
          apiGroups: [""],
          apiVersions: ["v1"],
          resources: ["pods"],
          scope: "Namespaced",
        },
      ]);
      expect(w.clientConfig.service).toMatchObject({
        name: "t-tollgate-injector",
        namespace: NAMESPACE,
        port: 443,
      });
    }
    expect(byName(docs, "namespace.inject.tollgate.dev").clientConfig.service.path).toBe(
      "/inject/namespace",
    );
    expect(byName(docs, "pod.inject.tollgate.dev").clientConfig.service.path).toBe("/inject/pod");
  });

  it("takes the failure policy and timeout from values (Fail by default)", async () => {
    expect(webhooks(await render()).map((w) => w.failurePolicy)).toEqual(["Fail", "Fail"]);
    const docs = await render({ "injector.failurePolicy": "Ignore", "injector.timeoutSeconds": 2 });
    expect(webhooks(docs).map((w) => [w.failurePolicy, w.timeoutSeconds])).toEqual([
      ["Ignore", 2],
      ["Ignore", 2],
    ]);
  });

  it("never sends system namespaces or the release's own namespace to the injector", async () => {
    for (const w of webhooks(await render())) {
      const ns = w.namespaceSelector.matchExpressions.find(
        (e: K8s) => e.key === "kubernetes.io/metadata.name",
      );
      expect(ns.operator).toBe("NotIn");
      expect(ns.values).toEqual(["kube-system", "kube-public", "kube-node-lease", NAMESPACE]);
    }
  });

  it("selects opted-in namespaces (pods may opt out) and, elsewhere, pods that opt in by label", async () => {
    const docs = await render();
    const ns = byName(docs, "namespace.inject.tollgate.dev");
    expect(ns.namespaceSelector.matchExpressions).toContainEqual({
      key: "tollgate.dev/inject",
      operator: "In",
      values: ["enabled", "true"],
    });
    expect(ns.objectSelector.matchExpressions).toEqual([
      { key: "tollgate.dev/inject", operator: "NotIn", values: ["disabled", "false"] },
    ]);
    const pod = byName(docs, "pod.inject.tollgate.dev");
    expect(pod.namespaceSelector.matchExpressions).toContainEqual({
      key: "tollgate.dev/inject",
      operator: "NotIn",
      values: ["enabled", "true", "disabled", "false"],
    });
    expect(pod.objectSelector.matchExpressions).toEqual([
      { key: "tollgate.dev/inject", operator: "In", values: ["enabled", "true"] },
    ]);
  });

  it("with annotationOptIn, sends every pod of other namespaces (the injector reads the annotation)", async () => {
    const pod = byName(
      await render({ "injector.annotationOptIn": true }),
      "pod.inject.tollgate.dev",
    );
    expect(pod.objectSelector.matchExpressions).toEqual([
      { key: "tollgate.dev/inject", operator: "NotIn", values: ["disabled", "false"] },
    ]);
  });
});

describe("webhook TLS", () => {
  it("self-signed by default: the caBundle verifies the serving certificate for the Service's DNS name", async () => {
    const docs = await render();
    const secret = one(docs, "Secret", "-injector-tls");
    expect(secret.type).toBe("kubernetes.io/tls");
    const cert = new X509Certificate(Buffer.from(secret.data["tls.crt"], "base64"));
    const ca = new X509Certificate(Buffer.from(webhooks(docs)[0]?.clientConfig.caBundle, "base64"));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost(`t-tollgate-injector.${NAMESPACE}.svc`)).toBeDefined();
    expect(ca.ca).toBe(true);
    // Both webhooks trust the same CA.
    expect(new Set(webhooks(docs).map((w) => w.clientConfig.caBundle)).size).toBe(1);
  });

  it("with cert-manager: a Certificate for the Service names, CA injected by annotation, no chart-made key", async () => {
    const docs = await render({ "injector.certManager.enabled": true });
    expect(docs.some((d) => d.kind === "Secret" && d.metadata.name.endsWith("-injector-tls"))).toBe(
      false,
    );
    const certificate = one(docs, "Certificate");
    expect(certificate.spec.secretName).toBe("t-tollgate-injector-tls");
    expect(certificate.spec.dnsNames).toContain(`t-tollgate-injector.${NAMESPACE}.svc`);
    expect(certificate.spec.issuerRef).toEqual({
      name: "t-tollgate-injector-selfsigned",
      kind: "Issuer",
      group: "cert-manager.io",
    });
    expect(one(docs, "Issuer").spec).toEqual({ selfSigned: {} });
    const config = one(docs, "MutatingWebhookConfiguration");
    expect(config.metadata.annotations["cert-manager.io/inject-ca-from"]).toBe(
      `${NAMESPACE}/t-tollgate-injector`,
    );
    for (const w of config.webhooks) expect(w.clientConfig.caBundle).toBeUndefined();
  });

  it("with cert-manager and an issuerRef: uses it and creates no Issuer", async () => {
    const ref = { name: "cluster-ca", kind: "ClusterIssuer", group: "cert-manager.io" };
    const docs = await render({
      "injector.certManager.enabled": true,
      "injector.certManager.issuerRef": ref,
    });
    expect(one(docs, "Certificate").spec.issuerRef).toEqual(ref);
    expect(docs.some((d) => d.kind === "Issuer")).toBe(false);
  });
});

describe("the injector workload", () => {
  it("runs two replicas spread over nodes, with no API token, never injected itself", async () => {
    const dep = one(await render(), "Deployment", "-injector");
    expect(dep.spec.replicas).toBe(2);
    const pod = dep.spec.template;
    expect(pod.metadata.labels["tollgate.dev/inject"]).toBe("disabled");
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.affinity.podAntiAffinity).toBeDefined();
    const c = pod.spec.containers[0];
    expect(c.command).toEqual(["node", "/app/dist/cli/main.js"]);
    expect(c.args.slice(0, 1)).toEqual(["inject"]);
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      expect(c[p].httpGet).toMatchObject({ port: "https", scheme: "HTTPS" });
    }
  });

  it("has a ServiceAccount and no Role: it needs no Kubernetes API access", async () => {
    const docs = await render();
    expect(one(docs, "ServiceAccount").automountServiceAccountToken).toBe(false);
    expect(docs.some((d) => /Role/.test(d.kind))).toBe(false);
  });

  it("NetworkPolicy: HTTPS in on the webhook port only, nothing out", async () => {
    const np = one(await render(), "NetworkPolicy", "-injector");
    expect(np.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(np.spec.ingress).toEqual([{ ports: [{ port: "https", protocol: "TCP" }] }]);
    expect(np.spec.egress).toEqual([]);
    const narrowed = one(
      await render({ "networkPolicy.apiServerCIDRs": ["10.0.0.0/28"] }),
      "NetworkPolicy",
      "-injector",
    );
    expect(narrowed.spec.ingress[0].from).toEqual([{ ipBlock: { cidr: "10.0.0.0/28" } }]);
  });

  it("PodDisruptionBudget keeps all but one injector up; none when disabled", async () => {
    expect(one(await render(), "PodDisruptionBudget").spec.maxUnavailable).toBe(1);
    const docs = await render({ "podDisruptionBudget.enabled": false });
    expect(docs.some((d) => d.kind === "PodDisruptionBudget")).toBe(false);
  });
});
