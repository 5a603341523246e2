"""Offsets inside a YAML scalar map back to the line and column the user typed."""

from __future__ import annotations

import pytest

from qtap_fluent.qtap.positions import locate
from qtap_fluent.yamlpos import load


def where(text: str, key: str, offset: int) -> tuple[int, int]:
    data, problems = load(text, "p.yaml")
    assert not problems
    return locate(text, data.value_mark(key), data[key], offset)


@pytest.mark.parametrize(("text", "offset", "expected"), [
    ("expr: a == b\n", 5, (1, 12)),
    ("expr:    a == b   # comment\n", 0, (1, 10)),
    ("expr: 'x == ''y'' and z'\n", 9, (1, 19)),   # '' is one character
    ('expr: "a\\tb == x"\n', 4, (1, 13)),   # an escape is one character
    ('expr: "a == b"\n', 5, (1, 13)),
    ("expr: a == b\n", 6, (1, 13)),          # the end of the value
    ("expr: |\n  a ==\n  b ==\n", 7, (3, 5)),
    ("expr: |\n  a ==\n  b ==\n", 5, (3, 3)),
    ("expr: >\n  a ==\n  b\n", 5, (3, 3)),
    ("expr: a and\n  b or\n  c\n", 8, (2, 5)),  # plain scalars fold lines into spaces
    ("expr: 'a and\n  b'\n", 6, (2, 3)),
])
def test_locate(text: str, offset: int, expected: tuple[int, int]) -> None:
    assert where(text, "expr", offset) == expected


def test_unknown_shapes_fall_back_to_the_scalar_start() -> None:
    text = 'expr: "a\\x41b"\n'  # \x41 is one value character but four source characters
    data, _ = load(text, "p.yaml")
    assert locate(text, (1, 7), data["expr"], 2) in {(1, 7), (1, 10)}
    assert locate(text, (9, 9), "x", 0) == (9, 9)
    assert locate(text, (1, 7), "abc", 99) == (1, 7)
