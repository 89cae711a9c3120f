/**
 * The contract between the Helm chart and `tollgate inject`: the chart's
 * rendered Deployment, Secret, ConfigMap and MutatingWebhookConfiguration are
 * fed to the real injector process — its rendered arguments, the sidecar JSON
 * the chart writes, the certificate the chart generates — and an
 * AdmissionReview is sent to the path the API server would call, verified
 * against the webhook's caBundle for the Service's DNS name.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { reviewAdmission } from "../../src/inject/admission-review.js";
import { scopeOf } from "../../src/inject/inject-server.js";
import { validateSidecarTemplate } from "../../src/inject/sidecar-template.js";
import { helmBinary } from "../helm/helm-binary.js";
import { CLI } from "../helpers/tollgate-process.js";
import { applyAndValidate, loadReview, patchOf, podOf, responseOf, sidecarOf } from "./support.js";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked structurally; shapes are asserted, not typed
type Json = Record<string, any>;
const CHART = fileURLToPath(new URL("../../helm/tollgate", import.meta.url));
const NAMESPACE = "tollgate-system";
const dir = mkdtempSync(join(tmpdir(), "tollgate-chart-contract-"));
let docs: Json[] = [];
let child: ChildProcess | undefined;

function find(kind: string, pred: (d: Json) => boolean = () => true): Json {
  const d = docs.find((x) => x.kind === kind && pred(x));
  if (!d) throw new Error(`the chart rendered no ${kind}`);
  return d;
}

beforeAll(() => {
  const out = execFileSync(
    helmBinary(),
    ["template", "contract", CHART, "--namespace", NAMESPACE, "--set", "injector.enabled=true"],
    { encoding: "utf8", maxBuffer: 32 * 1024 * 1024 },
  );
  docs = parseAllDocuments(out)
    .map((d) => d.toJS() as Json)
    .filter((d) => d !== null && typeof d === "object");
}, 180_000);

afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** The injector Deployment's container and the volumes its mounts come from. */
function injectorParts() {
  const dep = find("Deployment", (d) =>
    d.spec.template.spec.containers.some((c: Json) => (c.args ?? []).includes("inject")),
  );
  const container = dep.spec.template.spec.containers.find((c: Json) => c.args.includes("inject"));
  const volumes: Json[] = dep.spec.template.spec.volumes;
  return { dep, container, volumes };
}

/** Where a file the injector reads (an argument) comes from: volume source + key. */
function sourceOf(file: string) {
  const { container, volumes } = injectorParts();
  const mount = (container.volumeMounts as Json[]).find((m) => file.startsWith(`${m.mountPath}/`));
  if (!mount) throw new Error(`${file} is on no mounted volume`);
  const volume = volumes.find((v) => v.name === mount.name) as Json;
  return { volume, key: file.slice(mount.mountPath.length + 1) };
}

function argValue(args: string[], flag: string): string {
  const a = args.find((x) => x.startsWith(`${flag}=`));
  if (a) return a.slice(flag.length + 1);
  const i = args.indexOf(flag);
  if (i < 0 || i + 1 >= args.length) throw new Error(`injector has no ${flag}`);
  return args[i + 1] as string;
}

/** The content of a file the injector reads, taken from the rendered ConfigMap or Secret. */
function renderedFile(file: string): string {
  const { volume, key } = sourceOf(file);
  if (volume.configMap) {
    return find("ConfigMap", (c) => c.metadata.name === volume.configMap.name).data[key];
  }
  if (volume.secret) {
    const s = find("Secret", (c) => c.metadata.name === volume.secret.secretName);
    return s.data?.[key] !== undefined
      ? Buffer.from(s.data[key], "base64").toString("utf8")
      : s.stringData[key];
  }
  throw new Error(`volume ${volume.name} is neither a ConfigMap nor a Secret`);
}

