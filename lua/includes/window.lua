-- Pasted into the scripts that keep quotas (lua-scripts.ts); expects `floor`,
-- `now` (ms) and calendar.lua's civil and month_start in scope.

-- Window id and end (ms) of the calendar window containing now
-- (code 1 day, 2 ISO week, 3 month, UTC).
local function window(code)
  local day = floor(now / 86400000)
  if code == 1 then
    return day, (day + 1) * 86400000
  elseif code == 2 then
    -- ISO weeks start on Monday; 1970-01-01 was a Thursday.
    local w = floor((day + 3) / 7)
    return w, ((w + 1) * 7 - 3) * 86400000
  end
  local y, m = civil(day)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return y * 12 + m, month_start(ny, nm) * 86400000
end
