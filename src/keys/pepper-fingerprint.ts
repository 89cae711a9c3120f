/**
 * Pepper fingerprints. Keys are stored as HMAC(pepper, secret), so a replica
 * started with another pepper finds none of them: every key answers
 * UNKNOWN_KEY while `keys list` shows them active. To refuse that instead,
 * the store keeps a fingerprint of the pepper its keys were made with — an
 * HMAC of a fixed label, which identifies the pepper without revealing it —
 * and every start compares its own.
 */
import { createHmac } from "node:crypto";
import type { KeyStore } from "./key-store.js";
import type { StoreMarker } from "./store-marker.js";

/** The fixed message whose HMAC under the pepper is its fingerprint. Versioned: never change it. */
export const PEPPER_FINGERPRINT_LABEL = "tollgate pepper fingerprint v1";

/** Hex characters of a fingerprint shown to operators (enough to compare two, not the whole). */
const SHOWN = 8;

/** The fingerprint of a pepper: HMAC-SHA256(pepper, label), hex. */
export function pepperFingerprint(pepper: Buffer): string {
  return createHmac("sha256", pepper).update(PEPPER_FINGERPRINT_LABEL).digest("hex");
}

/** Outcome of checkPepper. */
export type PepperCheck =
  /** The stored fingerprint is this pepper's. */
  | { outcome: "matched" }
  /** None was stored; this pepper's is now. `adopted`: keys existed already (made before fingerprints were kept). */
  | { outcome: "recorded"; adopted: boolean }
  /** Another was stored and, as asked (`acceptNew`), this pepper's replaced it. */
  | { outcome: "replaced"; previous: string }
  /** Another is stored: this pepper cannot read the keys. */
  | { outcome: "mismatch"; stored: string };

/** Options of checkPepper. */
export interface CheckPepperOptions {
  marker: StoreMarker;
  /** Read to tell a new store from keys made before fingerprints were kept. */
  keys: KeyStore;
  /** This process's pepper fingerprint. */
  fingerprint: string;
  /** Replace a different stored fingerprint instead of reporting a mismatch. */
  acceptNew: boolean;
}

/**
 * Compares this pepper with the store's, recording it if the store has none.
 * Throws only if the store fails.
 */
export async function checkPepper(o: CheckPepperOptions): Promise<PepperCheck> {
  const claim = await o.marker.claim(o.fingerprint);
  if (claim.created) {
    const existing = await o.keys.list({ limit: 1, includeRevoked: true });
    return { outcome: "recorded", adopted: existing.records.length > 0 };
  }
  if (claim.fingerprint === o.fingerprint) return { outcome: "matched" };
  if (!o.acceptNew) return { outcome: "mismatch", stored: claim.fingerprint };
  await o.marker.replace(o.fingerprint);
  return { outcome: "replaced", previous: claim.fingerprint };
}

/**
 * A short, non-reversible label of a fingerprint for messages: its first
 * characters. Never the pepper, never the whole fingerprint.
 */
export function shownFingerprint(fingerprint: string): string {
  return `${fingerprint.slice(0, SHOWN)}…`;
}

/** The refusal to start with a pepper the store's keys were not made with. */
export function pepperMismatchMessage(stored: string, current: string): string {
  return (
    "TOLLGATE_PEPPER / TOLLGATE_PEPPER_FILE: this pepper is not the one the keys in this Redis " +
    `were created with (stored pepper fingerprint ${shownFingerprint(stored)}, this pepper's ` +
    `${shownFingerprint(current)}): every key would answer UNKNOWN_KEY. Start with the pepper ` +
    "the keys were created with; to change the pepper on purpose (every key must then be " +
    're-issued), follow "Changing the pepper" in the README, which sets ' +
    "TOLLGATE_ACCEPT_NEW_PEPPER=true for one rollout."
  );
}
