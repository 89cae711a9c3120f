/**
 * The pieces of backup and migration that need no server: the JSON Lines
 * backup format (header, records, trailer; errors that name a field, never a
 * value), the CSV reader (RFC 4180 quoting, cells across lines, bounds) and
 * its column mapping, and the foreign-key helpers (prefix rules, digest
 * normalisation, which secrets are looked up).
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  CsvFormatError,
  csvRecords,
  csvRowToRecord,
  mapCsvHeader,
  splitCsv,
} from "../../src/cli/csv-keys.js";
import { headerLine, parseKeyFileLine, recordLine, trailerLine } from "../../src/cli/key-file.js";
import { Progress } from "../../src/cli/progress.js";
import {
  DigestAlgorithm,
  DigestEncoding,
  KeyExportSchema,
} from "../../src/gen/tollgate/v1/key_export_pb.js";
import { KeyStatus } from "../../src/gen/tollgate/v1/key_pb.js";
import {
  ForeignKeys,
  foreignKeyId,
  foreignPrefixProblem,
  normaliseForeignDigest,
} from "../../src/keys/foreign-keys.js";
import { createSecretDigester } from "../../src/keys/secret-digest.js";

async function* from(lines: string[]): AsyncGenerator<string> {
  yield* lines;
}
async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("the JSON Lines backup file", () => {
  it("writes and reads a header, records and a trailer", () => {
    const header = parseKeyFileLine(headerLine("0a1b2c3d", new Date(Date.UTC(2026, 0, 2))));
    expect(header).toEqual({
      kind: "header",
      header: {
        format: "tollgate-keys",
        version: 1,
        exported_at: "2026-01-02T00:00:00.000Z",
        pepper_fingerprint_prefix: "0a1b2c3d",
      },
    });
    const record = create(KeyExportSchema, {
      formatVersion: 1,
      key: { id: "key_0123456789abcdef", owner: "acme", status: KeyStatus.ACTIVE },
      secretDigest: "A".repeat(43),
    });
    const line = recordLine(record);
    expect(line).toContain('"secret_digest"');
    expect(line).toContain('"status":"KEY_STATUS_ACTIVE"');
    expect(parseKeyFileLine(line)).toEqual({ kind: "record", record });
    expect(parseKeyFileLine(trailerLine(7))).toEqual({
      kind: "trailer",
      trailer: { end: true, keys: 7 },
    });
    expect(parseKeyFileLine("   ")).toEqual({ kind: "blank" });
  });

  it("accepts camelCase field names too (proto3 JSON), as a hand-made file may use them", () => {
    const l = parseKeyFileLine('{"key":{"owner":"x"},"foreignPrefix":"sk_"}');
    expect(l.kind).toBe("record");
  });

  it("names what is wrong with a bad line, never a value in it", () => {
    const secretish = "sk_live_do-not-echo-me-0123456789";
    const cases = [
      "{not json",
      "[1,2]",
      '{"format":"other"}',
      '{"end":true}',
      `{"key":{"owner":{"nested":"${secretish}"}}}`,
      `{"key":{"owner":"x"},"secret":"${secretish}"}`,
    ];
    for (const text of cases) {
      const l = parseKeyFileLine(text);
      expect(l.kind, text).toBe("bad");
      expect(JSON.stringify(l)).not.toContain(secretish);
    }
    const error = (text: string) => (parseKeyFileLine(text) as { error: string }).error;
    expect(error(`{"secret":"${secretish}"}`)).toBe('unknown field "secret"');
    expect(error(`{"key":{"status":"${secretish}"}}`)).toBe(
      "a value is not a name of enum tollgate.v1.KeyStatus",
    );
    expect(error('{"key":{"owner":5}}')).toBe("field tollgate.v1.Key.owner cannot be read");
  });
});

describe("the CSV reader", () => {
  it("splits RFC 4180 cells: quotes, doubled quotes, commas inside quotes, empty cells", () => {
    expect(splitCsv('a,"b,c","say ""hi""",,e')).toEqual(["a", "b,c", 'say "hi"', "", "e"]);
    expect(splitCsv('"open')).toBeUndefined();
    expect(splitCsv("x\r")).toEqual(["x"]);
  });

  it("joins the lines of a quoted cell and numbers records by their first line", async () => {
    const rows = await all(csvRecords(from(["h1,h2", '1,"two', 'lines"', "", "3,4"])));
    expect(rows).toEqual([
      { line: 1, cells: ["h1", "h2"] },
      { line: 2, cells: ["1", "two\nlines"] },
      { line: 5, cells: ["3", "4"] },
    ]);
  });

  it("refuses a quote never closed", async () => {
    await expect(all(csvRecords(from(["a,b", '"never closed'])))).rejects.toThrow(CsvFormatError);
    const long = Array.from({ length: 2000 }, () => "x".repeat(40));
    await expect(all(csvRecords(from(['"', ...long])))).rejects.toThrow(/64 KiB/);
  });
});

describe("the CSV column mapping", () => {
  const sha = createHash("sha256").update("sk_live_example-secret-value").digest("hex");

  it("maps known columns by name, metadata.<name> columns, and --map renames", () => {
    const m = mapCsvHeader(["key_hash", "ownerId", "scopes", "metadata.plan", "expires", "notes"], {
      map: { hash: "key_hash", owner: "ownerId" },
      ignore: ["notes"],
      defaultPrefix: "sk_live_",
    });
    const r = csvRowToRecord([sha, "cust-1", "a:read, b:write;c", "pro", "1900000000000", "x"], m);
    if (typeof r === "string") throw new Error(r);
    expect(r.key).toMatchObject({
      owner: "cust-1",
      scopes: ["a:read", "b:write", "c"],
      metadata: { plan: "pro" },
      status: KeyStatus.ACTIVE,
    });
    expect(r.key?.expireTime?.seconds).toBe(1_900_000_000n);
    expect(r.foreignDigest).toMatchObject({
      algorithm: DigestAlgorithm.SHA256,
      encoding: DigestEncoding.UNSPECIFIED,
      value: sha,
    });
    expect(r.foreignPrefix).toBe("sk_live_");
  });

  it("refuses unknown columns, a missing hash, owner or prefix, and a --map of a missing column", () => {
    const o = { map: {}, ignore: [], defaultPrefix: "" };
    expect(() => mapCsvHeader(["hash", "owner", "prefix", "colour"], o)).toThrow(/"colour"/);
    expect(() => mapCsvHeader(["owner", "prefix"], o)).toThrow(/no hash column/);
    expect(() => mapCsvHeader(["hash", "prefix"], o)).toThrow(/no owner column/);
    expect(() => mapCsvHeader(["hash", "owner"], o)).toThrow(/--prefix/);
    expect(() =>
      mapCsvHeader(["hash", "owner", "prefix"], { ...o, map: { owner: "ownerId" } }),
    ).toThrow(/no column "ownerId"/);
    expect(() => mapCsvHeader(["hash", "owner", "prefix"], { ...o, map: { colour: "x" } })).toThrow(
      /not an import field/,
    );
  });

  it("reports a bad time, encoding or status by column, never by value", () => {
    const m = mapCsvHeader(["hash", "owner", "prefix", "expires", "hash_encoding", "status"], {
      map: {},
      ignore: [],
      defaultPrefix: "",
    });
    const row = (over: Partial<Record<"expires" | "enc" | "status", string>>) => [
      sha,
      "o",
      "sk_",
      over.expires ?? "",
      over.enc ?? "",
      over.status ?? "",
    ];
    expect(csvRowToRecord(row({ expires: "next tuesday" }), m)).toBe(
      "expires: not an ISO 8601 time or epoch milliseconds",
    );
    expect(csvRowToRecord(row({ enc: "rot13" }), m)).toBe("hash_encoding: must be hex or base64");
    expect(csvRowToRecord(row({ status: "paused" }), m)).toBe("status: must be active or revoked");
    const revoked = csvRowToRecord(row({ status: "REVOKED", expires: "2030-01-01" }), m);
    expect(typeof revoked === "object" && revoked.key?.status).toBe(KeyStatus.REVOKED);
  });
});

describe("foreign keys", () => {
  it("accepts a prefix of 2..32 of [A-Za-z0-9_-] that cannot begin a tg_ secret", () => {
    for (const ok of ["sk_live_", "pk-", "unkey_", "AB"])
      expect(foreignPrefixProblem(ok), ok).toBeUndefined();
    for (const bad of ["t", "tg", "tg_", "tg_live_", "s k", "x".repeat(33), ""]) {
      expect(foreignPrefixProblem(bad), bad).toBeDefined();
    }
  });

  it("normalises hex and base64 (standard or URL-safe, padded or not) to one stored form", () => {
    const digest = createHash("sha256").update("secret").digest();
    const forms = [
      digest.toString("hex"),
      digest.toString("hex").toUpperCase(),
      digest.toString("base64"),
      digest.toString("base64").replace(/=$/, ""),
      digest.toString("base64url"),
    ];
    for (const f of forms) {
      expect(normaliseForeignDigest(f, "auto")).toEqual({
        digest: `sha256:${digest.toString("hex")}`,
      });
    }
    expect(normaliseForeignDigest(digest.toString("base64"), "hex")).toHaveProperty("error");
    expect(normaliseForeignDigest("zz".repeat(32), "auto")).toHaveProperty("error");
    expect(normaliseForeignDigest("abc", "base64")).toHaveProperty("error");
  });

  it("looks a secret up only if it starts with a registered prefix and has a sane length and alphabet", () => {
    const f = new ForeignKeys();
    expect(f.recognises("sk_live_0123456789abcdef")).toBe(false); // nothing registered
    f.add(["sk_live_", "tg_", "bad prefix"]);
    expect(f.list()).toEqual(["sk_live_"]);
    expect(f.recognises("sk_live_0123456789abcdef")).toBe(true);
    expect(f.recognises("sk_live_0123")).toBe(true); // 12 characters
    expect(f.recognises("sk_live_012")).toBe(false); // too short
    expect(f.recognises(`sk_live_${"a".repeat(249)}`)).toBe(false); // 257: too long
    expect(f.recognises("sk_live_0123 456789")).toBe(false); // a space
    expect(f.recognises("pk_live_0123456789abcdef")).toBe(false);
    expect(f.recognises("tg_live_0123456789abcdefghijklmnopqrstu")).toBe(false);
  });

  it("derives a stable id from the digest and the pepper", () => {
    const d1 = createSecretDigester(Buffer.from("pepper-one-0123456789"));
    const d2 = createSecretDigester(Buffer.from("pepper-two-0123456789"));
    const a = foreignKeyId("sha256:00ff", d1);
    expect(a).toMatch(/^key_[0-9A-Za-z]{16}$/);
    expect(foreignKeyId("sha256:00ff", d1)).toBe(a);
    expect(foreignKeyId("sha256:00fe", d1)).not.toBe(a);
    expect(foreignKeyId("sha256:00ff", d2)).not.toBe(a);
  });
});

describe("the progress counter", () => {
  function sink() {
    let text = "";
    const stream = {
      isTTY: true,
      write: (t: string) => {
        text += t;
        return true;
      },
    };
    return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
  }

  it("rewrites one line in place on a terminal and clears it at the end", () => {
    const s = sink();
    const p = new Progress({ verb: "imported", stream: s.stream });
    p.add(500);
    // \r to redraw the line, ESC [K to clear what an older, longer line left.
    expect(s.text().startsWith("\rimported 500 keys (")).toBe(true);
    expect(s.text()).toMatch(/ \(\d+\/s\)/);
    expect(s.text().endsWith("\u001b[K")).toBe(true);
    p.add(500); // within 200 ms: not redrawn
    expect(p.total).toBe(1000);
    p.done();
    expect(s.text().endsWith("\r\x1b[K")).toBe(true);
  });

  it("writes nothing when the stream is not a terminal", () => {
    const s = sink();
    const p = new Progress({ verb: "exported", stream: { ...s.stream, isTTY: false } as never });
    p.add(10);
    p.done();
    expect(s.text()).toBe("");
  });
});