describe("the chart and the injector agree", () => {
  it("the sidecar JSON the chart writes is a valid template whose injection yields a valid Pod", () => {
    const { container } = injectorParts();
    const template = validateSidecarTemplate(
      JSON.parse(renderedFile(argValue(container.args, "--sidecar"))),
    );
    const review = loadReview("review-deployment-pod");
    const r = reviewAdmission(review, { template, scope: "namespace" });
    const patch = patchOf(responseOf(r.body));
    const pod = applyAndValidate(podOf(review), patch ?? []);
    const c = sidecarOf(pod);
    expect(c.restartPolicy).toBe("Always");
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) expect(c[p]).toBeDefined();
    // Every mount of the injected sidecar has its volume in the patched pod.
    const names = new Set((pod.spec as Json).volumes.map((v: Json) => v.name));
    for (const m of c.volumeMounts as Json[]) expect(names).toContain(m.name);
  });

  it("every webhook path is one the injector serves, as the API server sends it", () => {
    const config = find("MutatingWebhookConfiguration");
    const scopes = new Set<string>();
    for (const w of config.webhooks as Json[]) {
      const svc = w.clientConfig.service;
      // The API server puts the configured path into the URL's path: a '?' is escaped.
      const url = new URL(`https://${svc.name}.${svc.namespace}.svc`);
      url.pathname = svc.path;
      const scope = scopeOf(new URL(url.href));
      expect(scope, `${w.name} → ${url.href}`).toMatch(/^(namespace|pod)$/);
      scopes.add(scope as string);
      expect(w.admissionReviewVersions).toEqual(["v1"]);
      expect(w.sideEffects).toBe("None");
    }
    expect([...scopes].sort()).toEqual(["namespace", "pod"]);
  });

  it("the injector process started with the rendered arguments, certificate and sidecar answers the API server's call", async () => {
    const { container } = injectorParts();
    const args: string[] = container.args;
    // Files the container reads, materialised from the rendered objects.
    const remap = (file: string) => {
      const local = join(dir, file.replaceAll("/", "_"));
      writeFileSync(local, renderedFile(file));
      return local;
    };
    mkdirSync(dir, { recursive: true });
    const cert = remap(argValue(args, "--tls-cert"));
    const key = remap(argValue(args, "--tls-key"));
    const sidecar = remap(argValue(args, "--sidecar"));
    const addr = argValue(args, "--addr");
    const containerPort = Number(addr.slice(addr.lastIndexOf(":") + 1));
    expect(container.ports.map((p: Json) => p.containerPort)).toContain(containerPort);

    child = spawn(
      process.execPath,
      [
        CLI,
        "inject",
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--sidecar",
        sidecar,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout?.on("data", (b: Buffer) => {
      output += b.toString();
    });
    child.stderr?.on("data", (b: Buffer) => {
      output += b.toString();
    });
    let port = 0;
    const deadline = Date.now() + 15_000;
    while (port === 0) {
      const m = /"port":(\d+)[^\n]*"msg":"injector serving"/.exec(output);
      if (m) port = Number(m[1]);
      else if (child.exitCode !== null || Date.now() > deadline) throw new Error(output);
      else await new Promise((r) => setTimeout(r, 25));
    }

    const webhook = find("MutatingWebhookConfiguration").webhooks[0] as Json;
    const svc = webhook.clientConfig.service;
    const service = find("Service", (s) => s.metadata.name === svc.name);
    const target = service.spec.ports.find((p: Json) => p.port === (svc.port ?? 443)).targetPort;
    expect([containerPort, "https"]).toContain(target);
    const ca = webhook.clientConfig.caBundle
      ? Buffer.from(webhook.clientConfig.caBundle, "base64").toString("utf8")
      : undefined;
    expect(ca, "the chart's self-signed mode sets caBundle").toBeDefined();
    const url = new URL(`https://${svc.name}.${svc.namespace}.svc`);
    url.pathname = svc.path;

    const body = JSON.stringify(loadReview("review-deployment-pod"));
    const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: `${url.pathname}${url.search}`,
          // Verified as the API server does: the Service's DNS name against caBundle.
          servername: url.hostname,
          ca,
          headers: { "content-type": "application/json" },
          agent: false,
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(reply.status).toBe(200);
    expect(responseOf(JSON.parse(reply.text)).allowed).toBe(true);
  });
});
