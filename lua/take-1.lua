-- Takes up to `want` cost units from one bucket, atomically: the allotment of
-- a `sync: batched` limit (ratelimit/batched-store.ts), decided from in memory
-- afterwards. The bucket is charged what is taken, exactly as that many
-- decisions would charge it (rate-limit-n.lua's GCRA and quota arithmetic);
-- unused units go back later through refund-n.lua. Redis TIME is the clock.
--
-- KEYS[1]  the bucket
-- ARGV     kind (1 rate, 2 quota), requests, period_ms (rate) or window code
--          (quota: 1 day, 2 week, 3 month), burst (rate; a quota: requests), want
-- Returns  { taken, remaining (after the take), reset_ms }
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local floor = math.floor
local kind, n, p = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local burst, want = tonumber(ARGV[4]), tonumber(ARGV[5])
local key = KEYS[1]

local function int(x)
  return string.format("%.0f", x)
end

--!include calendar.lua
--!include window.lua
--!include gcra.lua

local v = redis.call("GET", key)
if kind == 1 then
  if n == 0 or burst == 0 then return { 0, 0, 0 } end
  local d = debt_now(v, n)
  local cap = burst * p
  local available = math.max(0, floor((cap - d) / p))
  local taken = math.min(want, available)
  local nd = d + taken * p
  if taken > 0 then
    redis.call("SET", key, int(nd) .. ":" .. int(now), "PX", math.max(1, floor((nd + n - 1) / n)))
  end
  return { taken, available - taken, floor((nd + n - 1) / n) }
end
local id, wend = window(p)
local used = 0
if v then
  local sep = string.find(v, ":", 1, true)
  if tonumber(string.sub(v, 1, sep - 1)) == id then used = tonumber(string.sub(v, sep + 1)) end
end
local taken = math.min(want, math.max(0, n - used))
if taken > 0 then
  redis.call("SET", key, int(id) .. ":" .. int(used + taken), "PXAT", wend)
end
return { taken, math.max(0, n - used - taken), wend - now }
