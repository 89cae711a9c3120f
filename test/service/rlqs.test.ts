/**
 * StreamRateLimitQuotas through the service harness (the handlers the main
 * port serves, over connect's in-memory transport, on the embedded store):
 * one action per reported bucket in order (duplicates included), and the
 * per-stream bucket bound.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  RateLimitQuotaResponse,
  RateLimitQuotaUsageReportsSchema,
} from "../../src/gen/envoy/service/rate_limit_quota/v3/rlqs_pb.js";
import { RLQS_BUCKETS_PER_STREAM_MAX } from "../../src/services/rlqs-service.js";
import { createServiceHarness, type ServiceHarness } from "../helpers/service-deps.js";

const POLICY = `
version: 1
default_tier: free
tiers:
  free: {}
rlqs:
  - domain: edge
    buckets:
      - match: { name: api, tenant: "*" }
        quota: { requests: 1000000, per: day }
        local_share: 0.001
`;

type Report = MessageInitShape<typeof RateLimitQuotaUsageReportsSchema>;

/** A stream driven one report at a time. */
function open(h: ServiceHarness) {
  const queue: Report[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  async function* requests(): AsyncGenerator<Report> {
    for (;;) {
      const next = queue.shift();
      if (next) yield next;
      else if (done) return;
      else await new Promise<void>((r) => (wake = r));
    }
  }
  const responses = h.rlqs.streamRateLimitQuotas(requests())[Symbol.asyncIterator]();
  return {
    async report(r: Report): Promise<RateLimitQuotaResponse> {
      queue.push(r);
      wake?.();
      const step = await responses.next();
      if (step.done) throw new Error("the stream ended");
      return step.value;
    },
    async end() {
      done = true;
      wake?.();
      await responses.return?.();
    },
  };
}

const usage = (tenant: string, allowed = 0) => ({
  bucketId: { bucket: { name: "api", tenant } },
  timeElapsed: { seconds: 1n },
  numRequestsAllowed: BigInt(allowed),
});

let h: ServiceHarness;
beforeEach(async () => {
  h = await createServiceHarness({ policyYaml: POLICY });
});
afterEach(() => h.close());

describe("StreamRateLimitQuotas", () => {
  it("answers one action per reported bucket, in order, duplicates included", async () => {
    const s = open(h);
    const r = await s.report({
      domain: "edge",
      bucketQuotaUsages: [
        usage("a"),
        { ...usage("x"), bucketId: { bucket: { other: "1" } } },
        usage("a"),
      ],
    });
    expect(r.bucketAction.map((a) => a.bucketAction.case)).toEqual([
      "quotaAssignmentAction",
      "abandonAction",
      "quotaAssignmentAction",
    ]);
    expect(r.bucketAction.map((a) => a.bucketId?.bucket)).toEqual([
      { name: "api", tenant: "a" },
      { other: "1" },
      { name: "api", tenant: "a" },
    ]);
    const a = r.bucketAction[0]?.bucketAction;
    const strategy =
      a?.case === "quotaAssignmentAction" ? a.value.rateLimitStrategy?.strategy : undefined;
    expect(strategy?.case === "tokenBucket" && strategy.value.maxTokens).toBe(1000);
    await s.end();
  });

  it(`holds units for at most ${RLQS_BUCKETS_PER_STREAM_MAX} bucket ids per stream`, async () => {
    const s = open(h);
    for (let i = 0; i < RLQS_BUCKETS_PER_STREAM_MAX / 1000; i++) {
      const r = await s.report({
        domain: "edge",
        bucketQuotaUsages: Array.from({ length: 1000 }, (_, j) => usage(`t${i * 1000 + j}`)),
      });
      expect(r.bucketAction).toHaveLength(1000);
    }
    // Known ones still answered; one more is refused.
    const again = await s.report({ domain: "edge", bucketQuotaUsages: [usage("t0", 1)] });
    expect(again.bucketAction[0]?.bucketAction.case).toBe("quotaAssignmentAction");
    const err = await s.report({ domain: "edge", bucketQuotaUsages: [usage("one-more")] }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
  }, 60_000);
});
