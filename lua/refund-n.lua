-- Gives back the charge of an earlier decision step. Used on Redis Cluster,
-- where limits in different hash slots are charged one slot at a time: when a
-- later slot denies, the earlier slots' charges are refunded.
--
-- KEYS     one bucket key per refunded limit
-- ARGV[1..] per key, 4 values: kind (1 rate, 2 quota), requests, period_ms (rate) or 0, cost
-- Returns  the number of buckets refunded
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local done = 0
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local kind, n, p = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local cost = tonumber(ARGV[a + 3])
  local v = redis.call("GET", KEYS[i])
  if v then
    local sep = string.find(v, ":", 1, true)
    local head, tail = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
    if kind == 1 then
      local d = head
      local elapsed = now - tail
      if elapsed > 0 then
        local drained = elapsed * n
        if drained >= d then d = 0 else d = d - drained end
      end
      d = math.max(0, d - cost * p)
      local ttl = redis.call("PTTL", KEYS[i])
      if ttl <= 0 then ttl = math.max(1, math.floor((d + n - 1) / math.max(n, 1))) end
      redis.call("SET", KEYS[i], string.format("%.0f", d) .. ":" .. string.format("%.0f", now), "PX", ttl)
    else
      local used = math.max(0, tail - cost)
      redis.call("SET", KEYS[i], string.format("%.0f", head) .. ":" .. string.format("%.0f", used), "KEEPTTL")
    end
    done = done + 1
  end
end
return done
