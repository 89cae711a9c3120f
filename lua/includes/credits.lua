-- Pasted, after calendar.lua, into the scripts that read or write a credit
-- balance by their include line (lua-scripts.ts); expects `floor` and `now`
-- (ms, from Redis TIME) in scope.

-- Credits: a balance lives for CREDIT_TTL_MS after its last write (calendar-window.ts).
local CREDIT_TTL_MS = 63072000000

-- The credit refill period containing now: an id growing by one per period
-- (0: no refill; the day number daily; monthly the month id of the day
-- `dom - 1` days earlier, so a period runs from one month's day `dom` to the
-- next's) and the next refill in ms (0: none). Mirrors creditPeriod.
local function credit_period(refill, dom)
  local day = floor(now / 86400000)
  if refill == 1 then return day, (day + 1) * 86400000 end
  if refill ~= 2 then return 0, 0 end
  local y, m = civil(day - (dom - 1))
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return y * 12 + m, (month_start(ny, nm) + dom - 1) * 86400000
end

-- A balance stored in period `from`, refilled for period `to`: replace mode
-- (cap < 0) gives the amount, add mode adds it per period up to the cap and
-- never lowers a topped-up balance. Only a write stores the new period id,
-- and the script is atomic: each period refills once. Mirrors refilledBalance.
local function refilled(amount, cap, refill, from, bal, to)
  if refill == 0 or to <= from then return bal end
  if cap < 0 then return amount end
  if bal >= cap then return bal end
  if (to - from) * amount >= cap - bal then return cap end
  return bal + (to - from) * amount
end
