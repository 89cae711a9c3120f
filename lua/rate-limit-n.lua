-- One rate-limit decision, atomic: check blocks, evaluate every limit, and
-- charge all of them or none. Redis TIME is the clock, so replicas with skewed
-- clocks agree. Every key written is one of KEYS and gets an expiry.
--
-- GCRA is kept in exact integers: a bucket stores its "debt" d in scaled units
-- (ms × requests), where one request adds `period_ms` and each elapsed ms
-- drains `requests`. A request of cost c fits if d + c·period ≤ burst·period.
-- The policy loader guarantees burst·period < 2^53, so all arithmetic is exact.
-- Quotas store "<window id>:<count>" and reset when the UTC calendar window changes.
--
-- KEYS   for each of S blocking subjects: block key, offence key, denial key;
--        then one bucket key per limit (L of them)
-- ARGV[1]  default cost (integer ≥ 1), for limits whose own cost is 0
-- ARGV[2]  S, the number of blocking subjects
-- ARGV[3..8] blocking: after, within_ms, duration_ms, factor, max_ms, forget_ms
-- ARGV[9]  L, the number of limits
-- ARGV[10..] per limit, 6 values: kind (1 rate, 2 quota, 3 credits), shadow (0/1),
--          requests, period_ms (rate) or window (1 day, 2 week, 3 month), burst,
--          cost (0: the default cost). Credits: requests = the plan's amount,
--          period = refill (0 none, 1 daily, 2 monthly) × 100 + refill day
--          (1..28), burst = cap (add mode) or -1 (replace mode); its key holds
--          "<period id>:<balance>" and is refilled here, lazily, at the first
--          decision of a new period (see credit_period and refilled)
-- ARGV[10 + 6L] optional: "deny" makes the decision denied whatever the limits
--          say: nothing is charged, every limit reports what it has now, and a
--          denial is counted for the subjects (on Cluster, for the slots other
--          than the one that denied)
--          "force" (a usage report, after the response): charges every limit
--          its forced value whatever it says, never denies, counts no denial
--          and checks no block (S must be 0). A bucket may go past its limit:
--          a GCRA debt above burst·period, a quota used above its limit (both
--          capped at 2^53 − 1), so later decisions are denied until the debt
--          drains or the window ends. A limit of 0 (or burst 0) is not charged.
--          Each limit then reports remaining / reset after the charge, and
--          exceeded / retry_ms for a request of cost 1 after it (refused while
--          in debt or at the limit, until retry_ms)
-- ARGV[11 + 6L] with "force" and a marker key: the marker's time to live, ms
-- KEYS[3S + L + 1] with "force", optional: the report's idempotency marker (in
--          the buckets' slot). If it exists the report is a duplicate: nothing
--          is charged and every limit reports what it has now, exceeded /
--          retry_ms for a request of cost 1 as it stands (status 3);
--          else it is written in this script, with the charge
-- Returns  { status (0 ok, 1 limited, 2 blocked, 3 duplicate report), block_ms, blocked_subject (1-based or 0),
--            n_new, [subject index, block ms] × n_new,
--            [exceeded (0/1), remaining, reset_ms, retry_ms (-1: never)] × L }
--          remaining and reset_ms describe each bucket after the decision: with
--          this request's charge when it is allowed, as it stands (nothing was
--          charged) when it is denied, by this limit or any other

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local default_cost = tonumber(ARGV[1])
local S = tonumber(ARGV[2])
local L = tonumber(ARGV[9])
local floor = math.floor
local force = ARGV[10 + 6 * L] == "force"
if force and S > 0 then return redis.error_reply("force takes no blocking subject") end
local marker = force and KEYS[3 * S + L + 1] or nil
local duplicate = marker ~= nil and redis.call("EXISTS", marker) == 1
-- Largest integer a double holds exactly: the cap of a forced debt or count.
local MAX_EXACT = 9007199254740991

