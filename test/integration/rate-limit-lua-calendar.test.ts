/**
 * The calendar arithmetic inside rate-limit-n.lua, run by a real Redis Lua
 * interpreter at chosen instants (Redis TIME cannot be moved, so the script's
 * own `civil`, `month_start` and `window` functions are lifted from the file
 * and called with a given `now`), against calendar-window.ts and Date.UTC.
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calendarWindow } from "../../src/store/calendar-window.js";
import { startTestRedis, type TestRedis } from "../helpers/redis-server.js";

let redis: TestRedis;
let client: Redis;

beforeAll(async () => {
  redis = await startTestRedis();
  client = new Redis(redis.url);
});

afterAll(async () => {
  client.disconnect();
  await redis.stop();
});

/** The script's calendar functions, wrapped to evaluate each ARGV instant. */
function calendarProbe(): string {
  const lua = readFileSync(new URL("../../lua/rate-limit-n.lua", import.meta.url), "utf8");
  const start = lua.indexOf("-- Days since 1970-01-01");
  const end = lua.indexOf("-- 1. Blocks");
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  return [
    "local floor = math.floor",
    "local now = 0",
    lua.slice(start, end),
    "local out = {}",
    "for i = 1, #ARGV do",
    "  now = tonumber(ARGV[i])",
    "  for code = 1, 3 do",
    "    local id, wend = window(code)",
    "    out[#out + 1] = id; out[#out + 1] = wend",
    "  end",
    "end",
    "return out",
  ].join("\n");
}

const DAY = 86_400_000;

describe("rate-limit-n.lua calendar windows on real Redis", () => {
  it("agree with calendar-window.ts at every month edge 1970–2400 and every midnight 2020–2030", async () => {
    const script = calendarProbe();
    const instants: number[] = [];
    for (let y = 1970; y <= 2400; y++) {
      for (let m = 0; m < 12; m++) {
        const edge = Date.UTC(y, m, 1);
        if (edge > 0) instants.push(edge - 1);
        instants.push(edge);
      }
    }
    for (let t = Date.UTC(2020, 0, 1); t < Date.UTC(2030, 0, 1); t += DAY) instants.push(t - 1, t);
    const mismatches: string[] = [];
    for (let i = 0; i < instants.length; i += 2000) {
      const batch = instants.slice(i, i + 2000);
      const r = (await client.eval(script, 0, ...batch)) as number[];
      batch.forEach((ms, j) => {
        (["day", "week", "month"] as const).forEach((kind, k) => {
          const want = calendarWindow(kind, ms);
          const id = r[j * 6 + k * 2];
          const end = r[j * 6 + k * 2 + 1];
          if (end !== want.end && mismatches.length < 10)
            mismatches.push(
              `${kind} at ${new Date(ms).toISOString()}: lua end ${end} ≠ ${want.end}`,
            );
          if (id !== want.id && mismatches.length < 10)
            mismatches.push(`${kind} at ${new Date(ms).toISOString()}: lua id ${id} ≠ ${want.id}`);
        });
      });
    }
    expect(mismatches).toEqual([]);
    expect(instants.length).toBeGreaterThan(10_000);
  });

  it("ends Dec 31 at Jan 1 and a leap February at Mar 1", async () => {
    const script = calendarProbe();
    const at = [Date.UTC(2023, 11, 31, 23, 59, 59, 999), Date.UTC(2024, 1, 29, 23, 59, 59, 999)];
    const r = (await client.eval(script, 0, ...at)) as number[];
    // Dec 31 2023 (a Sunday): day, week and month all end at 2024-01-01.
    expect([r[1], r[3], r[5]]).toEqual([
      Date.UTC(2024, 0, 1),
      Date.UTC(2024, 0, 1),
      Date.UTC(2024, 0, 1),
    ]);
    // Feb 29 2024: the day and month end at Mar 1; the week on Monday Mar 4.
    expect([r[7], r[9], r[11]]).toEqual([
      Date.UTC(2024, 2, 1),
      Date.UTC(2024, 2, 4),
      Date.UTC(2024, 2, 1),
    ]);
    // Month ids differ across the edge, so a quota of December is not read in January.
    const ids = (await client.eval(
      script,
      0,
      Date.UTC(2024, 0, 1) - 1,
      Date.UTC(2024, 0, 1),
    )) as number[];
    expect(ids[4]).not.toBe(ids[10]);
  });
});
