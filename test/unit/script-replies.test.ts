/**
 * The named decoders of the Lua scripts' flat replies: each field is read from
 * the position the script's header documents, whatever the number of new
 * blocks and limits before it.
 */
import { describe, expect, it } from "vitest";
import {
  decodeRateLimitReply,
  decodeRefundReply,
  decodeSpikeReply,
  decodeWindowReply,
  RATE_STATUS,
} from "../../src/store/script-replies.js";

describe("script replies", () => {
  it("rate-limit-n.lua: header, then new blocks, then one quadruple per limit", () => {
    const r = [RATE_STATUS.limited, 0, 0, 2, 1, 5000, 2, 10000, 1, 0, 30, 400, 0, 3, 0, 0];
    expect(decodeRateLimitReply(r, 2)).toEqual({
      status: "limited",
      blockMs: 0,
      blockedSubject: 0,
      newBlocks: [
        { subject: 1, durationMs: 5000 },
        { subject: 2, durationMs: 10000 },
      ],
      limits: [
        { exceeded: true, remaining: 0, resetMs: 30, retryMs: 400 },
        { exceeded: false, remaining: 3, resetMs: 0, retryMs: 0 },
      ],
    });
  });

  it("rate-limit-n.lua: a blocked reply names its subject and keeps the block's time left", () => {
    const r = decodeRateLimitReply([RATE_STATUS.blocked, 1234, 2, 0, 0, 0, 0, -1], 1);
    expect(r.status).toBe("blocked");
    expect(r.blockMs).toBe(1234);
    expect(r.blockedSubject).toBe(2);
    expect(r.limits).toEqual([{ exceeded: false, remaining: 0, resetMs: 0, retryMs: -1 }]);
  });

  it("refund-n.lua: a reset of -1 (a quota's key is gone) leaves resetMs out", () => {
    expect(decodeRefundReply([4, 100, 9, -1], 2)).toEqual([
      { remaining: 4, resetMs: 100 },
      { remaining: 9 },
    ]);
  });

  it("detection replies: count and fired, spike baseline scaled back from × 1000", () => {
    expect(decodeWindowReply([3, 1])).toEqual({ count: 3, fired: true });
    expect(decodeSpikeReply([12, 2500, 0])).toEqual({ current: 12, baseline: 2.5, fired: false });
  });
});
