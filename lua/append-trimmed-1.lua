-- Appends one entry to a capped stream (alerts), trimming it by length and by
-- age, and keeps the stream's own expiry at the retention. Redis TIME is the clock.
--
-- KEYS[1]  the stream
-- ARGV[1]  retention, ms (> 0)
-- ARGV[2]  most entries kept (exact MAXLEN)
-- ARGV[3]  the entry, JSON (stored in field "e")
-- Returns  the new entry id

local retention = tonumber(ARGV[1])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call("XADD", KEYS[1], "MAXLEN", ARGV[2], "*", "e", ARGV[3])
redis.call("XTRIM", KEYS[1], "MINID", string.format("%.0f", now - retention))
redis.call("PEXPIRE", KEYS[1], retention)
return id
