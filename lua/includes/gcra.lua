-- Pasted into the scripts that read GCRA buckets (lua-scripts.ts); expects
-- `now` (ms) in scope.

-- The debt of a bucket whose value is v ("<debt>:<ms it was written>", or
-- nil: none) at now, drained at n scaled units per elapsed ms.
local function debt_now(v, n)
  if not v then return 0 end
  local sep = string.find(v, ":", 1, true)
  local d = tonumber(string.sub(v, 1, sep - 1))
  local elapsed = now - tonumber(string.sub(v, sep + 1))
  if elapsed > 0 then
    local drained = elapsed * n
    if drained >= d then return 0 end
    return d - drained
  end
  return d
end
