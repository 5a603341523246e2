"""lua filter: the script exists and compiles in LuaJIT 2.1 (what dry-run checks), and the
``call`` function exists (what only a real start finds: ``function %s is not found``).

How ``call`` is checked: the compiled chunk is *run* in a fresh LuaJIT runtime (lupa), in an
environment with only pure standard functions (no ``io``, ``require``, ``load``, ``os.execute``),
JIT off and an instruction-count hook that stops it after 10 million instructions; then the
global named by ``call`` must be a function — what Fluent Bit's ``lua_getglobal`` sees after
running the script. When the chunk cannot run in that sandbox (it requires a module, touches
``io``...), a static scan for a global ``function NAME(`` / ``NAME = function`` decides instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from qtap_fluent.fluentbit.config.checks.base import FluentBitView, at_entry, at_section
from qtap_fluent.fluentbit.config.model import FILTER, ConfigFile, Section
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

#: Ours: a script's top-level code may run this many VM instructions in the sandbox.
MAX_INSTRUCTIONS = 10_000_000
#: Ours: scripts larger than this are not compiled.
MAX_SCRIPT = 8 * 1024 * 1024

_SANDBOX = """
local src, name, call, limit = ...
local fn, err = load(src, name, "t")  -- text only: never run precompiled bytecode
if not fn then return "syntax", err end
jit.off()
local env = {
  string = string, table = table, math = math, bit = bit, coroutine = coroutine,
  pairs = pairs, ipairs = ipairs, next = next, type = type, select = select,
  tostring = tostring, tonumber = tonumber, error = error, assert = assert,
  pcall = pcall, xpcall = xpcall, unpack = unpack, rawget = rawget, rawset = rawset,
  rawequal = rawequal, setmetatable = setmetatable, getmetatable = getmetatable,
  print = function() end, FLB_ENV = {},
  os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime,
         getenv = function() return nil end },
}
env._G = env
setfenv(fn, env)
debug.sethook(function() error("top-level code ran too long", 2) end, "", limit)
local ok, rerr = pcall(fn)
debug.sethook()
if not ok then return "runtime", tostring(rerr) end
return "ok", type(rawget(env, call))
"""

_GLOBAL_FN = (r"(?m)^[ \t]*function[ \t]+{name}[ \t]*\(",
              r"(?m)^[ \t]*{name}[ \t]*=[ \t]*function\b")
_LINE = re.compile(r"^[^\n]*?:(\d+):\s*(.*)$", re.DOTALL)


@lru_cache(maxsize=64)
def _run(source: str, chunk: str, call: str) -> tuple[str, str]:
    """``("syntax", msg)``, ``("runtime", msg)`` or ``("ok", type of the call global)``."""
    from lupa import luajit21  # lazy: validate should start fast

    runtime = luajit21.LuaRuntime(register_eval=False, register_builtins=False)
    result: Any = runtime.execute(_SANDBOX, source, "=" + chunk, call, MAX_INSTRUCTIONS)
    status, detail = result
    return str(status), str(detail)


def _defines_statically(source: str, call: str) -> bool:
    name = re.escape(call)
    return any(re.search(p.format(name=name), source) for p in _GLOBAL_FN)


def _script(view: FluentBitView, config: ConfigFile,
            s: Section) -> tuple[str | None, str, str | None]:
    """``(source, chunk name, why not)`` of a lua filter; ``code`` wins over ``script``."""
    code = s.entry("code")
    if code is not None:
        return code.value, f"{config.path} (code)", None
    script = s.entry("script")
    if script is None or not script.value:
        return None, "", "lua filter needs 'script' or 'code' (Fluent Bit: no script path defined)"
    path = view.host_path(config, script.value)
    try:
        if os.path.getsize(path) > MAX_SCRIPT:
            return None, path, f"script {script.value} is larger than {MAX_SCRIPT} bytes"
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="replace"), path, None
    except OSError as exc:
        return None, path, f"cannot read script '{script.value}' ({path}): {exc.strerror or exc}"


def _lua_filters(view: FluentBitView) -> Iterator[tuple[ConfigFile, Section]]:
    for config in view.fluentbit:
        for s in config.of(FILTER):
            if s.plugin == "lua":
                yield config, s


@register("fb-lua-script", Level.ERROR, "lua",
          "lua filter script/code missing, unreadable or not compiling in LuaJIT 2.1")
def lua_script(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _lua_filters(view):
        source, chunk, why = _script(view, config, s)
        where = s.entry("code") or s.entry("script")
        if why is not None:
            if where is not None:
                yield at_entry(where, config, Level.ERROR, "fb-lua-script", why, value=True)
            else:
                yield at_section(s, config, Level.ERROR, "fb-lua-script", why)
            continue
        if source is None:
            continue
        status, detail = _run(source, chunk, s.get("call") or "")
        if status != "syntax":
            continue
        m = _LINE.match(detail)
        line, msg = (int(m.group(1)), m.group(2)) if m else (1, detail)
        if s.entry("code") is None and where is not None and where.span is not None:
            origin = f"{where.span.path}:{where.span.line}"
            yield Problem(path=chunk, line=line, col=1, level=Level.ERROR, rule="fb-lua-script",
                          message=f"Lua syntax error: {msg} (script of the lua filter at "
                                  f"{origin})")
        elif where is not None:
            yield at_entry(where, config, Level.ERROR, "fb-lua-script",
                           f"Lua syntax error in code (line {line}): {msg}", value=True)


@register("fb-lua-call", Level.ERROR, "lua",
          "lua filter 'call' missing or naming a function the script does not define globally")
def lua_call(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _lua_filters(view):
        call = s.entry("call")
        if call is None or not call.value:
            yield at_section(s, config, Level.ERROR, "fb-lua-call",
                             "lua filter without 'call' (the function each record is passed to)")
            continue
        source, chunk, _why = _script(view, config, s)
        if source is None or call.unresolved:
            continue  # fb-lua-script reports it
        status, detail = _run(source, chunk, call.value)
        if status == "syntax":
            continue
        if status == "ok":
            if detail == "function":
                continue
            found = "not defined" if detail == "nil" else f"a {detail}, not a function"
            yield at_entry(call, config, Level.ERROR, "fb-lua-call",
                           f"call '{call.value}': the script leaves global '{call.value}' "
                           f"{found} (a 'local function' is not visible to Fluent Bit)",
                           value=True)
        elif not _defines_statically(source, call.value):
            yield at_entry(call, config, Level.ERROR, "fb-lua-call",
                           f"call '{call.value}': no global 'function {call.value}(' in the "
                           f"script (its top-level code could not run in the check sandbox: "
                           f"{detail})", value=True)
