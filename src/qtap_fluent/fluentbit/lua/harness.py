"""Run a Fluent Bit Lua filter under real LuaJIT 2.1 with Fluent Bit's conventions.

Fluent Bit's ``filter_lua`` (``plugins/filter_lua/lua.c``, ``src/flb_lua.c``) calls
``cb(tag, timestamp, record)`` once per record of a chunk and reads back ``code, timestamp,
record``. This harness reproduces that contract so the bundled scripts can be tested without a
``fluent-bit`` binary:

* records cross as msgpack, decoded and encoded *inside* the Lua state by
  ``assets/lua/flb_harness_codec.lua`` with Fluent Bit's rules (integral numbers become ints,
  ``nil`` drops keys, tables remember whether they came from an array or a map, a fresh empty
  ``{}`` is an empty map, ``type_int_key``/``type_array_key`` match by key prefix);
* return codes -1 (drop), 0 (keep), 1 (new timestamp and record), 2 (new record), anything else
  (keep, with a warning); an array of maps splits a record, and an array holding anything else
  leaves the **whole chunk** untouched;
* timestamps as a double (``sec + nsec/1e9``, so code 1 can lose nanoseconds) or
  ``{sec=, nsec=}`` with ``time_as_table`` -- where a returned timestamp that is not a table
  makes Fluent Bit pack that timestamp in place of the record (it is never popped), which
  leaves the chunk untouched for codes 1 and 2;
* ``protected_mode``: a Lua error leaves the whole chunk untouched; without it, an error is what
  would abort Fluent Bit, raised here as :class:`LuaPanic`.

Every convention above is also checked against a real ``fluent-bit`` binary by
``tests/lua/test_lua_fluentbit.py`` when one is installed.

Known differences, refused loudly instead of approximated: the metadata-aware 5-argument
callback, ``enable_flb_null`` (needs a NULL light userdata that Lua code cannot create), and
values Fluent Bit cannot serialise (functions, userdata, threads: Fluent Bit writes a corrupt
record; the harness raises :class:`HarnessError`).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from qtap_fluent.errors import QtapFluentError

#: Fluent Bit splits type_int_key/type_array_key on spaces into at most this many keys
#: (``FLB_LUA_L2C_TYPES_NUM_MAX`` in include/fluent-bit/flb_lua.h).
L2C_TYPES_NUM_MAX = 16

_CODEC_ASSET = "flb_harness_codec.lua"


class HarnessError(QtapFluentError):
    """The script cannot be run as Fluent Bit would run it (load error, missing function...)."""


class LuaPanic(HarnessError):
    """A Lua error outside protected mode: Fluent Bit would abort the whole process."""


@dataclass(frozen=True, slots=True)
class FlbTime:
    """A Fluent Bit timestamp (``struct flb_time``): whole seconds and nanoseconds."""

    sec: int
    nsec: int = 0

    @classmethod
    def coerce(cls, value: FlbTime | float | tuple[int, int]) -> FlbTime:
        """Accept a float/int epoch, a ``(sec, nsec)`` pair or an :class:`FlbTime`."""
        if isinstance(value, FlbTime):
            return value
        if isinstance(value, tuple):
            return cls(int(value[0]), int(value[1]))
        if isinstance(value, int):
            return cls(value, 0)
        # flb_time_from_double(): truncation toward zero on both parts
        sec = int(value)
        return cls(sec, int((value - sec) * 1_000_000_000))

    def as_float(self) -> float:
        """``flb_time_to_double()``: what a classic callback receives."""
        return float(self.sec) + float(self.nsec) / 1e9


@dataclass(slots=True)
class RunResult:
    """What one chunk gave back, plus what Fluent Bit would have logged."""

    events: list[tuple[FlbTime, dict[Any, Any]]]
    untouched: bool = False  #: FLB_FILTER_NOTOUCH: the chunk left the filter as it came in
    log: list[str] = field(default_factory=list)


def _load_codec_source() -> str:
    return (importlib.resources.files("qtap_fluent") / "assets" / "lua" / _CODEC_ASSET).read_text(
        encoding="utf-8"
    )


def _runtime() -> tuple[Any, type[Exception]]:
    """A fresh LuaJIT 2.1 state (each Fluent Bit filter instance gets one) and lupa's LuaError."""
    try:
        import lupa.luajit21 as lj
    except ImportError:  # older lupa: the default runtime may still be LuaJIT
        import lupa as lj
    rt = lj.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    version = rt.eval("jit and jit.version or _VERSION")
    if not isinstance(version, bytes) or not version.startswith(b"LuaJIT 2.1"):
        raise HarnessError(f"Fluent Bit embeds LuaJIT 2.1; lupa provides {version!r}")
    rt.execute("python = nil")
    return rt, lj.LuaError


