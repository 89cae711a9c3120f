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

--!include calendar.lua

--!include credits.lua

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
