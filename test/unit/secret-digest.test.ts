import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSecretDigester } from "../../src/keys/secret-digest.js";

const reference = (pepper: Buffer, secret: string) =>
  createHmac("sha256", pepper).update(secret, "utf8").digest("base64url");

describe("secret digest (HMAC-SHA256 from two one-shot hashes)", () => {
  it("equals createHmac for any pepper and secret, including long, non-ASCII and lone-surrogate ones", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 200 }),
        fc.oneof(
          fc.string({ maxLength: 80 }),
          fc.string({ unit: "binary", maxLength: 80 }),
          fc.string({ unit: fc.constantFrom("\ud800", "\udc00", "é", "😀", "a"), maxLength: 40 }),
          fc.string({ minLength: 1300, maxLength: 6000 }),
        ),
        (p, secret) => {
          const pepper = Buffer.from(p);
          expect(createSecretDigester(pepper)(secret)).toBe(reference(pepper, secret));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("gives the same answer on every call of one digester (the scratch buffer is reset)", () => {
    const pepper = Buffer.from("bench-pepper-not-a-secret-0123456789");
    const digest = createSecretDigester(pepper);
    const secrets = ["tg_live_" + "a".repeat(40), "x", "", "é".repeat(700), "b".repeat(5000), "x"];
    for (let round = 0; round < 3; round++)
      for (const s of secrets) expect(digest(s)).toBe(reference(pepper, s));
  });

  it("peppers of exactly one block, one byte over, and the 16-byte minimum", () => {
    for (const n of [16, 63, 64, 65, 128]) {
      const pepper = Buffer.alloc(n, 7);
      expect(createSecretDigester(pepper)("tg_live_abc")).toBe(reference(pepper, "tg_live_abc"));
    }
    expect(() => createSecretDigester(Buffer.alloc(15))).toThrow(
      "pepper must be at least 16 bytes",
    );
  });
});
