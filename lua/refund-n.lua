-- Gives back the charge of an earlier decision step. Used on Redis Cluster,
-- where limits in different hash slots are charged one slot at a time: when a
-- later slot denies, the earlier slots' charges are refunded, and each bucket's
-- state after the refund is what the denied decision reports for its limit.
--
-- KEYS     one bucket key per refunded limit
-- ARGV[1..] per key, 5 values: kind (1 rate, 2 quota, 3 credits), requests,
--          period_ms (rate) or 0, burst (rate) or 0, cost
-- Returns  { [remaining, reset_ms] × #KEYS }: each bucket after the refund;
--          reset_ms -1 for a quota whose key is gone (its window ended: the
--          caller keeps the window end it had) and for credits (the next
--          refill did not move: the caller keeps the one it had)
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local floor = math.floor

--!include gcra.lua
local out = {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local kind, n, p = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local burst, cost = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local n1 = math.max(n, 1) -- a charged rate has n ≥ 1; never divide by 0
  local v = redis.call("GET", KEYS[i])
  local remaining, reset
  if kind == 1 then
    local d = 0
    if v then
      d = math.max(0, debt_now(v, n) - cost * p)
      local ttl = redis.call("PTTL", KEYS[i])
      if ttl <= 0 then ttl = math.max(1, floor((d + n1 - 1) / n1)) end
      redis.call("SET", KEYS[i], string.format("%.0f", d) .. ":" .. string.format("%.0f", now), "PX", ttl)
    end
    remaining, reset = floor((burst * p - d) / p), floor((d + n1 - 1) / n1)
  elseif kind == 3 then
    -- Credits: the balance gets the cost back, in the period the charge wrote.
    remaining, reset = n, -1
    if v then
      local sep = string.find(v, ":", 1, true)
      local bal = tonumber(string.sub(v, sep + 1)) + cost
      redis.call("SET", KEYS[i], string.sub(v, 1, sep - 1) .. ":" .. string.format("%.0f", bal), "KEEPTTL")
      remaining = bal
    end
  elseif v then
    local sep = string.find(v, ":", 1, true)
    local id, used = string.sub(v, 1, sep - 1), tonumber(string.sub(v, sep + 1))
    used = math.max(0, used - cost)
    redis.call("SET", KEYS[i], id .. ":" .. string.format("%.0f", used), "KEEPTTL")
    -- The charge set the key to expire at its window's end; KEEPTTL kept that.
    remaining, reset = n - used, redis.call("PTTL", KEYS[i])
  else
    remaining, reset = n, -1
  end
  out[#out + 1] = remaining
  out[#out + 1] = reset
end
return out
