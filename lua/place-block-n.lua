-- Places a block on a subject (a detection rule's action, an operator), atomic:
-- an active block keeps its offence level (the value rate-limit-n.lua writes,
-- which ListBlocks shows) and ends at the later of its end and the new one;
-- without an active block, a level-1 block is set. With the block index in
-- the same slot (standalone, Sentinel), the index entry is written in the same
-- step, never moved earlier (ZADD GT), and the index's expiry covers the block.
-- On Cluster the index lives in another slot: the caller passes KEYS[1] only
-- and updates the index itself with ZADD GT. Redis TIME is the clock.
--
-- KEYS[1]  the subject's block key (value: offence level; TTL: time left)
-- KEYS[2]  optional: the block index (sorted set: tag → end, epoch ms)
-- ARGV[1]  duration, ms (> 0)
-- ARGV[2]  the subject tag (the index member)
-- Returns  { time left of the block after the call (ms), its offence level,
--            1 if this call set or extended it / 0 if a longer block stood,
--            its end in Redis time (epoch ms) }

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dur = tonumber(ARGV[1])
local ttl = redis.call("PTTL", KEYS[1])
local level = tonumber(redis.call("GET", KEYS[1]))
local placed = 0
if ttl < dur then
  if ttl > 0 and level then
    -- PEXPIRE keeps the value: the offence level survives the extension.
    redis.call("PEXPIRE", KEYS[1], dur)
  else
    level = 1
    redis.call("SET", KEYS[1], level, "PX", dur)
  end
  ttl, placed = dur, 1
end
level = level or 1
local ends = now + ttl
if #KEYS > 1 then
  redis.call("ZADD", KEYS[2], "GT", ends, ARGV[2])
  if redis.call("PTTL", KEYS[2]) < ttl then
    redis.call("PEXPIRE", KEYS[2], ttl)
  end
end
return { ttl, level, placed, ends }
