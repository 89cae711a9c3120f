/**
 * Pure injection logic: whether a pod gets the sidecar, the per-pod overrides
 * its annotations ask for, and the RFC 6902 JSON Patch that adds it.
 *
 * Opt-in comes in two scopes, matching the two webhooks the chart registers:
 * - `namespace`: the pod's namespace carries the label `tollgate.dev/inject=enabled`
 *   (checked by the webhook's namespaceSelector), so every pod is injected
 *   unless it opts out;
 * - `pod`: only pods that opt in themselves are injected.
 * A pod opts in or out with the label or the annotation `tollgate.dev/inject`
 * (`enabled`/`true` or `disabled`/`false`); an opt-out anywhere wins.
 */
import {
  isObject,
  type Json,
  POLICY_VOLUME,
  SECRETS_VOLUME,
  SIDECAR_NAME,
  type SidecarTemplate,
} from "./sidecar-template.js";

/** Label and annotation that opt a pod (or, as a label, a namespace) in or out. */
export const INJECT_KEY = "tollgate.dev/inject";
/** Annotation the injector sets on the pods it patched. */
export const STATUS_ANNOTATION = "tollgate.dev/status";

/** Which webhook asked: see the module comment. */
export type InjectScope = "namespace" | "pod";

/** One RFC 6902 operation (the injector only adds). */
export interface PatchOp {
  op: "add";
  path: string;
  value: unknown;
}

/** Whether to inject, and if not, why (for the log and the response's warnings). */
export type InjectDecision =
  | { inject: true }
  | { inject: false; reason: "opted-out" | "not-opted-in" | "already-injected" | "host-network" };

/** A pod the injector must refuse (bad override annotation, broken spec). */
export class InjectError extends Error {
  override name = "InjectError";
}

const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

type Override = {
  check: (v: string) => boolean;
  expect: string;
  apply: (t: SidecarTemplate, v: string) => void;
};

/**
 * Per-pod overrides by annotation. Each value is validated: a bad one refuses
 * the pod with a message naming the annotation, rather than starting a
 * sidecar the user did not ask for.
 */
export const OVERRIDE_ANNOTATIONS: Record<string, Override> = {
  "tollgate.dev/cpu-request": resource("requests", "cpu"),
  "tollgate.dev/memory-request": resource("requests", "memory"),
  "tollgate.dev/cpu-limit": resource("limits", "cpu"),
  "tollgate.dev/memory-limit": resource("limits", "memory"),
  "tollgate.dev/log-level": {
    check: (v) => LOG_LEVELS.has(v),
    expect: [...LOG_LEVELS].join(", "),
    apply: (t, v) => setEnv(t.container, "TOLLGATE_LOG_LEVEL", v),
  },
  "tollgate.dev/fail-mode": {
    check: (v) => v === "open" || v === "closed",
    expect: "open or closed",
    apply: (t, v) => setEnv(t.container, "TOLLGATE_FAIL_MODE", v),
  },
  "tollgate.dev/policy-configmap": {
    check: (v) => DNS_SUBDOMAIN.test(v),
    expect: "a ConfigMap name",
    apply: (t, v) => {
      const vol = t.volumes.find((x) => x.name === POLICY_VOLUME);
      if (vol) vol.configMap = { ...(vol.configMap as Json), name: v };
    },
  },
  "tollgate.dev/secret": {
    check: (v) => DNS_SUBDOMAIN.test(v),
    expect: "a Secret name",
    apply: (t, v) => {
      const vol = t.volumes.find((x) => x.name === SECRETS_VOLUME);
      if (vol) vol.secret = { ...(vol.secret as Json), secretName: v };
    },
  },
};

function resource(kind: "requests" | "limits", name: "cpu" | "memory"): Override {
  return {
    check: (v) => QUANTITY.test(v),
    expect: "a Kubernetes quantity such as 250m or 256Mi",
    apply: (t, v) => {
      const r = isObject(t.container.resources) ? t.container.resources : {};
      const k = isObject(r[kind]) ? r[kind] : {};
      t.container.resources = { ...r, [kind]: { ...k, [name]: v } };
    },
  };
}

function setEnv(container: Json, name: string, value: string): void {
  const env = Array.isArray(container.env) ? [...(container.env as Json[])] : [];
  const i = env.findIndex((e) => e.name === name);
  if (i >= 0) env[i] = { name, value };
  else env.push({ name, value });
  container.env = env;
}

function optValue(v: unknown): "in" | "out" | undefined {
  if (typeof v !== "string") return undefined;
  const s = v.trim().toLowerCase();
  if (s === "enabled" || s === "true") return "in";
  if (s === "disabled" || s === "false") return "out";
  return undefined;
}

