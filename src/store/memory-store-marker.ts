import type { MarkerClaim, StoreMarker } from "../keys/store-marker.js";

/** The marker of the embedded store: process memory, gone with the process. */
export class MemoryStoreMarker implements StoreMarker {
  private fingerprint: string | undefined;

  async claim(fingerprint: string): Promise<MarkerClaim> {
    if (this.fingerprint !== undefined) return { fingerprint: this.fingerprint, created: false };
    this.fingerprint = fingerprint;
    return { fingerprint, created: true };
  }

  async replace(fingerprint: string): Promise<void> {
    this.fingerprint = fingerprint;
  }

  private epochId: string | undefined;

  async epoch(candidate: string): Promise<string> {
    this.epochId ??= candidate;
    return this.epochId;
  }
}
