"""The Argo CD health check for SnapshotPolicy, run by a real Lua interpreter in a sandbox shaped like Argo CD's."""

from __future__ import annotations

import importlib.resources
from datetime import datetime
from typing import Any, Final

import lupa.lua51
import lupa.lua54

__all__ = ["RUNTIMES", "SCRIPT", "health"]

SCRIPT: Final = (importlib.resources.files("azsnap") / "data" / "argocd-health.lua").read_text()

# Argo CD opens only the base and table libraries plus a safe `os` (time, date) for custom checks,
# and its interpreter (gopher-lua) speaks Lua 5.1. The sandbox below gives the script exactly that,
# with string methods unreachable, and lets a test pin "now".
SANDBOX = """
local src, fixed = ...
getmetatable("").__index = nil
local real_os = os
local clock = {
  time = real_os.time,
  date = function(fmt)
    if fixed == nil then return real_os.date(fmt) end
    if fmt ~= "!*t" then error("the test clock only answers os.date('!*t'), got " .. tostring(fmt)) end
    return {year = fixed.year, month = fixed.month, day = fixed.day,
            hour = fixed.hour, min = fixed.min, sec = fixed.sec}
  end,
}
local env = {ipairs = ipairs, pairs = pairs, type = type, tostring = tostring, tonumber = tonumber,
             error = error, next = next, select = select, table = table, os = clock}
env.obj = OBJ
local chunk
if setfenv then
  chunk = setfenv(assert(loadstring(src, "health.lua")), env)
else
  chunk = assert(load(src, "health.lua", "t", env))
end
local hs = chunk()
return hs.status, hs.message
"""

RUNTIMES = {"lua5.1": lupa.lua51.LuaRuntime, "lua5.4": lupa.lua54.LuaRuntime}


def health(obj: dict[str, Any], now: datetime | None, lua: str = "lua5.1") -> tuple[str, str]:
    runtime = RUNTIMES[lua](unpack_returned_tuples=True)
    runtime.globals().OBJ = runtime.table_from(obj, recursive=True)
    fixed = None
    if now is not None:
        fixed = runtime.table_from(
            {
                "year": now.year,
                "month": now.month,
                "day": now.day,
                "hour": now.hour,
                "min": now.minute,
                "sec": now.second,
            }
        )
    status, message = runtime.execute(SANDBOX, SCRIPT, fixed)
    return str(status), str(message)
