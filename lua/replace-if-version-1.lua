-- Compare-and-set of a JSON record: replace it only if its stored version matches.
-- KEYS[1]  the record key
-- ARGV[1]  the expected current version (integer)
-- ARGV[2]  the new record, JSON, whose version is ARGV[1] + 1
-- Returns  1 if replaced, 0 if the record is missing or its version differs.
local current = redis.call("GET", KEYS[1])
if not current then
  return 0
end
local decoded = cjson.decode(current)
if tonumber(decoded["version"]) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call("SET", KEYS[1], ARGV[2], "KEEPTTL")
return 1