def _split_keys(value: str | None) -> list[str]:
    return (value or "").split()[:L2C_TYPES_NUM_MAX]


class LuaFilterHarness:
    """One ``[FILTER] Name lua`` instance: the script loaded once, then chunks pushed through.

    ``options`` take Fluent Bit's property names: ``protected_mode`` (default True),
    ``time_as_table`` (default False), ``type_int_key`` and ``type_array_key`` (space-separated
    strings or sequences of key names). ``enable_flb_null`` is refused (see the module doc).
    """

    def __init__(
        self,
        script_text: str,
        call: str,
        *,
        protected_mode: bool = True,
        time_as_table: bool = False,
        type_int_key: str | Sequence[str] | None = None,
        type_array_key: str | Sequence[str] | None = None,
        enable_flb_null: bool = False,
        env: Mapping[str, str] | None = None,
        chunkname: str = "fluentbit.lua",
    ) -> None:
        if enable_flb_null:
            raise HarnessError("enable_flb_null is not reproduced by the harness")
        self.call = call
        self.protected_mode = protected_mode
        self.time_as_table = time_as_table
        self._rt, self._lua_error = _runtime()
        lua_load = self._rt.eval("loadstring")
        codec_fn, err = _pair(lua_load(_load_codec_source().encode(), b"=flb_harness_codec"))
        if codec_fn is None:
            raise HarnessError(f"harness codec failed to load: {err!r}")
        self._codec = codec_fn()
        # FLB_ENV: Fluent Bit's environment/config variables, set before the script runs.
        env_table = self._rt.table_from({k.encode(): v.encode() for k, v in (env or {}).items()})
        self._rt.globals()[b"FLB_ENV"] = env_table
        # luaL_loadbuffer + lua_pcall (cb_lua_init): syntax or top-level errors refuse to start.
        chunk, err = _pair(lua_load(script_text.encode("utf-8"), chunkname.encode()))
        if chunk is None:
            raise HarnessError(f"invalid lua content: {_text(err)}")
        ok, err = _pair(self._rt.eval("pcall")(chunk))
        if not ok:
            raise HarnessError(f"invalid lua content: {_text(err)}")
        fn = self._rt.globals()[call.encode()]
        if self._rt.eval("type")(fn) != b"function":
            raise HarnessError(f"function {call} is not found")
        nparams = int(self._codec.nparams(fn))
        if nparams >= 5:
            raise HarnessError(
                f"{call}() takes {nparams} parameters: the metadata-aware callback is not "
                "reproduced by the harness"
            )
        self._fn = fn
        l2c = [{b"key": k.encode(), b"kind": 0} for k in _as_list(type_int_key)]
        l2c += [{b"key": k.encode(), b"kind": 1} for k in _as_list(type_array_key)]
        self._l2c = self._rt.table_from([self._rt.table_from(e) for e in l2c])

    # -- public API -------------------------------------------------------------------------
    def run(
        self,
        tag: str,
        ts: FlbTime | float | tuple[int, int],
        records: Iterable[Mapping[Any, Any]],
    ) -> list[tuple[FlbTime, dict[Any, Any]]]:
        """Push one chunk of ``records`` (all stamped ``ts``); return what leaves the filter."""
        t = FlbTime.coerce(ts)
        return self.run_chunk(tag, [(t, r) for r in records]).events

    def run_chunk(
        self,
        tag: str,
        events: Sequence[tuple[FlbTime | float | int | tuple[int, int], Mapping[Any, Any]]],
    ) -> RunResult:
        """Push one chunk of ``(timestamp, record)`` events; report output and log lines."""
        packed = [(FlbTime.coerce(ts), msgpack.packb(rec, use_bin_type=True)) for ts, rec in events]
        original = [(t, _unpack(b)) for t, b in packed]
        log: list[str] = []
        out: list[tuple[FlbTime, dict[Any, Any]]] = []
        step = self._codec.step
        tag_b = tag.encode()
        for (t, body), (_, orig) in zip(packed, original):
            try:
                res = step(
                    self._fn, tag_b, t.sec, t.nsec, body, self.time_as_table,
                    self.protected_mode, self._l2c, lambda m: log.append(_text(m)),
                )
            except self._lua_error as exc:  # an unprotected Lua error
                if "qtap-harness:" in str(exc):
                    raise HarnessError(str(exc)) from None
                raise LuaPanic(f"{self.call}(): {exc}") from None
            if not isinstance(res, tuple):
                res = (res,)
            status = res[0]
            if status == b"error":
                message = _text(res[1])
                if "qtap-harness:" in message:
                    raise HarnessError(message)
                log.append(f"error code 2: {message}")
                return RunResult(events=original, untouched=True, log=log)
            if status == b"drop":
                continue
            if status == b"keep":
                code = int(res[1])
                if code != 0:
                    log.append(
                        f"unexpected Lua script return code {code}, original record will be kept."
                    )
                out.append((t, orig))
                continue
            new_t = FlbTime(int(res[1]), int(res[2]))
            value = _unpack(res[3])
            records = _as_records(value)
            if records is None:
                log.append(f"invalid table returned at {self.call}(), script")
                return RunResult(events=original, untouched=True, log=log)
            out.extend((new_t, r) for r in records)
        return RunResult(events=out, untouched=False, log=log)

    def roundtrip(self, value: Any, *, array_keys: Sequence[str] = (), int_keys: Sequence[str] = ()
                  ) -> Any:
        """msgpack -> Lua -> msgpack for one value (codec conformance checks)."""
        l2c = [self._rt.table_from({b"key": k.encode(), b"kind": 0}) for k in int_keys]
        l2c += [self._rt.table_from({b"key": k.encode(), b"kind": 1}) for k in array_keys]
        lua_value = self._codec.decode(msgpack.packb(value, use_bin_type=True))
        return _unpack(self._codec.encode(lua_value, self._rt.table_from(l2c)))

    def lua(self, source: str) -> Any:
        """Evaluate a Lua expression in the filter's state (for tests)."""
        return self._rt.eval(source)


