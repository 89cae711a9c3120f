-- One detection window update for one (rule, subject), atomic: drop members
-- older than the window, add the new ones (score: now), decide whether the rule
-- fires, and take the subject's cool-down if it does. Redis TIME is the clock;
-- both keys share the subject's hash tag (one slot) and carry expiries.
--
-- KEYS[1]  the window (sorted set: member → last seen, ms)
-- KEYS[2]  the cool-down marker
-- ARGV[1]  mode: 1 count (fire when ≥ threshold members), 2 new (fire when a
--          member is absent and the window held ≥ threshold members before),
--          3 sum (members are "<weight>:<unique id>", each standing for
--          <weight> events: fire when the weights add up to ≥ threshold)
-- ARGV[2]  window, ms
-- ARGV[3]  threshold
-- ARGV[4]  cap: most members kept (the newest stay). In sum mode a cap of at
--          least the threshold loses nothing: cap members weigh ≥ cap.
-- ARGV[5]  cool-down, ms
-- ARGV[6..] the members
-- Returns  { members in the window (sum mode: their weights' sum), fired (0/1) }

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local oldest = now - win
local fire = false
-- Reads first, then ZADD as the first write: an OOM Redis refuses the call
-- at that write (a first write that cannot grow memory would let it in).
if ARGV[1] == "2" then
  local before = redis.call("ZCOUNT", KEYS[1], "(" .. string.format("%.0f", oldest), "+inf")
  if before >= threshold then
    for i = 6, #ARGV do
      local seen = redis.call("ZSCORE", KEYS[1], ARGV[i])
      if not seen or tonumber(seen) <= oldest then fire = true end
    end
  end
end
for i = 6, #ARGV do
  redis.call("ZADD", KEYS[1], now, ARGV[i])
end
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", oldest)
local n = redis.call("ZCARD", KEYS[1])
if n > cap then
  redis.call("ZREMRANGEBYRANK", KEYS[1], 0, n - cap - 1)
  n = cap
end
redis.call("PEXPIRE", KEYS[1], win)
if ARGV[1] == "3" then
  local sum = 0
  for _, m in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
    sum = sum + (tonumber(string.match(m, "^(%d+):")) or 1)
  end
  n = sum
end
if ARGV[1] ~= "2" and n >= threshold then fire = true end
if fire and redis.call("SET", KEYS[2], "1", "NX", "PX", ARGV[5]) then
  return { n, 1 }
end
return { n, 0 }