function stringMap(v: unknown): Record<string, unknown> {
  return isObject(v) ? v : {};
}

/** True when the pod already runs a container named like the sidecar. */
export function isInjected(pod: Json): boolean {
  const spec = stringMap(pod.spec);
  const all = [spec.initContainers, spec.containers].flatMap((l) => (Array.isArray(l) ? l : []));
  return all.some((c) => isObject(c) && c.name === SIDECAR_NAME);
}

/** Decides whether `pod` gets the sidecar in `scope`. */
export function decideInjection(pod: Json, scope: InjectScope): InjectDecision {
  const meta = stringMap(pod.metadata);
  const votes = [
    optValue(stringMap(meta.labels)[INJECT_KEY]),
    optValue(stringMap(meta.annotations)[INJECT_KEY]),
  ];
  if (votes.includes("out")) return { inject: false, reason: "opted-out" };
  if (scope === "pod" && !votes.includes("in")) return { inject: false, reason: "not-opted-in" };
  if (isInjected(pod)) return { inject: false, reason: "already-injected" };
  // Host-network pods share the node's ports: a second one on the node would
  // find the admin port taken. They must add the sidecar by hand, on purpose.
  if (stringMap(pod.spec).hostNetwork === true) return { inject: false, reason: "host-network" };
  return { inject: true };
}

/**
 * The template with the pod's override annotations applied. Throws
 * InjectError for an unknown `tollgate.dev/` annotation (a typo would be
 * silently ignored otherwise) or a bad value.
 */
export function applyOverrides(template: SidecarTemplate, pod: Json): SidecarTemplate {
  const t: SidecarTemplate = structuredClone(template);
  const annotations = stringMap(stringMap(pod.metadata).annotations);
  for (const [key, raw] of Object.entries(annotations)) {
    if (!key.startsWith("tollgate.dev/") || key === INJECT_KEY || key === STATUS_ANNOTATION) {
      continue;
    }
    const o = OVERRIDE_ANNOTATIONS[key];
    if (!o) {
      throw new InjectError(
        `unknown annotation ${key}; known: ${[INJECT_KEY, ...Object.keys(OVERRIDE_ANNOTATIONS)].join(", ")}`,
      );
    }
    const value = typeof raw === "string" ? raw.trim() : "";
    if (!o.check(value)) {
      throw new InjectError(`annotation ${key}: ${JSON.stringify(raw)} is not ${o.expect}`);
    }
    o.apply(t, value);
  }
  return t;
}

/** Escapes one JSON Pointer segment (RFC 6901). */
export function pointerSegment(s: string): string {
  return s.replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * The JSON Patch that injects `template` into `pod` (call only when
 * decideInjection said so). The sidecar goes first among the init containers,
 * so it is up before the pod's own init containers and its containers run;
 * volumes the pod already defines under the same name are left as they are.
 */
export function buildPodPatch(pod: Json, template: SidecarTemplate): PatchOp[] {
  const spec = pod.spec;
  if (!isObject(spec) || !Array.isArray(spec.containers)) {
    throw new InjectError("the pod has no spec.containers");
  }
  const t = applyOverrides(template, pod);
  const ops: PatchOp[] = [];
  if (Array.isArray(spec.initContainers) && spec.initContainers.length > 0) {
    ops.push({ op: "add", path: "/spec/initContainers/0", value: t.container });
  } else {
    ops.push({ op: "add", path: "/spec/initContainers", value: [t.container] });
  }
  const existing = new Set(
    (Array.isArray(spec.volumes) ? spec.volumes : []).map((v) =>
      isObject(v) ? v.name : undefined,
    ),
  );
  const volumes = t.volumes.filter((v) => !existing.has(v.name));
  if (!Array.isArray(spec.volumes)) {
    if (volumes.length > 0) ops.push({ op: "add", path: "/spec/volumes", value: volumes });
  } else {
    for (const v of volumes) ops.push({ op: "add", path: "/spec/volumes/-", value: v });
  }
  const meta = stringMap(pod.metadata);
  if (!isObject(meta.annotations)) {
    if (!isObject(pod.metadata)) ops.push({ op: "add", path: "/metadata", value: {} });
    ops.push({
      op: "add",
      path: "/metadata/annotations",
      value: { [STATUS_ANNOTATION]: "injected" },
    });
  } else {
    ops.push({
      op: "add",
      path: `/metadata/annotations/${pointerSegment(STATUS_ANNOTATION)}`,
      value: "injected",
    });
  }
  return ops;
}
