/**
 * Renders helm/tollgate with `helm template` and validates every object
 * offline against the Kubernetes OpenAPI schemas (kubernetes-models, plus the
 * cert-manager and Prometheus Operator CRD models). An object of a kind with
 * no model fails: nothing rendered goes unchecked.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Certificate, Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1";
import {
  PrometheusRule,
  ServiceMonitor,
} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { MutatingWebhookConfiguration } from "kubernetes-models/admissionregistration.k8s.io/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { helmBinary } from "./helm-binary.js";

const run = promisify(execFile);

/** The chart directory. */
export const CHART = fileURLToPath(new URL("../../helm/tollgate", import.meta.url));
/** Namespace every test renders into. */
export const NAMESPACE = "tollgate-system";

/** A rendered object (navigated structurally; shapes are asserted by the tests). */
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked structurally
export type K8s = Record<string, any>;

type Model = new (data: never) => { validate(): void };
const MODELS: Record<string, Model> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration": MutatingWebhookConfiguration,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "cert-manager.io/v1/Certificate": Certificate,
  "cert-manager.io/v1/Issuer": Issuer,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

/** Throws naming the object and every violation when `o` is not valid for its kind. */
export function validateObject(o: K8s): void {
  const id = `${o.apiVersion}/${o.kind}`;
  const M = MODELS[id];
  if (!M)
    throw new Error(
      `no schema for ${id} (${o.metadata?.name}): add its model to test/helm/render.ts`,
    );
  try {
    new M(o as never).validate();
  } catch (err) {
    throw new Error(`${id} ${o.metadata?.name}: ${(err as Error).message}`);
  }
}

/** Runs helm with `args`; resolves to stdout, rejects with helm's stderr. */
export async function helm(args: string[]): Promise<string> {
  try {
    const { stdout } = await run(helmBinary(), args, { maxBuffer: 32 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    throw new Error(`helm ${args.join(" ")}: ${(err as { stderr?: string }).stderr ?? err}`);
  }
}

/** `--set`-style values → helm arguments (`--set-json` keeps types exact). */
function valueArgs(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ["--set-json", `${k}=${JSON.stringify(v)}`]);
}

/**
 * Renders the chart with `values` (dotted paths → JSON values), validates
 * every object, and returns them (NOTES.txt excluded).
 */
export async function render(values: Record<string, unknown> = {}): Promise<K8s[]> {
  const out = await helm(["template", "t", CHART, "--namespace", NAMESPACE, ...valueArgs(values)]);
  const docs = parseAllDocuments(out)
    .map((d) => d.toJS() as K8s | null)
    .filter((d): d is K8s => d !== null && typeof d === "object");
  for (const d of docs) validateObject(d);
  return docs;
}

/** `helm lint --strict` with `values`; resolves to helm's output. */
export function lint(values: Record<string, unknown> = {}): Promise<string> {
  return helm(["lint", "--strict", CHART, "--namespace", NAMESPACE, ...valueArgs(values)]);
}

/** The one object of `kind` (optionally the one whose name ends with `suffix`). */
export function one(docs: K8s[], kind: string, suffix = ""): K8s {
  const found = docs.filter((d) => d.kind === kind && String(d.metadata.name).endsWith(suffix));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${suffix && ` *${suffix}`}, found ${found.length}`);
  }
  return found[0] as K8s;
}

/** Every pod template of the rendered workloads. */
export function podSpecs(docs: K8s[]): { name: string; spec: K8s; labels: K8s }[] {
  return docs
    .filter((d) => d.kind === "Deployment")
    .map((d) => ({
      name: d.metadata.name,
      spec: d.spec.template.spec,
      labels: d.spec.template.metadata.labels,
    }));
}

/** The env of a container as name → value (or valueFrom). */
export function envOf(container: K8s): Record<string, unknown> {
  return Object.fromEntries(
    (container.env ?? []).map((e: K8s) => [e.name, e.value ?? e.valueFrom]),
  );
}

/** The named value sets CI renders: each must lint, render and validate. */
export const VALUE_SETS: Record<string, Record<string, unknown>> = {
  defaults: {},
  "redis standalone with password and TLS": {
    "redis.url": "redis://redis-master.redis:6379/0",
    "redis.password.existingSecret": "redis-auth",
    "redis.tls.enabled": true,
    "redis.tls.caSecret": "redis-ca",
  },
  "redis cluster": {
    "redis.mode": "cluster",
    "redis.url": "redis://redis-cluster.redis:6379",
    "redis.cluster.nodes": ["redis-cluster-1.redis:6379", "redis-cluster-2.redis:6379"],
    "redis.password.existingSecret": "redis-auth",
  },
  "redis sentinel": {
    "redis.mode": "sentinel",
    "redis.sentinel.addresses": ["sentinel-0.redis:26379", "sentinel-1.redis:26379"],
    "redis.sentinel.masterName": "primary",
    "redis.sentinel.password.existingSecret": "sentinel-auth",
    "redis.password.existingSecret": "redis-auth",
  },
  "existing secrets": {
    "secrets.existingSecret": "tollgate-managed",
    "policy.create": false,
    "policy.existingConfigMap": "my-policy",
  },
  "cert-manager": { "injector.certManager.enabled": true },
  "cert-manager with an issuer": {
    "injector.certManager.enabled": true,
    "injector.certManager.issuerRef": {
      name: "cluster-ca",
      kind: "ClusterIssuer",
      group: "cert-manager.io",
    },
  },
  "injection off": { "injector.enabled": false },
  "demo on": { "demo.enabled": true, "serviceMonitor.enabled": true },
  "grpc probes": { "sidecar.probes.type": "grpc" },
  "monitoring on": {
    "serviceMonitor.enabled": true,
    "prometheusRule.enabled": true,
    "grafanaDashboard.enabled": true,
  },
};
