import { createHmac, timingSafeEqual } from "node:crypto";

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = "tollgate-signature";

/**
 * Signs a webhook body: HMAC-SHA256(secret, `<t>.<body>`) where `t` is the
 * send time in Unix seconds. Binding the time into the MAC lets receivers
 * reject replays of an old delivery.
 */
export function signWebhook(secret: Buffer | string, body: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Verifies a signature header for `body`: the MAC matches (constant-time) and
 * `t` is within `toleranceS` of `nowS`. What a receiver does; used by tests and
 * shown in the README.
 */
export function verifyWebhook(
  secret: Buffer | string,
  body: string,
  header: string,
  nowS: number,
  toleranceS = 300,
): boolean {
  const parts = Object.fromEntries(
    header.split(",").map((p) => p.split("=", 2) as [string, string]),
  );
  const t = Number(parts.t);
  const given = Buffer.from(parts.v1 ?? "", "hex");
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS) return false;
  const want = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return given.length === want.length && timingSafeEqual(given, want);
}
