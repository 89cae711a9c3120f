/**
 * Helpers of the injector tests: AdmissionReview fixtures, decoding the
 * returned JSON Patch, applying it with an independent RFC 6902
 * implementation and validating the resulting Pod against the Kubernetes
 * OpenAPI schema (kubernetes-models), offline.
 */
import { readFileSync } from "node:fs";
import fastJsonPatch, { type Operation } from "fast-json-patch";
import { Pod } from "kubernetes-models/v1";
import { expect } from "vitest";

type Json = Record<string, unknown>;

/** A fixture AdmissionReview, parsed afresh on every call. */
export function loadReview(name: string): Json {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf8"));
}

/** The pod inside a review. */
export function podOf(review: Json): Json {
  return (review.request as Json).object as Json;
}

/** A review of `pod`, as the API server sends it on CREATE. */
export function reviewFor(pod: Json, uid = "00000000-0000-4000-8000-000000000001"): Json {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      namespace: "default",
      operation: "CREATE",
      userInfo: { username: "test" },
      object: pod,
      dryRun: false,
    },
  };
}

/** The review's response object. */
export function responseOf(body: unknown): Json {
  expect(body).toMatchObject({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" });
  return (body as Json).response as Json;
}

/** Decodes the base64 JSON Patch of a response (undefined when there is none). */
export function patchOf(response: Json): Operation[] | undefined {
  if (response.patch === undefined) return undefined;
  expect(response.patchType).toBe("JSONPatch");
  return JSON.parse(Buffer.from(String(response.patch), "base64").toString("utf8"));
}

/**
 * Applies `patch` to a copy of `pod` the way the API server would (every
 * operation must apply: fast-json-patch validates paths), then validates the
 * result as a v1 Pod. Returns the patched pod.
 */
export function applyAndValidate(pod: Json, patch: Operation[]): Json {
  const out = fastJsonPatch.applyPatch(structuredClone(pod), patch, true, false).newDocument;
  validatePod(out);
  return out;
}

/** Throws with every schema violation when `pod` is not a valid v1 Pod. */
export function validatePod(pod: Json): void {
  new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();
}

/** The injected sidecar of a patched pod. */
export function sidecarOf(pod: Json): Json {
  const init = ((pod.spec as Json).initContainers ?? []) as Json[];
  const c = init.find((x) => x.name === "tollgate");
  if (!c) throw new Error("no tollgate init container");
  return c;
}
