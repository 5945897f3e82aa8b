-- Argo CD health check for azsnap.io/SnapshotPolicy.
-- Install as argocd-cm key `resource.customizations.health.azsnap.io_SnapshotPolicy` (see docs/install.md).
--
-- Rules, first match wins (docs/policy-reference.md, "Health"):
--   Progressing  metadata.deletionTimestamp is set (the finalizer is retaining or deleting snapshots)
--   Progressing  no status yet, or status.observedGeneration differs from metadata.generation
--   Degraded     Stalled=True (the message says what to fix: also stale, missed, failed or over budget)
--   Degraded     Ready=False (a retry is pending; the message says what failed)
--   Degraded     status.nextSnapshotTime lies more than OVERDUE_SECONDS in the past: a due snapshot was
--                not taken and the operator did not say why (it is probably not running)
--   Suspended    spec.suspend is true
--   Healthy      Ready=True
--   Progressing  otherwise (no verdict from the operator yet)
--
-- Argo CD runs custom health checks without the Lua standard `string` and `math` libraries and with a
-- reduced `os` (time, date). The script therefore never slices strings: it compares RFC 3339 UTC
-- timestamps (as the operator writes them: "2026-01-02T03:04:05Z") as strings against a cutoff it
-- builds from os.date("!*t").

local OVERDUE_SECONDS = 3600

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local function pad(n)
  if n < 10 then
    return "0" .. n
  end
  return "" .. n
end

local function days_in_month(year, month)
  local days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if month == 2 and ((year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0) then
    return 29
  end
  return days[month]
end

-- UTC now minus `seconds` (less than a day), formatted like the operator's timestamps.
local function utc_cutoff(seconds)
  local t = os.date("!*t")
  local year, month, day = t.year, t.month, t.day
  local hour, min, sec = t.hour, t.min, t.sec
  -- No division: Lua 5.3+ would turn the parts into floats ("02.0").
  local back_h, back_m, rest = 0, 0, seconds
  while rest >= 3600 do
    rest = rest - 3600
    back_h = back_h + 1
  end
  while rest >= 60 do
    rest = rest - 60
    back_m = back_m + 1
  end
  sec = sec - rest
  if sec < 0 then
    sec = sec + 60
    min = min - 1
  end
  min = min - back_m
  if min < 0 then
    min = min + 60
    hour = hour - 1
  end
  hour = hour - back_h
  if hour < 0 then
    hour = hour + 24
    day = day - 1
  end
  if day < 1 then
    month = month - 1
    if month < 1 then
      month = 12
      year = year - 1
    end
    day = days_in_month(year, month)
  end
  return year .. "-" .. pad(month) .. "-" .. pad(day) .. "T" .. pad(hour) .. ":" .. pad(min) .. ":" .. pad(sec) .. "Z"
end

local hs = {}

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: the operator is applying spec.deletionPolicy before it removes its finalizer"
  return hs
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. (generation or "?")
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end

local next_time = status.nextSnapshotTime
if type(next_time) == "string" and next_time ~= "" and next_time < utc_cutoff(OVERDUE_SECONDS) then
  hs.status = "Degraded"
  hs.message = "Snapshot due at " .. next_time .. " has not been taken; check that the operator is running"
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Policy is suspended: no snapshots are taken or deleted"
  return hs
end

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to report Ready"
return hs
