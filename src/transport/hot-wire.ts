/**
 * The wire primitives of the hand-written encoders (hot-encoders.ts).
 *
 * Encoding is two passes over the message: the size pass computes every
 * string's UTF-8 length and every nested message's body length, in the order
 * the write pass will need them, and records them in `lens`; the write pass
 * then fills one Buffer of exactly the total size, reading the recorded
 * lengths back in the same order. So no length prefix is ever guessed and
 * shifted, no string is measured twice, and nothing is allocated per field.
 *
 * One HotWire is reused for every encode: encodes are synchronous, so two
 * never interleave.
 */
import type { UnknownField } from "@bufbuild/protobuf";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";

/** Strings longer than this are measured and written by Buffer (C++) rather than a JS loop. */
const SHORT_STRING = 64;
const UINT64_MAX = 2n ** 64n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Held between encodes, so the last output is not kept alive. */
const EMPTY = Buffer.alloc(0);

/** Bytes of `v` (a uint32) as a varint. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Bytes of an int32 (enums too) as a varint: negatives are sign-extended to 10 bytes. */
export function int32Size(v: number): number {
  if ((v | 0) !== v) throw new Error(`invalid int32: ${v}`);
  return v < 0 ? 10 : varintSize(v);
}

/** Bytes of a uint32 as a varint; throws, as toBinary does, on a value out of range. */
export function uint32Size(v: number): number {
  if (v >>> 0 !== v) throw new Error(`invalid uint32: ${v}`);
  return varintSize(v);
}

/** Bytes of a 64-bit value as a varint, given its two's-complement 64 bits as a bigint ≥ 0. */
function varint64Size(u: bigint): number {
  if (u < 0x100000000n) return varintSize(Number(u));
  let n = 5;
  for (let rest = u >> 35n; rest > 0n; rest >>= 7n) n++;
  return n;
}

/** Bytes of a uint64 varint. */
export function uint64Size(v: bigint): number {
  if (v < 0n || v > UINT64_MAX) throw new Error(`invalid uint64: ${v}`);
  return varint64Size(v);
}

/** Bytes of an int64 varint (negatives: 10). */
export function int64Size(v: bigint): number {
  if (v < INT64_MIN || v > INT64_MAX) throw new Error(`invalid int64: ${v}`);
  return v < 0n ? 10 : varint64Size(v);
}

/**
 * UTF-8 length of `s` as TextEncoder (and so toBinary) encodes it: a lone
 * surrogate becomes U+FFFD, 3 bytes, as Buffer also writes it.
 */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n > SHORT_STRING) return Buffer.byteLength(s, "utf8");
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) len += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        // A pair: 2 code units, 4 bytes.
        len += 2;
        i++;
      } else len += 2;
    } else len += 2;
  }
  return len;
}

/** Bytes of unknown fields as toBinary writes them back (tag, then the raw data). */
export function unknownSize(unknown: readonly UnknownField[] | undefined): number {
  if (unknown === undefined) return 0;
  let n = 0;
  for (const u of unknown) n += varintSize(((u.no << 3) | u.wireType) >>> 0) + u.data.length;
  return n;
}

/** The size cache and the output buffer of one encode. */
export class HotWire {
  /** Lengths recorded by the size pass, in write order. */
  private lens = new Int32Array(64);
  /** Next free slot (size pass), next slot to read (write pass). */
  private n = 0;
  private r = 0;
  private buf: Buffer = EMPTY;
  private pos = 0;

  /** Starts a size pass. */
  begin(): void {
    this.n = 0;
  }

  /** Size pass: records the length of a string field; returns its length prefix + bytes. */
  str(s: string): number {
    const len = utf8Length(s);
    this.push(len);
    return varintSize(len) + len;
  }

  /** Size pass: reserves the slot of a nested message's length, before sizing its body. */
  open(): number {
    this.push(0);
    return this.n - 1;
  }

  /** Size pass: fills the slot; returns the nested message's length prefix + body. */
  close(slot: number, body: number): number {
    this.lens[slot] = body;
    return varintSize(body) + body;
  }

  private push(v: number): void {
    if (this.n === this.lens.length) {
      const grown = new Int32Array(this.lens.length * 2);
      grown.set(this.lens);
      this.lens = grown;
    }
    this.lens[this.n++] = v;
  }

  /**
   * Starts the write pass into a new buffer of exactly `size` bytes, or, with
   * `grpcFrame`, of the 5-byte gRPC message prefix (uncompressed, length
   * `size`) followed by them: the frame goes out as it is, with no copy.
   */
  alloc(size: number, grpcFrame = false): void {
    if (grpcFrame) {
      this.buf = Buffer.allocUnsafe(size + 5);
      this.buf[0] = 0;
      this.buf.writeUInt32BE(size, 1);
      this.pos = 5;
    } else {
      this.buf = Buffer.allocUnsafe(size);
      this.pos = 0;
    }
    this.r = 0;
  }

