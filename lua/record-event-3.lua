-- Records one security event: marks its idempotency id (unless it has none to
-- keep: Tollgate's own events have generated ids), appends it to its stream
-- shard, then trims the shard oldest first until it is within its bounds of
-- count, bytes and age. Redis TIME is the clock; the three keys share the
-- shard's hash tag (one slot) and expire with the retention.
--
-- Bytes are counted as each entry's JSON plus OVERHEAD (Redis's own cost of a
-- stream entry, roughly), plus MARK for an entry whose id was marked (its
-- marker's cost; such entries carry the field "m"), kept in KEYS[3] with the
-- number of marked entries as entries come and go; a lost count is
-- re-estimated from the newest entries. A shard keeps no more markers than
-- marked entries: a repeated id is recognised while the shard could still
-- hold its event (within the retention, among its newest entries).
--
-- KEYS[1]  the shard's idempotency markers (sorted set: id digest → recorded at, in
--          ms × 1000 + the stream entry's sequence (≤ 999), so markers recorded in one
--          millisecond keep their order: trimming by rank drops the oldest, never a tie
--          broken by digest; markers of older versions, in plain ms, read as expired)
-- KEYS[2]  the stream shard (field "e": the event JSON; "m": present if marked)
-- KEYS[3]  the shard's counts (hash: b bytes, m marked entries)
-- ARGV[1]  retention, ms (> 0)
-- ARGV[2]  most entries kept in this shard
-- ARGV[3]  most bytes kept in this shard
-- ARGV[4]  the id digest to mark, or "" to mark nothing
-- ARGV[5]  the event, JSON
-- Returns  the new entry id, or "" if the id was marked already (nothing written)

local OVERHEAD = 64
local MARK = 128
-- Most entries one call trims: the work per call stays bounded; a larger
-- backlog (after a settings change) is trimmed by the next appends.
local MAX_TRIM = 1000
local retention = tonumber(ARGV[1])
local maxlen = tonumber(ARGV[2])
local maxbytes = tonumber(ARGV[3])
local mark = ARGV[4]
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - retention

-- Reads before the first write, and that first write is XADD: Redis refuses a
-- script at its first write when over maxmemory only if that write may grow
-- memory, so an OOM Redis refuses the whole call instead of letting it in.
if mark ~= "" then
  local seen = redis.call("ZSCORE", KEYS[1], mark)
  if seen and tonumber(seen) >= cutoff * 1000 then
    return ""
  end
end

local function size(fields)
  local n = OVERHEAD
  for i = 1, #fields, 2 do
    if fields[i] == "e" then n = n + #fields[i + 1] elseif fields[i] == "m" then n = n + MARK end
  end
  return n
end

local function marked(fields)
  for i = 1, #fields, 2 do
    if fields[i] == "m" then return 1 end
  end
  return 0
end

local len = redis.call("XLEN", KEYS[2])
local bytes, marks = 0, 0
if len > 0 then
  local c = redis.call("HMGET", KEYS[3], "b", "m")
  bytes, marks = tonumber(c[1]), tonumber(c[2])
  if not bytes or not marks then
    local sample = redis.call("XREVRANGE", KEYS[2], "+", "-", "COUNT", 16)
    local sum, m = 0, 0
    for _, e in ipairs(sample) do
      sum = sum + size(e[2])
      m = m + marked(e[2])
    end
    local n = math.max(#sample, 1)
    bytes = math.floor(sum / n * len)
    marks = math.floor(m / n * len + 0.5)
  end
end
local id
if mark ~= "" then
  id = redis.call("XADD", KEYS[2], "*", "e", ARGV[5], "m", "1")
  bytes = bytes + #ARGV[5] + OVERHEAD + MARK
  marks = marks + 1
else
  id = redis.call("XADD", KEYS[2], "*", "e", ARGV[5])
  bytes = bytes + #ARGV[5] + OVERHEAD
end
len = len + 1

-- Oldest first, while any bound is exceeded; never the entry just added.
local start, last, removed, done = "-", nil, 0, false
while not done do
  local batch = redis.call("XRANGE", KEYS[2], start, "+", "COUNT", 64)
  if #batch == 0 then break end
  for _, e in ipairs(batch) do
    local eid = e[1]
    local ms = tonumber(string.match(eid, "^(%d+)"))
    if eid == id or removed >= MAX_TRIM or not (len > maxlen or bytes > maxbytes or ms < cutoff) then
      done = true
      break
    end
    bytes = bytes - size(e[2])
    marks = marks - marked(e[2])
    len = len - 1
    last = eid
    removed = removed + 1
  end
  if last then start = "(" .. last end
end
if last then
  local ms, seq = string.match(last, "^(%d+)-(%d+)$")
  redis.call("XTRIM", KEYS[2], "MINID", ms .. "-" .. string.format("%.0f", tonumber(seq) + 1))
end
if bytes < 0 then bytes = 0 end
if marks < 0 then marks = 0 end
redis.call("HSET", KEYS[3], "b", string.format("%.0f", bytes), "m", marks)
redis.call("PEXPIRE", KEYS[3], retention)
redis.call("PEXPIRE", KEYS[2], retention)

redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. string.format("%.0f", cutoff * 1000))
if mark ~= "" then
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  local score = tonumber(ms) * 1000 + math.min(tonumber(seq), 999)
  redis.call("ZADD", KEYS[1], string.format("%.0f", score), mark)
end
local held = redis.call("ZCARD", KEYS[1])
if held > marks then
  redis.call("ZREMRANGEBYRANK", KEYS[1], 0, held - marks - 1)
end
if held > 0 then
  redis.call("PEXPIRE", KEYS[1], retention)
end
return id
