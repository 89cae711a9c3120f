-- Sets or tops up one credit balance, atomically: the lazy refill of the
-- current period first (as rate-limit-n.lua applies it, so a refill due is
-- neither lost nor applied twice), then the change. Redis TIME is the clock.
--
-- KEYS[1]  the balance key ("<period id>:<balance>"; the key's rate-limit slot)
-- ARGV[1]  the plan's amount
-- ARGV[2]  refill (0 none, 1 daily, 2 monthly) × 100 + refill day (1..28)
-- ARGV[3]  cap (add mode) or -1 (replace mode)
-- ARGV[4]  "set" (the balance becomes ARGV[5]) or "add" (ARGV[5] is added, up to 2^52)
-- ARGV[5]  the amount (integer ≥ 0)
-- Returns  { balance after the change, ms until the next refill (0: none) }
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local floor = math.floor
local amount, code, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local op, n = ARGV[4], tonumber(ARGV[5])

-- BEGIN shared with rate-limit-n.lua (a test holds the copies equal)
-- Days since 1970-01-01 → year, month (Howard Hinnant's civil_from_days).
local function civil(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

-- First day (days since epoch) of year y, month m.
local function month_start(y, m)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
-- END shared

local CREDIT_TTL_MS = 63072000000

local function credit_period(refill, dom)
  local day = floor(now / 86400000)
  if refill == 1 then return day, (day + 1) * 86400000 end
  if refill ~= 2 then return 0, 0 end
  local y, m = civil(day - (dom - 1))
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return y * 12 + m, (month_start(ny, nm) + dom - 1) * 86400000
end

local function refilled(amount, cap, refill, from, bal, to)
  if refill == 0 or to <= from then return bal end
  if cap < 0 then return amount end
  if bal >= cap then return bal end
  if (to - from) * amount >= cap - bal then return cap end
  return bal + (to - from) * amount
end

local refill, dom = floor(code / 100), code % 100
local pid, nxt = credit_period(refill, dom)
local bal = amount
local v = redis.call("GET", KEYS[1])
if v then
  local sep = string.find(v, ":", 1, true)
  bal = refilled(amount, cap, refill, tonumber(string.sub(v, 1, sep - 1)),
    tonumber(string.sub(v, sep + 1)), pid)
end
if op == "set" then
  bal = n
else
  bal = math.min(bal + n, 4503599627370496)
end
redis.call("SET", KEYS[1], string.format("%.0f", pid) .. ":" .. string.format("%.0f", bal),
  "PX", CREDIT_TTL_MS)
return { bal, nxt > 0 and nxt - now or 0 }
