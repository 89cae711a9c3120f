/**
 * `tollgate inject` as the API server meets it: the built CLI on a real
 * loopback port with a throwaway certificate, AdmissionReviews over HTTPS.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scopeOf } from "../../src/inject/inject-server.js";
import { defaultSidecarTemplate } from "../../src/inject/sidecar-template.js";
import { CLI } from "../helpers/tollgate-process.js";
import { applyAndValidate, loadReview, patchOf, podOf, responseOf, sidecarOf } from "./support.js";

const dir = mkdtempSync(join(tmpdir(), "tollgate-inject-"));
let child: ChildProcess;
let port = 0;
let output = "";

function makeCert(cn: string): string {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      join(dir, "tls.key"),
      "-out",
      join(dir, "tls.crt"),
      "-days",
      "1",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return execFileSync("openssl", ["x509", "-in", join(dir, "tls.crt")], { encoding: "utf8" });
}

interface Reply {
  status: number;
  type: string;
  text: string;
  peerCn: string;
}

function call(
  method: string,
  path: string,
  body?: string,
  contentType = "application/json",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        // The certificate is replaced mid-suite (renewal test): the served one is
        // identified by its CN instead of by chain verification.
        rejectUnauthorized: false,
        headers: body === undefined ? {} : { "content-type": contentType },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const peer = (res.socket as import("node:tls").TLSSocket).getPeerCertificate?.();
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers["content-type"] ?? ""),
            text: Buffer.concat(chunks).toString("utf8"),
            peerCn: String(peer?.subject?.CN ?? ""),
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

beforeAll(async () => {
  makeCert("injector-one");
  const sidecar = defaultSidecarTemplate("registry.example.com/tollgate:9.9.9");
  writeFileSync(join(dir, "sidecar.json"), JSON.stringify(sidecar));
  child = spawn(
    process.execPath,
    [
      CLI,
      "inject",
      "--addr",
      "127.0.0.1:0",
      "--tls-cert",
      join(dir, "tls.crt"),
      "--tls-key",
      join(dir, "tls.key"),
      "--sidecar",
      join(dir, "sidecar.json"),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.on("data", (b: Buffer) => {
    output += b.toString();
  });
  child.stderr?.on("data", (b: Buffer) => {
    output += b.toString();
  });
  const deadline = Date.now() + 15_000;
  while (port === 0) {
    const m = /"port":(\d+)[^\n]*"msg":"injector serving"/.exec(output);
    if (m) port = Number(m[1]);
    else if (child.exitCode !== null) throw new Error(`inject exited ${child.exitCode}: ${output}`);
    else if (Date.now() > deadline) throw new Error(`inject did not start: ${output}`);
    else await new Promise((r) => setTimeout(r, 25));
  }
});

afterAll(() => {
  if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("tollgate inject over HTTPS", () => {
  it("answers a Pod review with a patch that injects the sidecar from --sidecar", async () => {
    const review = loadReview("review-deployment-pod");
    const r = await call("POST", "/inject/namespace", JSON.stringify(review));
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    const patch = patchOf(responseOf(JSON.parse(r.text)));
    expect(patch).toBeDefined();
    const pod = applyAndValidate(podOf(review), patch ?? []);
    expect(sidecarOf(pod).image).toBe("registry.example.com/tollgate:9.9.9");
    // The log line travels through a pipe: it may arrive after the response.
    const deadline = Date.now() + 5_000;
    while (!/"outcome":"injected"[^\n]*"namespace":"shop"/.test(output) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(output).toMatch(/"outcome":"injected"[^\n]*"namespace":"shop"/);
  });

  it.each(["/inject/namespace", "/inject?scope=namespace", "/inject%3Fscope=namespace"])(
    "serves the namespace scope at %s",
    async (path) => {
      const review = loadReview("review-deployment-pod");
      const r = await call("POST", path, JSON.stringify(review));
      expect(patchOf(responseOf(JSON.parse(r.text)))).toBeDefined();
    },
  );

  it("answers without a patch for a pod that did not opt in (pod scope)", async () => {
    const review = loadReview("review-deployment-pod");
    const r = await call("POST", "/inject?scope=pod", JSON.stringify(review));
    expect(responseOf(JSON.parse(r.text))).toEqual({
      uid: "705ab4f5-6393-11e8-b7cc-42010a800002",
      allowed: true,
    });
  });

  it("rejects malformed requests with a clear 4xx", async () => {
    expect(await call("POST", "/inject?scope=pod", "{not json")).toMatchObject({
      status: 400,
      text: "malformed AdmissionReview: not JSON\n",
    });
    const v1beta1 = JSON.stringify({
      apiVersion: "admission.k8s.io/v1beta1",
      kind: "AdmissionReview",
    });
    expect((await call("POST", "/inject?scope=pod", v1beta1)).text).toContain(
      "admission.k8s.io/v1",
    );
    expect((await call("POST", "/inject?scope=everything", "{}")).status).toBe(400);
    expect((await call("POST", "/inject?scope=pod", "{}", "text/plain")).status).toBe(415);
    expect((await call("GET", "/inject?scope=pod")).status).toBe(405);
    expect((await call("GET", "/elsewhere")).status).toBe(404);
  });

  it("refuses a body over the size bound", async () => {
    const big = JSON.stringify({ pad: "x".repeat(5 * 1024 * 1024) });
    const r = await call("POST", "/inject?scope=pod", big).catch((e: Error) => e);
    // The server answers 413 and closes; the client may see the reset first.
    if (r instanceof Error) expect(r.message).toMatch(/EPIPE|ECONNRESET/);
    else expect(r.status).toBe(413);
  });

  it("serves health for the kubelet", async () => {
    expect(await call("GET", "/healthz")).toMatchObject({ status: 200, text: "ok\n" });
    expect(await call("GET", "/readyz")).toMatchObject({ status: 200, text: "ok\n" });
  });

  it("picks up a renewed certificate without a restart", async () => {
    expect((await call("GET", "/healthz")).peerCn).toBe("injector-one");
    makeCert("injector-two");
    const deadline = Date.now() + 10_000;
    let cn = "";
    while (Date.now() < deadline && cn !== "injector-two") {
      await new Promise((r) => setTimeout(r, 100));
      cn = (await call("GET", "/healthz")).peerCn;
    }
    expect(cn).toBe("injector-two");
  });

  it("exits 0 on SIGTERM", async () => {
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

describe("webhook paths", () => {
  const at = (p: string) => scopeOf(new URL(p, "https://injector"));
  it("reads the scope from the path, the query or the query an API server escaped into the path", () => {
    expect(at("/inject/pod")).toBe("pod");
    expect(at("/inject/namespace/")).toBe("namespace");
    expect(at("/inject?scope=pod")).toBe("pod");
    expect(at("/inject%3Fscope=namespace")).toBe("namespace");
    expect(at("/inject%3fscope%3Dpod")).toBe("pod");
  });

  it("tells a bad scope (400) from another path (404)", () => {
    expect(at("/inject")).toBeNull();
    expect(at("/inject/cluster")).toBeNull();
    expect(at("/inject?scope=all")).toBeNull();
    expect(at("/injector")).toBeUndefined();
    expect(at("/inject/pod/extra")).toBeUndefined();
  });
});

describe("tollgate inject command line", () => {
  it("exits 2 naming the missing certificate flags", () => {
    let err: { status?: number; stderr?: string } = {};
    try {
      execFileSync(process.execPath, [CLI, "inject"], { encoding: "utf8", stdio: "pipe" });
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.status).toBe(2);
    expect(err.stderr).toContain("--tls-cert and --tls-key are required");
  });

  it("exits 2 for an unusable --sidecar file", () => {
    const bad = join(dir, "bad-sidecar.json");
    writeFileSync(bad, JSON.stringify({ container: { name: "other", image: "x" }, volumes: [] }));
    let err: { status?: number; stderr?: string } = {};
    try {
      execFileSync(
        process.execPath,
        [CLI, "inject", "--tls-cert", "a", "--tls-key", "b", "--sidecar", bad],
        { encoding: "utf8", stdio: "pipe" },
      );
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.status).toBe(2);
    expect(err.stderr).toContain('container.name must be "tollgate"');
  });
});
