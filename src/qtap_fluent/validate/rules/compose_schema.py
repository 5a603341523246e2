"""Rule ``compose-schema``: docker compose files against the compose-spec JSON schema.

The schema is the copy check-jsonschema vendors (``builtin_schemas/vendor/compose-spec.json``).
It is located with ``importlib.util.find_spec`` rather than ``importlib.resources.files``: the
latter imports the ``check_jsonschema`` package, whose CLI imports take ~280 ms here, more than
half the time budget of a whole ``validate`` run. ``jsonschema`` itself (~100 ms) is imported
only when a compose file is present.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register
from qtap_fluent.yamlpos import Mark, YList, YMap

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import Deployment

SCHEMA_PACKAGE = "check_jsonschema"
SCHEMA_RESOURCE = ("builtin_schemas", "vendor", "compose-spec.json")
#: Long instance reprs in jsonschema messages are cut to this many characters.
MAX_MESSAGE = 300


def _schema_text() -> str:
    spec = importlib.util.find_spec(SCHEMA_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for base in locations:
        path = os.path.join(base, *SCHEMA_RESOURCE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                return fh.read()
    # Not a plain folder (zip import...): let importlib.resources find it, slowly.
    from importlib import resources

    resource = resources.files(f"{SCHEMA_PACKAGE}.builtin_schemas.vendor")
    return resource.joinpath(SCHEMA_RESOURCE[-1]).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def validator() -> Any:
    """The compose-spec validator, built once per process."""
    import jsonschema.validators

    schema = json.loads(_schema_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _step_mark(node: Any, step: Any, as_key: bool) -> tuple[Any, Mark | None]:
    if isinstance(node, YMap) and step in node:
        return node[step], (node.key_mark(step) if as_key else node.value_mark(step))
    if isinstance(node, YList) and isinstance(step, int) and 0 <= step < len(node):
        return node[step], node.item_mark(step)
    return None, None


def locate(data: YMap, path: Sequence[Any], key: Any = None) -> Mark:
    """Where the value at ``path`` (or its key ``key``) was written."""
    node: Any = data
    mark: Mark = data.mark
    for step in path:
        node, found = _step_mark(node, step, as_key=False)
        if found is None:
            return mark
        mark = found
    if key is not None and isinstance(node, YMap) and key in node:
        return node.key_mark(key)
    return mark


def _dotted(path: Sequence[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(top level)"


def _known(schema: Any, root: dict[str, Any], depth: int = 0) -> tuple[set[str], list[str]]:
    """Property names and patterns ``schema`` allows, through ``allOf``/``$ref`` as well."""
    names: set[str] = set()
    patterns: list[str] = []
    if not isinstance(schema, dict) or depth > 20:
        return names, patterns
    names.update(schema.get("properties", {}))
    patterns.extend(schema.get("patternProperties", {}))
    ref = schema.get("$ref")
    subs = list(schema.get("allOf", [])) + list(schema.get("anyOf", []))
    subs += list(schema.get("oneOf", []))
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        subs.append(node)
    for sub in subs:
        more, more_patterns = _known(sub, root, depth + 1)
        names |= more
        patterns += more_patterns
    return names, patterns


def _unknown_keys(error: Any, root: dict[str, Any]) -> list[Any] | None:
    """For an additional/unevaluated-properties error, the keys the schema does not name.

    None for other errors. jsonschema also reports ``unevaluatedProperties`` for *known* keys
    when another subschema of the same object failed (nothing got "evaluated"); such keys are
    left out, and an error left with no key is dropped: the real error is reported on its own.
    """
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return None
    if not isinstance(error.instance, dict):
        return []
    names, patterns = _known(error.schema, root)
    return [key for key in error.instance
            if key not in names and not any(re.search(p, str(key)) for p in patterns)]


def _deepest(error: Any) -> Any:
    # anyOf/oneOf errors say only "not valid under any of the given schemas"; the most
    # relevant sub-error (jsonschema.exceptions.best_match) says what is actually wrong.
    if error.context:
        from jsonschema.exceptions import best_match

        return best_match(error.context) or error
    return error


@register("compose-schema", Level.ERROR, "compose",
          "docker compose file does not follow the compose-spec schema (check-jsonschema copy)")
def check_compose_schema(deployment: Deployment) -> Iterator[Problem]:
    for doc in deployment.compose:
        if not isinstance(doc.data, YMap):
            continue  # did not load: the YAML problem is already reported
        bad_keys = list(_non_string_keys(doc.data))
        for mark, key in bad_keys:
            yield _problem(doc.path, mark[0], mark[1],
                           f"mapping key {key!r} is not a string (compose keys are names)")
        if bad_keys:
            continue  # JSON Schema is defined over string keys only
        check = validator()
        errors = sorted(check.iter_errors(doc.data), key=lambda e: list(map(str, e.path)))
        for error in errors:
            best = _deepest(error)
            path = list(best.absolute_path)
            unknown = _unknown_keys(best, check.schema)
            if unknown is None:
                line, col = locate(doc.data, path)
                yield _problem(doc.path, line, col, f"{_dotted(path)}: {best.message}")
                continue
            for key in unknown:
                line, col = locate(doc.data, path, key)
                yield _problem(doc.path, line, col,
                               f"{_dotted(path)}: unknown key {key!r} (not in the compose spec)")


def _non_string_keys(node: Any, depth: int = 0) -> Iterator[tuple[Mark, Any]]:
    if depth > 100:
        return
    if isinstance(node, YMap):
        for key, value in node.items():
            if not isinstance(key, str):
                yield node.key_mark(key), key
            yield from _non_string_keys(value, depth + 1)
    elif isinstance(node, YList):
        for item in node:
            yield from _non_string_keys(item, depth + 1)


def _problem(path: str, line: int, col: int, message: str) -> Problem:
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "..."
    return Problem(path=path, line=line, col=col, level=Level.ERROR, rule="compose-schema",
                   message=message)