def check_script(script_text: str, call: str, chunkname: str = "fluentbit.lua") -> str | None:
    """What Fluent Bit's filter init would refuse about ``script``/``call``, or None.

    Loads the script into a fresh LuaJIT state, runs its top level and looks up the global
    function (``cb_lua_init``): the checks ``fluent-bit --dry-run`` skips for ``call``.
    """
    try:
        LuaFilterHarness(script_text, call, chunkname=chunkname)
    except HarnessError as exc:
        if "metadata-aware" in str(exc):
            return None  # Fluent Bit accepts it; only the harness cannot run it
        return str(exc)
    return None


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None or isinstance(value, str):
        return _split_keys(value)
    return list(value)[:L2C_TYPES_NUM_MAX]


def _pair(value: Any) -> tuple[Any, Any]:
    """lupa returns a tuple only for several Lua results; pad single results."""
    if isinstance(value, tuple):
        return (value[0], value[1] if len(value) > 1 else None)
    return (value, None)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _unpack(data: bytes) -> Any:
    # Fluent Bit packs every Lua string as msgpack str, whatever its bytes; keep invalid UTF-8
    # visible instead of failing (surrogateescape round-trips it).
    return msgpack.unpackb(data, raw=False, strict_map_key=False,
                           unicode_errors="surrogateescape")


def _as_records(value: Any) -> list[dict[Any, Any]] | None:
    """``pack_result()``: a map is one record, an array must hold only maps (possibly none)."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    return None
