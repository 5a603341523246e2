"""The ``serve`` plugin API and how plugins are found.

**Filter.** A factory called with the section's options returns a callable::

    def make(options: Mapping[str, Any]) -> FilterFn: ...
    def fn(tag: str, time: float, record: dict) -> dict | list[dict] | None: ...

returning the record (changed or not), a list of records (split; each keeps the tag and time)
or ``None`` (drop). **Output.** A factory called with the options returns a sink
(``qtap_fluent.sinks.base.Sink``): ``open()``, ``write(batch) -> Result.OK|RETRY|ERROR``,
``flush(now, force=)`` and ``close()``; the runner retries on RETRY.

**Where from.** In a section, ``name:`` picks a built-in (``FILTERS`` in ``filters.py``,
``SINKS`` in ``qtap_fluent.sinks``); ``plugin:`` names a factory either by dotted path
(``package.module:factory`` or ``package.module.factory``) or by the name of an entry point in
the group ``qtap_fluent.plugins``. A plugin that raises is counted per plugin and reported in the
log and the metrics; the record it was handling is passed on unchanged (filters) or the batch is
retried (outputs). It never stops the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from qtap_fluent.errors import QtapFluentError

Record = dict[str, Any]
FilterResult = Record | list[Record] | None
FilterFn = Callable[[str, float, Record], FilterResult]
FilterFactory = Callable[[Mapping[str, Any]], FilterFn]

ENTRY_POINT_GROUP = "qtap_fluent.plugins"


class PluginError(QtapFluentError):
    """A plugin could not be found, loaded or built (bad options)."""


def load_object(ref: str) -> Any:
    """Resolve ``module:attr``, ``module.attr`` or an entry-point name to an object."""
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
    elif "." in ref:
        module_name, _, attr = ref.rpartition(".")
    else:
        return _entry_point(ref)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # A dotted name that is not a module may still be an entry point named like one.
        try:
            return _entry_point(ref)
        except PluginError:
            raise PluginError(f"plugin {ref!r}: cannot import {module_name!r}: {exc}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"plugin {ref!r}: {module_name!r} has no attribute "
                              f"{attr!r}") from None
    return obj


def _entry_point(name: str) -> Any:
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    for ep in found:
        try:
            return ep.load()
        except Exception as exc:  # noqa: BLE001 - third-party import failure: report it
            raise PluginError(f"plugin {name!r} (entry point {ep.value}): "
                              f"{type(exc).__name__}: {exc}") from None
    raise PluginError(f"plugin {name!r}: no module path and no entry point of that name in "
                      f"group {ENTRY_POINT_GROUP!r}")


def build(ref: str, options: Mapping[str, Any]) -> Any:
    """Load the factory ``ref`` and call it with ``options``; PluginError on any failure."""
    factory = load_object(ref)
    if not callable(factory):
        raise PluginError(f"plugin {ref!r} is not callable")
    try:
        return factory(dict(options))
    except QtapFluentError:
        raise
    except Exception as exc:  # noqa: BLE001 - plugin's own validation: clear message
        raise PluginError(f"plugin {ref!r}: {type(exc).__name__}: {exc}") from None
