-- Records one security event once: marks its idempotency id and appends it to
-- its stream shard, atomically, then trims the shard by length and by age.
-- Redis TIME is the clock; both keys share the shard's hash tag (one slot).
--
-- KEYS[1]  idempotency key of the event id (value "1", expires with the retention)
-- KEYS[2]  the stream shard
-- ARGV[1]  retention, ms (> 0)
-- ARGV[2]  most entries kept in this shard (exact MAXLEN)
-- ARGV[3]  the event, JSON (stored in field "e")
-- Returns  the new entry id, or "" if the id was seen within the retention window

local retention = tonumber(ARGV[1])
if not redis.call("SET", KEYS[1], "1", "NX", "PX", retention) then
  return ""
end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call("XADD", KEYS[2], "MAXLEN", ARGV[2], "*", "e", ARGV[3])
redis.call("XTRIM", KEYS[2], "MINID", string.format("%.0f", now - retention))
redis.call("PEXPIRE", KEYS[2], retention)
return id
