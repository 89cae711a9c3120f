import { describe, expect, it } from "vitest";
import { reviewAdmission } from "../../src/inject/admission-review.js";
import { pointerSegment } from "../../src/inject/pod-patch.js";
import { defaultSidecarTemplate, type SidecarTemplate } from "../../src/inject/sidecar-template.js";
import {
  applyAndValidate,
  loadReview,
  patchOf,
  podOf,
  responseOf,
  reviewFor,
  sidecarOf,
  validatePod,
} from "./support.js";

type Json = Record<string, unknown>;
const template = defaultSidecarTemplate("registry.example.com/tollgate:0.1.0");

/** Runs one review and applies its patch; returns the response and the patched pod. */
function inject(review: Json, scope: "namespace" | "pod", t: SidecarTemplate = template) {
  const r = reviewAdmission(review, { template: t, scope });
  expect(r.status).toBe(200);
  const response = responseOf(r.body);
  expect(response.uid).toBe((review.request as Json).uid);
  const patch = patchOf(response);
  const pod = podOf(review);
  return { r, response, patch, pod: patch ? applyAndValidate(pod, patch) : pod };
}

describe("injecting into a pod of an opted-in namespace", () => {
  it("adds Tollgate as a native sidecar, first among init containers, and the result is a valid Pod", () => {
    const { r, response, pod } = inject(loadReview("review-deployment-pod"), "namespace");
    expect(r.outcome).toBe("injected");
    expect(response.allowed).toBe(true);
    const spec = pod.spec as Json;
    expect((spec.initContainers as Json[]).map((c) => c.name)).toEqual(["tollgate"]);
    // The application's containers are untouched.
    expect(spec.containers).toEqual(
      (podOf(loadReview("review-deployment-pod")).spec as Json).containers,
    );
    const c = sidecarOf(pod);
    expect(c.restartPolicy).toBe("Always");
    expect(c.image).toBe("registry.example.com/tollgate:0.1.0");
    expect(c.args).toEqual(["serve"]);
  });

  it("gives the sidecar a hardened security context, probes on the admin port and bounded resources", () => {
    const c = sidecarOf(inject(loadReview("review-deployment-pod"), "namespace").pod);
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      expect(c[p]).toMatchObject({ httpGet: { port: "tollgate-admin" } });
    }
    expect(c.resources).toEqual({
      requests: { cpu: "100m", memory: "128Mi" },
      limits: { cpu: "1", memory: "256Mi" },
    });
    const env = Object.fromEntries((c.env as Json[]).map((e) => [e.name, e.value]));
    // RPC stays on loopback; only the admin port (no data, no management) is on the pod IP.
    expect(env.TOLLGATE_ADDR).toBe("127.0.0.1:50051");
    expect(env.TOLLGATE_ADMIN_ADDR).toBe("0.0.0.0:9464");
  });

  it("adds the policy and secret volumes beside the pod's own and mounts them read-only", () => {
    const { pod } = inject(loadReview("review-deployment-pod"), "namespace");
    const volumes = (pod.spec as Json).volumes as Json[];
    expect(volumes.map((v) => v.name)).toEqual([
      "kube-api-access-x7k2p",
      "tollgate-policy",
      "tollgate-secrets",
    ]);
    expect(volumes[1]).toEqual({ name: "tollgate-policy", configMap: { name: "tollgate-policy" } });
    expect(volumes[2]).toMatchObject({ secret: { secretName: "tollgate" } });
    const mounts = sidecarOf(pod).volumeMounts as Json[];
    expect(mounts.every((m) => m.readOnly === true)).toBe(true);
  });

  it("marks the pod with the tollgate.dev/status annotation", () => {
    const { pod } = inject(loadReview("review-deployment-pod"), "namespace");
    expect((pod.metadata as Json).annotations).toEqual({ "tollgate.dev/status": "injected" });
  });

  it("puts the sidecar before the pod's own init containers and keeps existing annotations", () => {
    const { pod } = inject(loadReview("review-init-containers"), "pod");
    const spec = pod.spec as Json;
    expect((spec.initContainers as Json[]).map((c) => c.name)).toEqual(["tollgate", "migrate"]);
    expect((spec.volumes as Json[]).map((v) => v.name)).toEqual([
      "scratch",
      "tollgate-policy",
      "tollgate-secrets",
    ]);
    expect((pod.metadata as Json).annotations).toEqual({
      "prometheus.io/scrape": "true",
      "tollgate.dev/status": "injected",
    });
  });

  it("creates spec.volumes and metadata.annotations when the pod has none", () => {
    const { patch, pod } = inject(
      reviewFor({ spec: { containers: [{ name: "app", image: "app:1" }] } }),
      "namespace",
    );
    expect(patch?.map((o) => o.path)).toEqual([
      "/spec/initContainers",
      "/spec/volumes",
      "/metadata",
      "/metadata/annotations",
    ]);
    validatePod(pod);
  });
});

