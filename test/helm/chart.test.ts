/**
 * The chart as a whole: lint, render and schema-validate every value set CI
 * cares about, hardened defaults on every container of every pod, values.yaml
 * documented field by field, values.schema.json refusing unsafe values.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isMap, isScalar, parseDocument, type YAMLMap } from "yaml";
import { parsePolicy } from "../../src/policy/policy.js";
import { CHART, type K8s, lint, one, podSpecs, render, VALUE_SETS } from "./render.js";

const file = (p: string) => readFileSync(`${CHART}/${p}`, "utf8");

/** Every container of a pod spec, init containers included. */
function containers(spec: K8s): K8s[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/** Asserts the hardened contract on one container of a pod. */
function expectHardened(where: string, pod: K8s, c: K8s): void {
  const sc = c.securityContext ?? {};
  const psc = pod.securityContext ?? {};
  const msg = `${where} / ${c.name}`;
  expect(sc.runAsNonRoot ?? psc.runAsNonRoot, msg).toBe(true);
  expect(sc.runAsUser ?? psc.runAsUser, msg).toBe(65532);
  expect(sc.readOnlyRootFilesystem, msg).toBe(true);
  expect(sc.allowPrivilegeEscalation, msg).toBe(false);
  expect(sc.capabilities?.drop, msg).toContain("ALL");
  expect(sc.capabilities?.add ?? [], msg).toEqual([]);
  expect((sc.seccompProfile ?? psc.seccompProfile)?.type, msg).toBe("RuntimeDefault");
  expect(sc.privileged ?? false, msg).toBe(false);
  expect(c.resources?.requests?.cpu, msg).toBeDefined();
  expect(c.resources?.requests?.memory, msg).toBeDefined();
  expect(c.resources?.limits?.memory, msg).toBeDefined();
  expect(c.resources?.limits?.cpu, msg).toBeDefined();
  expect(c.image, msg).not.toMatch(/:latest$/);
}

describe("every value set", () => {
  it.each(Object.keys(VALUE_SETS))("%s: passes helm lint --strict", async (name) => {
    const out = await lint(VALUE_SETS[name]);
    expect(out).toContain("0 chart(s) failed");
  });

  it.each(Object.keys(VALUE_SETS))(
    "%s: renders objects valid against the Kubernetes schemas, every container hardened",
    async (name) => {
      const docs = await render(VALUE_SETS[name]);
      expect(docs.length).toBeGreaterThanOrEqual(2);
      for (const { name: pod, spec } of podSpecs(docs)) {
        expect(spec.automountServiceAccountToken, pod).toBe(false);
        expect(spec.hostNetwork ?? false, pod).toBe(false);
        for (const c of containers(spec)) expectHardened(pod, spec, c);
      }
      // The sidecar the injector adds is hardened too.
      const cm = docs.find((d) => d.kind === "ConfigMap" && d.data?.["sidecar.json"]);
      if (cm) {
        const { container } = JSON.parse(cm.data["sidecar.json"]);
        expectHardened("injected sidecar", {}, container);
      }
      // No object carries a secret outside a Secret (sidecar.json, env values).
      const secret = docs.find((d) => d.kind === "Secret" && d.data?.pepper);
      if (secret) {
        const pepper = Buffer.from(secret.data.pepper, "base64").toString();
        const others = docs.filter((d) => d.kind !== "Secret");
        expect(JSON.stringify(others)).not.toContain(pepper);
      }
    },
  );
});

describe("the chart's files", () => {
  it("ships the repository's example policy, and it is a valid policy", () => {
    const text = file("files/policy.yaml");
    expect(text).toBe(readFileSync(new URL("../../examples/policy.yaml", import.meta.url), "utf8"));
    expect(() => parsePolicy(text, "files/policy.yaml")).not.toThrow();
  });

  it("ships the repository's example Envoy configuration for the demo", () => {
    expect(file("files/demo-envoy.yaml")).toBe(
      readFileSync(new URL("../../examples/envoy/envoy.yaml", import.meta.url), "utf8"),
    );
  });

  it("renders the default policy into the policy ConfigMap", async () => {
    const docs = await render();
    expect(one(docs, "ConfigMap", "-policy").data["policy.yaml"].trim()).toBe(
      file("files/policy.yaml").trim(),
    );
  });
});

describe("the chart and the image", () => {
  it("starts the CLI at the path the Dockerfile's runtime stage puts it, with node directly", async () => {
    const dockerfile = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    const workdir = /^WORKDIR\s+(\S+)/m.exec(runtime)?.[1];
    expect(runtime).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(runtime).not.toMatch(/^ENTRYPOINT/m);
    const docs = await render({ "demo.enabled": true });
    const commands = podSpecs(docs).flatMap(({ spec }) =>
      containers(spec)
        .filter((c) => String(c.image).includes("tollgate/tollgate"))
        .map((c) => c.command),
    );
    expect(commands.length).toBeGreaterThanOrEqual(2);
    for (const c of commands) expect(c).toEqual(["node", `${workdir}/dist/cli/main.js`]);
  });
});

describe("values.yaml", () => {
  it("documents every field with a `# --` comment (on the field or on an ancestor)", () => {
    const doc = parseDocument(file("values.yaml"));
    const undocumented: string[] = [];
    const walk = (map: YAMLMap, path: string) => {
      map.items.forEach((pair, i) => {
        const key = isScalar(pair.key) ? String(pair.key.value) : "?";
        // The parser hangs a map's first comment on the map itself.
        const comment = `${(isScalar(pair.key) ? pair.key.commentBefore : undefined) ?? ""}\n${i === 0 ? (map.commentBefore ?? "") : ""}`;
        const here = path ? `${path}.${key}` : key;
        const documented = /(^|\n)\s*--/.test(comment);
        if (documented) return;
        if (isMap(pair.value) && pair.value.items.length > 0) walk(pair.value, here);
        else undocumented.push(here);
      });
    };
    walk(doc.contents as YAMLMap, "");
    expect(undocumented).toEqual([]);
  });

  it("is the schema's whole vocabulary: an unknown key is refused", async () => {
    await expect(render({ replicaCount: 3 })).rejects.toThrow(
      /additional properties|replicaCount/i,
    );
    await expect(render({ "sidecar.resource": {} })).rejects.toThrow(/resource/);
  });

  it.each([
    ["sidecar.securityContext.readOnlyRootFilesystem", false],
    ["sidecar.securityContext.allowPrivilegeEscalation", true],
    ["sidecar.securityContext.runAsNonRoot", false],
    ["injector.securityContext.capabilities", { add: ["NET_ADMIN"], drop: ["ALL"] }],
    ["sidecar.resources.limits.memory", null],
    ["redis.url", "redis://user:secret@redis:6379"],
    ["redis.mode", "replicated"],
    ["sidecar.failMode", "sometimes"],
    ["injector.failurePolicy", "Retry"],
    ["secrets.pepper", "too-short"],
    ["image.digest", "sha256:123"],
  ])("refuses %s = %j", async (key, value) => {
    await expect(render({ [key]: value })).rejects.toThrow(/schema/i);
  });

  it("refuses sentinel mode without sentinels and an empty existing policy name", async () => {
    await expect(render({ "redis.mode": "sentinel" })).rejects.toThrow(/schema/i);
    await expect(render({ "policy.create": false })).rejects.toThrow(/schema/i);
  });
});