local function int(x)
  return string.format("%.0f", x)
end

local function ceil_div(a, b)
  return floor((a + b - 1) / b)
end

--!include calendar.lua
--!include window.lua
--!include gcra.lua

--!include credits.lua

-- 1. Blocks: a blocked subject is refused without charging anything.
local block_ms, blocked = 0, 0
for s = 1, S do
  local ttl = redis.call("PTTL", KEYS[3 * s - 2])
  if ttl > block_ms then
    block_ms, blocked = ttl, s
  end
end
if blocked > 0 then
  local out = { 2, block_ms, blocked, 0 }
  for _ = 1, L do
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = -1
  end
  return out
end

-- 2. Evaluate every limit without writing.
-- `forced`: every limit's state with this cost charged whatever the limit says
-- (the writes of "force"); each kind appends its own.
local results, writes, forced = {}, {}, {}
local denied = false
for i = 1, L do
  local a = 10 + (i - 1) * 6
  local kind, shadow = tonumber(ARGV[a]), ARGV[a + 1] == "1"
  local n, p, burst = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local cost = tonumber(ARGV[a + 5])
  if cost == 0 then cost = default_cost end
  local key = KEYS[3 * S + i]
  -- remaining / reset as the bucket stands, and as it would after the charge
  -- (if this limit admits the cost): step 3 reports one or the other.
  local exceeded, remaining, reset, retry, charged_remaining, charged_reset
  if kind == 1 then
    local d = debt_now(redis.call("GET", key), n)
    local cap = burst * p
    -- A debt past the burst (a usage report's) reports 0 remaining.
    remaining = (n > 0 and burst > 0) and math.max(0, floor((cap - d) / p)) or 0
    reset = n > 0 and ceil_div(d, n) or 0
    if n == 0 or burst == 0 or cost > burst then
      exceeded, retry = true, -1
    elseif d + cost * p <= cap then
      local nd = d + cost * p
      exceeded, retry = false, 0
      charged_remaining, charged_reset = floor((cap - nd) / p), ceil_div(nd, n)
      writes[#writes + 1] = { key, int(nd) .. ":" .. int(now), math.max(1, charged_reset), false }
    else
      exceeded, retry = true, ceil_div(d + cost * p - cap, n)
    end
    if force and n > 0 and burst > 0 then
      -- A duplicate charges nothing: it reports the bucket as it stands.
      local fd = duplicate and d or math.min(d + cost * p, MAX_EXACT)
      charged_remaining, charged_reset = math.max(0, floor((cap - fd) / p)), ceil_div(fd, n)
      -- Reported: whether a request of cost 1 is now refused, and for how long.
      retry = math.max(0, ceil_div(fd + p - cap, n))
      exceeded = retry > 0
      forced[#forced + 1] = { key, int(fd) .. ":" .. int(now), math.max(1, charged_reset), false }
    end
  elseif kind == 3 then
    local refill, dom = floor(p / 100), p % 100
    local pid, nxt = credit_period(refill, dom)
    local bal = n -- no balance stored: the plan's starting amount
    local v = redis.call("GET", key)
    if v then
      local sep = string.find(v, ":", 1, true)
      bal = refilled(n, burst, refill, tonumber(string.sub(v, 1, sep - 1)),
        tonumber(string.sub(v, sep + 1)), pid)
    end
    -- A debt (a usage report past the balance) reports 0 remaining.
    remaining, reset = math.max(0, bal), nxt > 0 and nxt - now or 0
    -- The balance after this charge whether or not it fits (may be negative):
    -- what a forced charge writes; a normal decision writes it only if it fits.
    local after = bal - cost
    local after_write = { key, int(pid) .. ":" .. int(after), CREDIT_TTL_MS, false }
    if bal >= cost then
      exceeded, retry = false, 0
      charged_remaining, charged_reset = after, reset
      writes[#writes + 1] = after_write
    else
      exceeded = true
      local next_bal = refilled(n, burst, refill, pid, bal, pid + 1)
      retry = (nxt > 0 and next_bal >= cost) and reset or -1
    end
    if force then
      -- A usage report: the debt stays (the balance may go below zero); a
      -- duplicate charges nothing and reports the balance as it stands.
      local fb = duplicate and bal or after
      charged_remaining, charged_reset = math.max(0, fb), reset
      exceeded = fb < 1
      retry = exceeded and ((nxt > 0) and reset or -1) or 0
      forced[#forced + 1] = { key, int(pid) .. ":" .. int(fb), CREDIT_TTL_MS, false }
    end
  else
    local id, wend = window(p)
    local used = 0
    local v = redis.call("GET", key)
    if v then
      local sep = string.find(v, ":", 1, true)
      if tonumber(string.sub(v, 1, sep - 1)) == id then
        used = tonumber(string.sub(v, sep + 1))
      end
    end
    remaining, reset = math.max(0, n - used), wend - now
    if used + cost <= n then
      exceeded, retry = false, 0
      charged_remaining, charged_reset = n - used - cost, reset
      writes[#writes + 1] = { key, int(id) .. ":" .. int(used + cost), wend, true }
    else
      exceeded = true
      retry = (cost <= n) and reset or -1
    end
    if force then
      local fu = duplicate and used or math.min(used + cost, MAX_EXACT)
      charged_remaining, charged_reset = math.max(0, n - fu), reset
      exceeded = fu >= n
      retry = exceeded and reset or 0
      forced[#forced + 1] = { key, int(id) .. ":" .. int(fu), wend, true }
    end
  end
  if exceeded and not shadow then denied = true end
  results[i] = {
    exceeded and 1 or 0, remaining, reset, retry,
    charged_remaining or remaining, charged_reset or reset,
  }
end

if ARGV[10 + 6 * L] == "deny" then denied = true end
-- A usage report charges its forced values (a duplicate: nothing) and never
-- denies; S is 0, so no denial is counted below.
if force then
  denied, writes = duplicate, forced
  if marker and not duplicate then
    redis.call("SET", marker, "1", "PX", tonumber(ARGV[11 + 6 * L]))
  end
end

-- 3. Charge all (allowed) or none (denied), counting denials toward blocks.
local new = {}
if not denied then
  for _, w in ipairs(writes) do
    if w[4] then
      redis.call("SET", w[1], w[2], "PXAT", w[3])
    else
      redis.call("SET", w[1], w[2], "PX", w[3])
    end
  end
elseif S > 0 then
  local after, within = tonumber(ARGV[3]), tonumber(ARGV[4])
  local base, factor = tonumber(ARGV[5]), tonumber(ARGV[6])
  local max, forget = tonumber(ARGV[7]), tonumber(ARGV[8])
  for s = 1, S do
    local dk = KEYS[3 * s]
    local c = redis.call("INCR", dk)
    if c == 1 then redis.call("PEXPIRE", dk, within) end
    if c >= after then
      local ok = KEYS[3 * s - 1]
      local level = redis.call("INCR", ok)
      local dur = math.min(max, floor(base * factor ^ (level - 1)))
      redis.call("PEXPIRE", ok, forget + dur)
      redis.call("SET", KEYS[3 * s - 2], level, "PX", dur)
      redis.call("DEL", dk)
      new[#new + 1] = { s, dur }
    end
  end
end

local out = { (force and duplicate) and 3 or (denied and 1 or 0), 0, 0, #new }
for _, b in ipairs(new) do
  out[#out + 1] = b[1]; out[#out + 1] = b[2]
end
for i = 1, L do
  local r = results[i]
  -- A denied decision charged nothing: every limit reports what it has now.
  out[#out + 1] = r[1]
  out[#out + 1] = denied and r[2] or r[5]
  out[#out + 1] = denied and r[3] or r[6]
  out[#out + 1] = r[4]
end
return out
