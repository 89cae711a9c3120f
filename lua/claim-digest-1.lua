-- Indexes a digest to a key id unless another key holds it (imports).
-- KEYS[1]  the digest index entry
-- ARGV[1]  the key id
-- ARGV[2]  when the entry expires, epoch ms (0: never)
-- Returns  1 if the entry was made, 2 if it was this id's already (its
--          expiry is set again), 0 if another id holds it (left as it is).
local held = redis.call("GET", KEYS[1])
if held and held ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call("SET", KEYS[1], ARGV[1], "PXAT", ARGV[2])
else
  redis.call("SET", KEYS[1], ARGV[1])
end
if held then
  return 2
end
return 1
