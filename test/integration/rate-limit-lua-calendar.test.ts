/**
 * The calendar arithmetic inside rate-limit-n.lua, run by a real Redis Lua
 * interpreter at chosen instants (Redis TIME cannot be moved, so the script's
 * own `civil`, `month_start` and `window` functions are lifted from the file
 * and called with a given `now`), against calendar-window.ts and Date.UTC.
 */
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CREDIT_TTL_MS, calendarWindow, creditPeriod } from "../../src/store/calendar-window.js";
import { expandIncludes, SCRIPTS } from "../../src/store/lua-scripts.js";
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
  const lua = SCRIPTS.rateLimit.lua;
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

/** The script's credit_period, wrapped: ARGV is refill code × 100 + day, then instants. */
function creditProbe(): string {
  const lua = SCRIPTS.rateLimit.lua;
  const start = lua.indexOf("-- Days since 1970-01-01");
  const end = lua.indexOf("-- 1. Blocks");
  return [
    "local floor = math.floor",
    "local now = 0",
    lua.slice(start, end),
    "local code = tonumber(ARGV[1])",
    "local out = {}",
    "for i = 2, #ARGV do",
    "  now = tonumber(ARGV[i])",
    "  local id, nxt = credit_period(floor(code / 100), code % 100)",
    "  out[#out + 1] = id; out[#out + 1] = nxt",
    "end",
    "return out",
  ].join("\n");
}

/** The body of `local function name(...)` … `end` at the start of a line. */
function luaFunction(lua: string, name: string): string {
  const start = lua.indexOf(`local function ${name}(`);
  expect(start, name).toBeGreaterThanOrEqual(0);
  return lua.slice(start, lua.indexOf("\nend\n", start) + 5);
}

describe("credit refill periods in the scripts on real Redis", () => {
  it("agree with creditPeriod (id and next refill) around every refill day 2020–2030", async () => {
    const script = creditProbe();
    const mismatches: string[] = [];
    for (const [refill, day] of [
      ["daily", 1],
      ["monthly", 1],
      ["monthly", 15],
      ["monthly", 28],
    ] as const) {
      const instants: number[] = [];
      for (let y = 2020; y < 2030; y++)
        for (let m = 0; m < 12; m++) {
          const edge = Date.UTC(y, m, day);
          instants.push(edge - 1, edge, edge + DAY * 3 + 17);
        }
      const code = (refill === "daily" ? 100 : 200) + day;
      const r = (await client.eval(script, 0, code, ...instants)) as number[];
      instants.forEach((ms, i) => {
        const want = creditPeriod(refill, day, ms);
        if ((r[2 * i] !== want.id || r[2 * i + 1] !== want.next) && mismatches.length < 10)
          mismatches.push(
            `${refill}/${day} at ${new Date(ms).toISOString()}: ${r[2 * i]}, ${r[2 * i + 1]} ≠ ${want.id}, ${want.next}`,
          );
      });
    }
    expect(mismatches).toEqual([]);
    // A monthly period on the 15th runs from the 15th to the next 15th.
    const p = creditPeriod("monthly", 15, Date.UTC(2026, 0, 14, 23));
    expect(p.next).toBe(Date.UTC(2026, 0, 15));
    expect(creditPeriod("monthly", 15, Date.UTC(2026, 0, 15)).id).toBe(p.id + 1);
  });

  it("both credit scripts take the calendar and refill code from the same includes", () => {
    const read = (f: string) => readFileSync(new URL(`../../lua/${f}`, import.meta.url), "utf8");
    for (const f of ["rate-limit-n.lua", "credits-adjust-1.lua"]) {
      expect(read(f)).toContain("--!include calendar.lua\n");
      expect(read(f)).toContain("--!include credits.lua\n");
    }
    for (const s of [SCRIPTS.rateLimit, SCRIPTS.creditsAdjust]) {
      expect(s.lua).not.toContain("--!include");
      expect(luaFunction(s.lua, "refilled")).toBe(
        luaFunction(read("includes/credits.lua"), "refilled"),
      );
    }
    expect(Number(/CREDIT_TTL_MS = (\d+)/.exec(SCRIPTS.rateLimit.lua)?.[1])).toBe(CREDIT_TTL_MS);
    expect(() => expandIncludes("--!include no-such-file.lua")).toThrow(/no-such-file\.lua/);
  });
});
