/**
 * The memory bounds' settings: their defaults are the structures' own built-in
 * defaults (one number, documented once), byte sizes read with KiB / MiB / GiB
 * suffixes, and out-of-range or misspelt sizes refused at boot.
 */
import { describe, expect, it } from "vitest";
import { loadSettings } from "../../src/config/settings.js";
import { KEY_CACHE_DEFAULTS } from "../../src/keys/key-cache.js";
import { DETECTION_STORE_DEFAULTS } from "../../src/store/memory-detection-store.js";
import { EVENT_BYTES_DEFAULTS } from "../../src/store/memory-event-store.js";
import { RATE_STORE_DEFAULTS } from "../../src/store/memory-rate-limit-store.js";
import { USAGE_STORE_DEFAULTS } from "../../src/store/memory-usage-store.js";

describe("memory-bound settings", () => {
  it("default to the structures' built-in bounds", () => {
    const s = loadSettings({});
    expect({
      max: s.cacheMaxEntries,
      maxBytes: s.cacheMaxBytes,
      negativeMax: s.negativeCacheMaxEntries,
    }).toEqual(KEY_CACHE_DEFAULTS);
    expect({ maxEntries: s.memoryRateMaxEntries, maxBytes: s.memoryRateMaxBytes }).toEqual(
      RATE_STORE_DEFAULTS,
    );
    expect({ maxEventBytes: s.memoryEventMaxBytes, maxAlertBytes: s.memoryAlertMaxBytes }).toEqual(
      EVENT_BYTES_DEFAULTS,
    );
    expect({
      maxEntries: s.memoryDetectionMaxEntries,
      maxBytes: s.memoryDetectionMaxBytes,
    }).toEqual(DETECTION_STORE_DEFAULTS);
    expect({ maxEntries: s.memoryUsageMaxEntries, maxBytes: s.memoryUsageMaxBytes }).toEqual(
      USAGE_STORE_DEFAULTS,
    );
  });

  it("reads sizes in bytes, KiB, MiB and GiB", () => {
    const s = loadSettings({
      TOLLGATE_MEMORY_RATE_MAX_BYTES: "1GiB",
      TOLLGATE_MEMORY_EVENT_MAX_BYTES: "64MiB",
      TOLLGATE_MEMORY_ALERT_MAX_BYTES: "512KiB",
      TOLLGATE_CACHE_MAX_BYTES: "1048576",
    });
    expect(s.memoryRateMaxBytes).toBe(1024 ** 3);
    expect(s.memoryEventMaxBytes).toBe(64 * 1024 ** 2);
    expect(s.memoryAlertMaxBytes).toBe(512 * 1024);
    expect(s.cacheMaxBytes).toBe(1024 ** 2);
  });

  it("refuses a misspelt or out-of-range size, naming the variable", () => {
    expect(() => loadSettings({ TOLLGATE_MEMORY_RATE_MAX_BYTES: "32MB" })).toThrow(
      /TOLLGATE_MEMORY_RATE_MAX_BYTES: must be bytes/,
    );
    expect(() => loadSettings({ TOLLGATE_MEMORY_EVENT_MAX_BYTES: "1KiB" })).toThrow(
      /TOLLGATE_MEMORY_EVENT_MAX_BYTES/,
    );
    expect(() => loadSettings({ TOLLGATE_NEGATIVE_CACHE_MAX_ENTRIES: "0" })).toThrow(
      /TOLLGATE_NEGATIVE_CACHE_MAX_ENTRIES/,
    );
  });
});
