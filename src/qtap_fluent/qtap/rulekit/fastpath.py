"""Specialised closures for the comparisons rules use most: a field against a number or a
string literal. One class check and one Python comparison when the field has the expected
type; anything else falls back to the general table in ``values.compare``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from math import isnan
from typing import Any

from qtap_fluent.qtap.rulekit import values as V
from qtap_fluent.qtap.rulekit.errors import EvalError

Context = Mapping[str, Any]
Fn = Callable[[Context], Any]


_NUMERIC_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    V.GE: lambda a, b: a >= b, V.GT: lambda a, b: a > b, V.LE: lambda a, b: a <= b,
    V.LT: lambda a, b: a < b, V.EQ: lambda a, b: a == b, V.NE: lambda a, b: a != b,
}


def numeric_fast_path(left: Fn, op: str, lit: float) -> Fn:
    """``field >= 400`` and friends: one type check and one comparison when the field is a
    number (the usual case); anything else goes through the general table."""
    compare = V.compare
    if op == V.GE:  # the guide's rule gets a closure with the test inlined
        def ge(ctx: Context) -> Any:
            lv = left(ctx)
            cls = lv.__class__
            if cls is int or (cls is float and not isnan(lv)):  # NaN: general table
                return lv >= lit
            return lv if cls is EvalError else compare(lv, op, lit)
        return ge
    test = _NUMERIC_TESTS[op]

    def numeric(ctx: Context) -> Any:
        lv = left(ctx)
        cls = lv.__class__
        if cls is int or (cls is float and not isnan(lv)):
            return test(lv, lit)
        return lv if cls is EvalError else compare(lv, op, lit)
    return numeric


def string_fast_path(left: Fn, op: str, lit: str) -> Fn:
    """``field == "GET"``: a plain string comparison when the field is a string."""
    compare = V.compare
    if op == V.EQ:
        def eq(ctx: Context) -> Any:
            lv = left(ctx)
            cls = lv.__class__
            if cls is str:
                return lv == lit
            return lv if cls is EvalError else compare(lv, op, lit)
        return eq
    if op == V.NE:
        def ne(ctx: Context) -> Any:
            lv = left(ctx)
            cls = lv.__class__
            if cls is str:
                return lv != lit
            return lv if cls is EvalError else compare(lv, op, lit)
        return ne

    def contains(ctx: Context) -> Any:
        lv = left(ctx)
        cls = lv.__class__
        if cls is str:
            return lit in lv
        return lv if cls is EvalError else compare(lv, op, lit)
    return contains
