-- Bounds how many subjects one detection rule holds state for, over all
-- replicas: marks the subjects of a batch as seen now, forgets those not seen
-- within the rule's state lifetime (their windows have expired too), and
-- beyond the cap forgets the least recently seen, whose state the caller then
-- drops. Least recently seen goes first, so a subject that keeps failing stays
-- tracked however many one-off subjects pass by. Redis TIME is the clock; the
-- key expires with the lifetime.
--
-- KEYS[1]  the rule's tracked subjects (sorted set: subject tag → last seen, ms)
-- ARGV[1]  state lifetime, ms: how long an unseen subject's state lasts
-- ARGV[2]  cap: most subjects tracked
-- ARGV[3..] the subject tags of the batch
-- Returns  the tags forgotten for the cap, oldest first (may include tags of
--          this batch when the batch alone exceeds the cap)

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local life = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
-- ZADD is the first write: an OOM Redis refuses the call there.
for i = 3, #ARGV do
  redis.call("ZADD", KEYS[1], now, ARGV[i])
end
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. string.format("%.0f", now - life))
local n = redis.call("ZCARD", KEYS[1])
local gone = {}
if n > cap then
  gone = redis.call("ZRANGE", KEYS[1], 0, n - cap - 1)
  redis.call("ZREMRANGEBYRANK", KEYS[1], 0, n - cap - 1)
end
redis.call("PEXPIRE", KEYS[1], life)
return gone