describe("opting in and out", () => {
  const plain = () => ({
    metadata: { name: "p" },
    spec: { containers: [{ name: "app", image: "app:1" }] },
  });
  const withMeta = (where: "labels" | "annotations", value: string) => {
    const p = plain();
    return { ...p, metadata: { ...p.metadata, [where]: { "tollgate.dev/inject": value } } };
  };

  it("leaves a pod of a namespace that did not opt in alone unless the pod opts in", () => {
    const r = inject(reviewFor(plain()), "pod");
    expect(r.r.outcome).toBe("skipped");
    expect(r.r.detail).toBe("not-opted-in");
    expect(r.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it.each([
    ["labels", "enabled"],
    ["labels", "true"],
    ["annotations", "true"],
    ["annotations", "Enabled"],
  ] as const)("injects a pod that opts in with the %s value %s", (where, value) => {
    expect(inject(reviewFor(withMeta(where, value)), "pod").r.outcome).toBe("injected");
  });

  it.each([
    ["labels", "disabled"],
    ["labels", "false"],
    ["annotations", "false"],
    ["annotations", "disabled"],
  ] as const)(
    "leaves untouched a pod that opts out with the %s value %s, even in an opted-in namespace",
    (where, value) => {
      const r = inject(reviewFor(withMeta(where, value)), "namespace");
      expect(r.r.detail).toBe("opted-out");
      expect(r.patch).toBeUndefined();
      expect(r.response.allowed).toBe(true);
    },
  );

  it("lets an opt-out annotation win over an opt-in label", () => {
    const p = plain();
    const pod = {
      ...p,
      metadata: {
        name: "p",
        labels: { "tollgate.dev/inject": "enabled" },
        annotations: { "tollgate.dev/inject": "false" },
      },
    };
    expect(inject(reviewFor(pod), "pod").r.detail).toBe("opted-out");
  });

  it("skips host-network pods (their admin port would collide on the node)", () => {
    const p = plain();
    const pod = { ...p, spec: { ...p.spec, hostNetwork: true } };
    expect(inject(reviewFor(pod), "namespace").r.detail).toBe("host-network");
  });
});

describe("idempotence", () => {
  it("injecting an injected pod again is a no-op", () => {
    const first = inject(loadReview("review-deployment-pod"), "namespace");
    const again = inject(reviewFor(first.pod), "namespace");
    expect(again.r.outcome).toBe("skipped");
    expect(again.r.detail).toBe("already-injected");
    expect(again.patch).toBeUndefined();
  });

  it("does not inject into a pod that already runs the sidecar by hand", () => {
    const pod = {
      metadata: { name: "p", labels: { "tollgate.dev/inject": "enabled" } },
      spec: {
        initContainers: [{ name: "tollgate", image: "mine:1", restartPolicy: "Always" }],
        containers: [{ name: "app", image: "app:1" }],
      },
    };
    expect(inject(reviewFor(pod), "pod").r.detail).toBe("already-injected");
  });
});

describe("per-pod overrides by annotation", () => {
  it("applies resources, log level, fail mode, policy ConfigMap and Secret name", () => {
    const { r, pod } = inject(loadReview("review-annotation-overrides"), "pod");
    expect(r.outcome).toBe("injected");
    const c = sidecarOf(pod);
    expect(c.resources).toEqual({
      requests: { cpu: "250m", memory: "128Mi" },
      limits: { cpu: "1", memory: "512Mi" },
    });
    const env = Object.fromEntries((c.env as Json[]).map((e) => [e.name, e.value]));
    expect(env.TOLLGATE_LOG_LEVEL).toBe("debug");
    expect(env.TOLLGATE_FAIL_MODE).toBe("open");
    const volumes = (pod.spec as Json).volumes as Json[];
    expect(volumes.find((v) => v.name === "tollgate-policy")).toEqual({
      name: "tollgate-policy",
      configMap: { name: "search-policy" },
    });
    expect(volumes.find((v) => v.name === "tollgate-secrets")).toMatchObject({
      secret: { secretName: "search-tollgate" },
    });
  });

  it("does not change the shared template", () => {
    const t = defaultSidecarTemplate();
    const before = structuredClone(t);
    inject(loadReview("review-annotation-overrides"), "pod", t);
    expect(t).toEqual(before);
  });

  it.each([
    ["tollgate.dev/cpu-limit", "lots", "tollgate.dev/cpu-limit"],
    ["tollgate.dev/log-level", "loud", "tollgate.dev/log-level"],
    ["tollgate.dev/secret", "Not_A_Name", "tollgate.dev/secret"],
    ["tollgate.dev/memory-limt", "1Gi", "unknown annotation tollgate.dev/memory-limt"],
  ])("refuses the pod when %s is %s, naming the annotation", (key, value, named) => {
    const pod = {
      metadata: { name: "p", annotations: { "tollgate.dev/inject": "true", [key]: value } },
      spec: { containers: [{ name: "app", image: "app:1" }] },
    };
    const r = reviewAdmission(reviewFor(pod), { template, scope: "pod" });
    expect(r.status).toBe(200);
    expect(r.outcome).toBe("denied");
    const response = responseOf(r.body);
    expect(response.allowed).toBe(false);
    expect(response.patch).toBeUndefined();
    expect(response.status).toMatchObject({ code: 422 });
    expect(String((response.status as Json).message)).toContain(named);
  });
});

describe("reviews that are not for injection", () => {
  it("allows anything but a Pod CREATE untouched", () => {
    const review = reviewFor({ spec: { containers: [{ name: "a", image: "a" }] } });
    (review.request as Json).operation = "UPDATE";
    const r = reviewAdmission(review, { template, scope: "namespace" });
    expect(r.outcome).toBe("skipped");
    expect(responseOf(r.body)).toEqual({ uid: expect.any(String), allowed: true });
    const dep = reviewFor({});
    (dep.request as Json).kind = { group: "apps", version: "v1", kind: "Deployment" };
    expect(reviewAdmission(dep, { template, scope: "namespace" }).outcome).toBe("skipped");
  });

  it.each([
    ["a string", "hello", "JSON object"],
    [
      "v1beta1",
      { apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: {} },
      "admission.k8s.io/v1",
    ],
    [
      "no request",
      { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" },
      "request is missing",
    ],
    [
      "no uid",
      { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: { kind: {} } },
      "request.uid",
    ],
  ])("rejects a malformed review (%s) with HTTP 400 and the reason", (_name, body, reason) => {
    const r = reviewAdmission(body, { template, scope: "namespace" });
    expect(r.status).toBe(400);
    expect(r.outcome).toBe("malformed");
    expect(r.body).toContain(reason);
  });

  it("denies a Pod review whose object has no containers, answering in kind", () => {
    const r = reviewAdmission(reviewFor({ spec: {} }), { template, scope: "namespace" });
    expect(r.outcome).toBe("denied");
    expect(responseOf(r.body)).toMatchObject({ allowed: false, status: { code: 400 } });
  });
});

it("escapes JSON Pointer segments (the status annotation has a slash)", () => {
  expect(pointerSegment("tollgate.dev/status")).toBe("tollgate.dev~1status");
  expect(pointerSegment("a~b")).toBe("a~0b");
});
