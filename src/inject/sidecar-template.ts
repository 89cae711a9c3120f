/**
 * The sidecar the injector adds: a container plus the volumes it mounts. The
 * Helm chart renders it with the same named template users include by hand
 * (`tollgate.sidecar`), writes it as JSON into a ConfigMap and points
 * `tollgate inject --sidecar FILE` at it, so an injected sidecar and a
 * hand-written one are identical. The built-in default mirrors the chart's
 * defaults for running the injector without the chart (and for tests).
 */
import { readFileSync } from "node:fs";

/** A Kubernetes object as plain JSON (the injector only reads and copies it). */
export type Json = Record<string, unknown>;

/** The name of the injected container; its presence marks a pod as injected. */
export const SIDECAR_NAME = "tollgate";
/** Volume holding the policy ConfigMap (its `configMap.name` is overridable per pod). */
export const POLICY_VOLUME = "tollgate-policy";
/** Volume holding the pepper and management token Secret (its `secret.secretName` is overridable per pod). */
export const SECRETS_VOLUME = "tollgate-secrets";

/** What gets injected. */
export interface SidecarTemplate {
  /** The container, injected as an init container with `restartPolicy: Always`. */
  container: Json;
  /** Volumes the container mounts; added to the pod unless a volume of that name exists. */
  volumes: Json[];
}

/** Thrown when a sidecar template file is unusable; the message says why. */
export class SidecarTemplateError extends Error {
  override name = "SidecarTemplateError";
}

const SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};

/**
 * The built-in sidecar, equal to the chart's defaults: RPC on loopback only,
 * the admin port (health, readiness, metrics — no data, no management) on the
 * pod IP so the kubelet can probe it, and a startup probe so the application's
 * containers start only once Tollgate is ready.
 */
export function defaultSidecarTemplate(image = "ghcr.io/tollgate/tollgate:0.1.0"): SidecarTemplate {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: "tollgate-admin" },
    periodSeconds,
    timeoutSeconds: 1,
    failureThreshold,
  });
  return {
    container: {
      name: SIDECAR_NAME,
      image,
      imagePullPolicy: "IfNotPresent",
      // The image has no ENTRYPOINT: `args` alone would replace its whole CMD.
      command: ["node", "/app/dist/cli/main.js"],
      args: ["serve"],
      restartPolicy: "Always",
      ports: [{ name: "tollgate-admin", containerPort: 9464, protocol: "TCP" }],
      env: [
        { name: "TOLLGATE_ADDR", value: "127.0.0.1:50051" },
        { name: "TOLLGATE_HTTP_ADDR", value: "127.0.0.1:8080" },
        { name: "TOLLGATE_ADMIN_ADDR", value: "0.0.0.0:9464" },
        { name: "TOLLGATE_POLICY_FILE", value: "/etc/tollgate/policy/policy.yaml" },
        { name: "TOLLGATE_PEPPER_FILE", value: "/etc/tollgate/secrets/pepper" },
        { name: "TOLLGATE_MANAGEMENT_TOKEN_FILE", value: "/etc/tollgate/secrets/management-token" },
      ],
      resources: {
        requests: { cpu: "100m", memory: "128Mi" },
        limits: { cpu: "1", memory: "256Mi" },
      },
      startupProbe: probe("/readyz", 1, 30),
      livenessProbe: probe("/healthz", 10, 3),
      readinessProbe: probe("/readyz", 5, 2),
      securityContext: SECURITY_CONTEXT,
      volumeMounts: [
        { name: POLICY_VOLUME, mountPath: "/etc/tollgate/policy", readOnly: true },
        { name: SECRETS_VOLUME, mountPath: "/etc/tollgate/secrets", readOnly: true },
      ],
    },
    volumes: [
      { name: POLICY_VOLUME, configMap: { name: "tollgate-policy" } },
      // 0444: a pod without fsGroup leaves the files root-owned; uid 65532 reads
      // them as "other". Only the sidecar mounts the volume.
      { name: SECRETS_VOLUME, secret: { secretName: "tollgate", defaultMode: 0o444 } },
    ],
  };
}

/** Checks a parsed template; throws SidecarTemplateError naming the first problem. */
export function validateSidecarTemplate(
  value: unknown,
  source = "sidecar template",
): SidecarTemplate {
  const fail = (why: string): never => {
    throw new SidecarTemplateError(`${source}: ${why}`);
  };
  if (!isObject(value)) return fail("must be a JSON object { container, volumes }");
  const { container, volumes } = value;
  if (!isObject(container)) return fail("container must be an object");
  if (container.name !== SIDECAR_NAME) return fail(`container.name must be "${SIDECAR_NAME}"`);
  if (typeof container.image !== "string" || container.image === "") {
    return fail("container.image must be a non-empty string");
  }
  if (!Array.isArray(volumes) || !volumes.every((v) => isObject(v) && typeof v.name === "string")) {
    return fail("volumes must be an array of objects with a name");
  }
  const mounts = Array.isArray(container.volumeMounts) ? container.volumeMounts : [];
  const names = new Set(volumes.map((v) => (v as Json).name));
  for (const m of mounts) {
    if (!isObject(m) || !names.has(m.name)) {
      return fail(`volumeMount ${JSON.stringify(isObject(m) ? m.name : m)} has no volume`);
    }
  }
  // Native sidecar: whatever the file says, the container restarts with the pod.
  return { container: { ...container, restartPolicy: "Always" }, volumes: volumes as Json[] };
}

/** Reads and validates a template file (JSON, as the chart writes it). */
export function loadSidecarTemplate(path: string): SidecarTemplate {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new SidecarTemplateError(
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SidecarTemplateError(`${path}: not JSON (${(err as Error).message})`);
  }
  return validateSidecarTemplate(parsed, path);
}

/** True for a non-null, non-array object. */
export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
