/**
 * API key secrets: `tg_<env>_<24 random base62><6 base62 CRC32>`. A secret
 * that is not one Tollgate could have minted is refused by shape alone, so it
 * never costs a store lookup.
 */
import { describe, expect, it } from "vitest";
import {
  ENVIRONMENT_PATTERN,
  generateSecret,
  MAX_SECRET_LENGTH,
  parseSecret,
} from "../../src/keys/key-format.js";
import { BASE62 } from "../../src/util/base62.js";

/** Replaces the character at `i` by a different base62 character. */
function changeAt(s: string, i: number, shift = 1): string {
  const at = BASE62.indexOf(s[i] as string);
  const other = BASE62[(at + shift) % BASE62.length] as string;
  return s.slice(0, i) + other + s.slice(i + 1);
}

describe("generateSecret", () => {
  it("mints tg_<env>_ plus 30 base62 characters that parse back to the environment", () => {
    for (const env of ["live", "test", "a", "x".repeat(16), "eu1"]) {
      const s = generateSecret(env);
      expect(s).toMatch(new RegExp(`^tg_${env}_[0-9A-Za-z]{30}$`));
      expect(s.length).toBe(4 + env.length + 30);
      expect(parseSecret(s)).toEqual({ ok: true, environment: env });
    }
  });

  it("reaches exactly MAX_SECRET_LENGTH with the longest environment tag", () => {
    expect(generateSecret("z".repeat(16))).toHaveLength(MAX_SECRET_LENGTH);
    expect(MAX_SECRET_LENGTH).toBe(50);
  });

  it("never repeats a secret (142 random bits)", () => {
    const seen = new Set(Array.from({ length: 2000 }, () => generateSecret("live")));
    expect(seen.size).toBe(2000);
  });

  it("refuses an environment tag outside [a-z0-9]{1,16}", () => {
    for (const env of ["", "LIVE", "live_1", "li-ve", "x".repeat(17), "prød"]) {
      expect(ENVIRONMENT_PATTERN.test(env), env).toBe(false);
      expect(() => generateSecret(env), env).toThrow("invalid key environment tag");
    }
  });
});

describe("parseSecret", () => {
  const secret = generateSecret("live");

  it("refuses every one-character change, anywhere after the prefix (checksum)", () => {
    // Positions 8.. are the random part and the checksum; 3..6 the environment.
    for (let i = 3; i < secret.length; i++) {
      if (i === 7) continue; // the `_` separator: a change there breaks the shape instead
      for (const shift of [1, 30, 61]) {
        const changed = changeAt(secret, i, shift);
        expect(changed).not.toBe(secret);
        expect(parseSecret(changed), `position ${i}`).toEqual({ ok: false });
      }
    }
  });

  it("refuses two secrets' parts spliced together", () => {
    const other = generateSecret("live");
    expect(parseSecret(secret.slice(0, 20) + other.slice(20))).toEqual({ ok: false });
    expect(parseSecret(secret.slice(0, -6) + other.slice(-6))).toEqual({ ok: false });
  });

  it("refuses a wrong prefix", () => {
    for (const p of ["tk_", "TG_", "tg-", "gt_", "_tg_", ""]) {
      expect(parseSecret(p + secret.slice(3)), p).toEqual({ ok: false });
    }
    expect(parseSecret(secret.replace("tg_live_", "tg_"))).toEqual({ ok: false });
    expect(parseSecret(secret.replace("_live_", "__"))).toEqual({ ok: false });
  });

  it("refuses a wrong length", () => {
    expect(parseSecret(secret.slice(0, -1))).toEqual({ ok: false });
    expect(parseSecret(`${secret}0`)).toEqual({ ok: false });
    expect(parseSecret(secret.slice(0, 8))).toEqual({ ok: false });
    expect(parseSecret("")).toEqual({ ok: false });
  });

  it("refuses characters outside the alphabet", () => {
    for (const c of ["-", "_", "+", "/", "=", " ", "é", "\u0000", "０"]) {
      const bad = `${secret.slice(0, 15)}${c}${secret.slice(16)}`;
      expect(parseSecret(bad), JSON.stringify(c)).toEqual({ ok: false });
    }
    expect(parseSecret(` ${secret}`)).toEqual({ ok: false });
    expect(parseSecret(`${secret}\n`)).toEqual({ ok: false });
    expect(parseSecret(secret.replace("live", "LIVE"))).toEqual({ ok: false });
  });

  it("refuses anything longer than MAX_SECRET_LENGTH, quickly, whatever it holds", () => {
    expect(parseSecret(`tg_${"a".repeat(17)}_${secret.slice(-30)}`)).toEqual({ ok: false });
    const huge = `tg_live_${"A".repeat(5_000_000)}`;
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) expect(parseSecret(huge).ok).toBe(false);
    expect(performance.now() - t0).toBeLessThan(200);
  });
});
