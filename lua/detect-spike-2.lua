-- One spike-rule update for one key, atomic: roll the key's bucket forward
-- (folding finished buckets into an exponentially weighted moving baseline),
-- add the requests, decide whether the bucket is a spike, and take the key's
-- cool-down if it is. Redis TIME is the clock; both keys share the key's hash
-- tag (one slot) and carry expiries.
--
-- KEYS[1]  state hash: b (bucket index), c (requests in it), m (baseline), n (buckets seen)
-- KEYS[2]  the cool-down marker
-- ARGV[1]  requests to add
-- ARGV[2]  bucket width, ms
-- ARGV[3]  alpha: weight of each finished bucket in the baseline (0 < alpha ≤ 1)
-- ARGV[4]  factor: a spike is requests > factor × max(baseline, min requests / factor)
-- ARGV[5]  min history: buckets seen before a spike can fire
-- ARGV[6]  min requests: a bucket below this never spikes
-- ARGV[7]  cool-down, ms
-- ARGV[8]  state expiry, ms
-- Returns  { requests in the bucket, baseline × 1000 (integer), fired (0/1) }

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local width = tonumber(ARGV[2])
local alpha = tonumber(ARGV[3])
local bucket = math.floor(now / width)
local s = redis.call("HMGET", KEYS[1], "b", "c", "m", "n")
local b = tonumber(s[1]) or bucket
local c = tonumber(s[2]) or 0
local m = tonumber(s[3]) or 0
local n = tonumber(s[4]) or 0
if bucket > b then
  m = m + alpha * (c - m)
  local gap = math.min(bucket - b - 1, 100000)
  if gap > 0 then m = m * (1 - alpha) ^ gap end
  n = math.min(n + 1 + gap, 1000000000)
  c = 0
  b = bucket
end
c = c + tonumber(ARGV[1])
redis.call("HSET", KEYS[1], "b", b, "c", c, "m", string.format("%.6f", m), "n", n)
redis.call("PEXPIRE", KEYS[1], ARGV[8])
local factor = tonumber(ARGV[4])
local fire = n >= tonumber(ARGV[5]) and c >= tonumber(ARGV[6]) and c > factor * m
if fire and redis.call("SET", KEYS[2], "1", "NX", "PX", ARGV[7]) then
  return { c, math.floor(m * 1000), 1 }
end
return { c, math.floor(m * 1000), 0 }
