/**
 * AdmissionReview v1 in, AdmissionReview v1 out: the webhook's whole contract,
 * as a pure function (the HTTPS server only moves bytes).
 *
 * - A body that is not an `admission.k8s.io/v1` AdmissionReview with a request
 *   uid cannot be answered in kind: HTTP 400 with a plain-text reason.
 * - A review of anything but a Pod CREATE is allowed untouched (the chart only
 *   registers Pod CREATE; this guards against a hand-edited configuration).
 * - A pod to inject gets `patchType: JSONPatch`; an untouched pod gets no patch;
 *   a pod the injector must refuse (bad override annotation) gets
 *   `allowed: false` with a 400/422 status naming the problem.
 */
import { buildPodPatch, decideInjection, InjectError, type InjectScope } from "./pod-patch.js";
import { isObject, type Json, type SidecarTemplate } from "./sidecar-template.js";

/** The answer: an HTTP status and a JSON AdmissionReview, or a plain-text rejection. */
export interface ReviewResult {
  status: number;
  body: Json | string;
  /** For the log: what was decided. */
  outcome: "injected" | "skipped" | "denied" | "malformed";
  /** For the log: why it was skipped or denied. */
  detail?: string;
}

/** Options of {@link reviewAdmission}. */
export interface ReviewOptions {
  template: SidecarTemplate;
  scope: InjectScope;
}

function answer(uid: string, response: Json): Json {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    response: { uid, ...response },
  };
}

/** Answers one AdmissionReview (already parsed from JSON). */
export function reviewAdmission(body: unknown, o: ReviewOptions): ReviewResult {
  const malformed = (why: string): ReviewResult => ({
    status: 400,
    body: `malformed AdmissionReview: ${why}\n`,
    outcome: "malformed",
    detail: why,
  });
  if (!isObject(body)) return malformed("the body must be a JSON object");
  if (body.apiVersion !== "admission.k8s.io/v1" || body.kind !== "AdmissionReview") {
    return malformed('expected apiVersion "admission.k8s.io/v1" and kind "AdmissionReview"');
  }
  const req = body.request;
  if (!isObject(req)) return malformed("request is missing");
  const uid = req.uid;
  if (typeof uid !== "string" || uid === "" || uid.length > 128) {
    return malformed("request.uid must be a non-empty string");
  }
  const kind = isObject(req.kind) ? req.kind : {};
  if (
    kind.group !== "" ||
    kind.version !== "v1" ||
    kind.kind !== "Pod" ||
    req.operation !== "CREATE"
  ) {
    return {
      status: 200,
      body: answer(uid, { allowed: true }),
      outcome: "skipped",
      detail: "not a Pod CREATE",
    };
  }
  const deny = (code: number, message: string): ReviewResult => ({
    status: 200,
    body: answer(uid, {
      allowed: false,
      status: { code, message: `tollgate injector: ${message}` },
    }),
    outcome: "denied",
    detail: message,
  });
  const pod = req.object;
  if (!isObject(pod) || !isObject(pod.spec) || !Array.isArray(pod.spec.containers)) {
    return deny(400, "request.object must be a Pod with spec.containers");
  }
  const decision = decideInjection(pod, o.scope);
  if (!decision.inject) {
    return {
      status: 200,
      body: answer(uid, { allowed: true }),
      outcome: "skipped",
      detail: decision.reason,
    };
  }
  try {
    const patch = buildPodPatch(pod, o.template);
    return {
      status: 200,
      body: answer(uid, {
        allowed: true,
        patchType: "JSONPatch",
        patch: Buffer.from(JSON.stringify(patch)).toString("base64"),
      }),
      outcome: "injected",
    };
  } catch (err) {
    if (err instanceof InjectError) return deny(422, err.message);
    throw err;
  }
}