  /** Ends the write pass: the buffer, checked to be exactly full. */
  finish(): Buffer {
    if (this.pos !== this.buf.length || this.r !== this.n) {
      throw new Error("hot encoder: size and write passes disagree");
    }
    const out = this.buf;
    this.buf = EMPTY;
    return out;
  }

  /** Writes a uint32 varint (tags, lengths, uint32 and non-negative int32 values). */
  varint(v: number): void {
    const b = this.buf;
    let p = this.pos;
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** Writes an int32 varint: negatives as 10 sign-extended bytes. */
  int32(v: number): void {
    if (v >= 0) {
      this.varint(v);
      return;
    }
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < 9; i++) {
      b[p++] = (v & 0x7f) | 0x80;
      v >>= 7;
    }
    b[p++] = 1;
    this.pos = p;
  }

  /** Writes a 64-bit varint; negatives in two's complement (10 bytes). */
  int64(v: bigint): void {
    if (v >= 0n && v < 0x100000000n) {
      this.varint(Number(v));
      return;
    }
    let u = BigInt.asUintN(64, v);
    // Rare (values ≥ 2^32): bigint arithmetic, 7 bits at a time.
    const b = this.buf;
    let p = this.pos;
    while (u > 0x7fn) {
      b[p++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    b[p++] = Number(u);
    this.pos = p;
  }

  /** Writes a bool's varint. */
  bool(v: boolean): void {
    this.buf[this.pos++] = v ? 1 : 0;
  }

  /** Writes the length recorded for the next nested message. */
  len(): void {
    this.varint(this.lens[this.r++] as number);
  }

  /** Writes a string with its recorded length prefix. */
  string(s: string): void {
    const len = this.lens[this.r++] as number;
    this.varint(len);
    if (len === s.length && len <= SHORT_STRING) {
      // ASCII (a UTF-8 length equal to the UTF-16 length means every unit was < 0x80).
      const b = this.buf;
      let p = this.pos;
      for (let i = 0; i < len; i++) b[p++] = s.charCodeAt(i);
      this.pos = p;
      return;
    }
    this.pos += this.buf.write(s, this.pos, len, "utf8");
  }

  /**
   * Writes a singular string field (tag, then the string) unless it is "",
   * proto3's default, which is never written. Not for repeated strings: an
   * empty element there is written.
   */
  strField(t: number, s: string): void {
    if (s === "") return;
    this.varint(t);
    this.string(s);
  }

  /** Writes a singular bool field when true (false, the default, is never written). */
  trueField(t: number, v: boolean): void {
    if (!v) return;
    this.varint(t);
    this.buf[this.pos++] = 1;
  }

  /** Writes a double, 8 bytes little-endian. */
  double(v: number): void {
    this.pos = this.buf.writeDoubleLE(v, this.pos);
  }

  /** Writes bytes with their length prefix. */
  bytes(v: Uint8Array): void {
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  /** Writes unknown fields back as toBinary does. */
  unknown(unknown: readonly UnknownField[] | undefined): void {
    if (unknown === undefined) return;
    for (const u of unknown) {
      this.varint(((u.no << 3) | u.wireType) >>> 0);
      this.buf.set(u.data, this.pos);
      this.pos += u.data.length;
    }
  }
}

/**
 * A tag byte: field number `f` and wire type `t`. Every field the hand
 * encoders write has a number below 16, so every tag is one byte (the size
 * functions count it as 1).
 */
export const tag = (f: number, t: number) => (f << 3) | t;
/** Wire type of varints (ints, enums, bools). */
export const VARINT = 0;
/** Wire type of length-delimited values (strings, bytes, messages). */
export const LEN = 2;
/** Wire type of 64-bit fixed values (doubles). */
export const I64 = 1;

/** Body size of a google.protobuf.Duration or Timestamp: int64 seconds = 1, int32 nanos = 2. */
export function sizeSecondsNanos(_w: HotWire, m: Duration | Timestamp): number {
  let n = 0;
  if (m.seconds !== 0n) n += 1 + int64Size(m.seconds);
  if (m.nanos !== 0) n += 1 + int32Size(m.nanos);
  return n + unknownSize(m.$unknown);
}
/** Writes what sizeSecondsNanos sized. */
export function writeSecondsNanos(w: HotWire, m: Duration | Timestamp): void {
  if (m.seconds !== 0n) {
    w.varint(tag(1, VARINT));
    w.int64(m.seconds);
  }
  if (m.nanos !== 0) {
    w.varint(tag(2, VARINT));
    w.int32(m.nanos);
  }
  w.unknown(m.$unknown);
}

/** Size of a nested message field (one-byte tag, length, body); records the body's length. */
export function sizeNested<T>(w: HotWire, m: T, size: (w: HotWire, m: T) => number): number {
  const slot = w.open();
  return 1 + w.close(slot, size(w, m));
}
/** Writes a nested message field: tag `t`, the recorded length, the body. */
export function writeNested<T>(
  w: HotWire,
  t: number,
  m: T,
  write: (w: HotWire, m: T) => void,
): void {
  w.varint(t);
  w.len();
  write(w, m);
}
