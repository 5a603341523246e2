"""Recursive-descent parser for rulekit (qtap.md §2.1), equivalent to upstream's goyacc grammar.

Precedence, loosest first — **and**, then **or**, then **not**::

    expr    := or_expr ( AND or_expr )*          -- and/&& : loosest, left-associative
    or_expr := unary ( OR unary )*               -- or/||  : tighter than and
    unary   := NOT unary | "(" expr ")" | predicate
    predicate := operand ( ( == | != | contains ) operand
                         | ( > | >= | < | <= ) numeric    -- only between numbers and fields
                         | matches REGEX
                         | in ( ARRAY | CIDR )            -- ``x in CIDR`` is ``x == CIDR``
                         )?                               -- a lone operand tests truthiness
    operand := name "(" args? ")" | "[" value ("," value)* "]" | value

Upstream declares ``%left op_AND``, ``%left op_OR``, ``%right op_NOT`` in that order and goyacc
gives later declarations the tighter binding, so ``a and b or c`` means ``a and (b or c)`` —
the reverse of most languages. We keep upstream's reading; write parentheses around mixed
and/or. Values cannot be parenthesised: ``(`` always opens a condition.
"""

from __future__ import annotations

import re
import warnings

from qtap_fluent.qtap.rulekit import values as V
from qtap_fluent.qtap.rulekit.ast import (
    And,
    Array,
    Call,
    Compare,
    Field,
    In,
    Literal,
    Match,
    Node,
    Not,
    Or,
)
from qtap_fluent.qtap.rulekit.errors import RuleSyntaxError
from qtap_fluent.qtap.rulekit.lexer import Kind, Token, tokenize

#: Functions rulekit's own stdlib defines; their argument count is checked at parse time.
STDLIB_ARITY: dict[str, int] = {"starts_with": 2}

_EQ_OPS = {Kind.EQ: V.EQ, Kind.NE: V.NE, Kind.CONTAINS: V.CONTAINS}
_INEQ_OPS = {Kind.GT: V.GT, Kind.GE: V.GE, Kind.LT: V.LT, Kind.LE: V.LE}
_VALUE_KINDS = frozenset({Kind.INT, Kind.FLOAT, Kind.BOOL, Kind.STRING, Kind.IP, Kind.CIDR,
                          Kind.HEX, Kind.REGEX, Kind.FIELD, Kind.FUNCTION})

# RE2 (Go regexp) and Python ``re`` differ. RE2 refuses lookaround and backreferences, which
# Python accepts, so we refuse them too (qtap would fail to parse the rule); RE2's ``\z``,
# ``(?<name>…)`` and POSIX classes such as ``[[:digit:]]`` are rewritten to Python's spelling.
# ``\pL``/``\p{Greek}`` classes have no Python equivalent and are refused. Python's engine
# backtracks where RE2 is linear-time: a pathological pattern is slower here, never wrong.
_RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]|\\[pP]")
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7F", "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_POSIX_RX = re.compile(r"\[:(" + "|".join(_POSIX) + r"):\]")


def compile_regex(pattern: str, offset: int) -> re.Pattern[str]:
    """Compile an RE2 pattern with Python ``re``; RuleSyntaxError when either would refuse it."""
    bad = _RE2_UNSUPPORTED.search(pattern)
    if bad is not None:
        raise RuleSyntaxError(
            f"regex construct {bad.group()!r} is not supported by RE2 (Go regexp)",
            offset + 1 + bad.start())
    translated = pattern.replace("\\z", "\\Z").replace("(?<", "(?P<")
    translated = _POSIX_RX.sub(lambda m: _POSIX[m.group(1)], translated)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" FutureWarnings
            return re.compile(translated)
    except (re.error, OverflowError, RecursionError) as exc:
        raise RuleSyntaxError(f"bad regex /{pattern}/: {exc}", offset) from None


def _describe(tok: Token) -> str:
    if tok.kind is Kind.END:
        return "end of rule"
    return f"{tok.kind.value} {tok.text!r}" if tok.kind in _VALUE_KINDS else repr(tok.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.nesting = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind is not Kind.END:
            self.pos += 1
        return tok

    def fail(self, expected: str, tok: Token | None = None) -> RuleSyntaxError:
        tok = tok or self.tok
        return RuleSyntaxError(f"expected {expected}, found {_describe(tok)}", tok.offset)

    def at_end(self) -> bool:
        return self.tokens[self.pos].kind is Kind.END

    def parse(self) -> Node:
        if self.at_end():
            raise RuleSyntaxError("empty rule", 0)
        node = self.expr()
        if not self.at_end():
            raise self.fail("'and', 'or' or end of rule")
        return node

    def expr(self) -> Node:
        node = self.or_expr()
        while self.tok.kind is Kind.AND:
            self.advance()
            node = And(node, self.or_expr(), node.offset)
        return node

    def or_expr(self) -> Node:
        node = self.unary()
        while self.tok.kind is Kind.OR:
            self.advance()
            node = Or(node, self.unary(), node.offset)
        return node

    def unary(self) -> Node:
        tok = self.tok
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise RuleSyntaxError(f"rule nested too deeply (more than {MAX_DEPTH} levels)",
                                  tok.offset)
        try:
            return self._unary(tok)
        finally:
            self.nesting -= 1

    def _unary(self, tok: Token) -> Node:
        if tok.kind is Kind.NOT:
            self.advance()
            return Not(self.unary(), tok.offset)
        if tok.kind is Kind.LPAREN:
            self.advance()
            node = self.expr()
            if self.tok.kind is not Kind.RPAREN:
                raise self.fail("')'")
            self.advance()
            return node
        return self.predicate()

    def predicate(self) -> Node:
        left = self.operand()
        kind = self.tok.kind
        if kind in _EQ_OPS:
            self.advance()
            return Compare(left, _EQ_OPS[kind], self.operand(), left.offset)
        if kind in _INEQ_OPS:
            op_tok = self.advance()
            if not self._numeric(left):
                raise RuleSyntaxError(
                    f"{op_tok.text!r} compares numbers and fields only", op_tok.offset)
            right = self.operand()
            if not self._numeric(right):
                raise RuleSyntaxError(
                    f"{op_tok.text!r} compares numbers and fields only", right.offset)
            return Compare(left, _INEQ_OPS[kind], right, left.offset)
        if kind is Kind.MATCHES:
            self.advance()
            if self.tok.kind is not Kind.REGEX:
                raise self.fail("a regex /…/ or |…| after 'matches'")
            pattern = self.value()
            assert isinstance(pattern, Literal)
            return Match(left, pattern, left.offset)
        if kind is Kind.IN:
            self.advance()
            if self.tok.kind is Kind.LBRACKET:
                right = self.operand()
                assert isinstance(right, Array)
                return In(left, right, left.offset)
            if self.tok.kind is Kind.CIDR:
                return Compare(left, V.EQ, self.value(), left.offset)
            raise self.fail("an array [...] or a CIDR after 'in'")
        return left

    @staticmethod
    def _numeric(node: Node) -> bool:
        if isinstance(node, Field):
            return True
        return (isinstance(node, Literal) and node.value.__class__ in (int, float))

    def operand(self) -> Node:
        tok = self.tok
        if tok.kind is Kind.LBRACKET:
            self.advance()
            items = [self.value()]
            while self.tok.kind is Kind.COMMA:
                self.advance()
                items.append(self.value())
            if self.tok.kind is not Kind.RBRACKET:
                raise self.fail("',' or ']'")
            self.advance()
            return Array(tuple(items), tok.offset)
        nxt = self.tokens[self.pos + 1] if tok.kind is not Kind.END else tok
        if nxt.kind is Kind.LPAREN and tok.kind in (Kind.FUNCTION, Kind.HEX, Kind.FIELD):
            if tok.kind is Kind.FIELD:
                raise RuleSyntaxError(
                    f"function name {tok.text!r} may contain only letters, digits and '_'",
                    tok.offset)
            if tok.kind is Kind.FUNCTION:
                return self.call()
        return self.value()

    def call(self) -> Call:
        name = self.advance()
        self.advance()  # "("
        args: list[Node] = []
        if self.tok.kind is not Kind.RPAREN:
            args.append(self.operand())
            while self.tok.kind is Kind.COMMA:
                self.advance()
                args.append(self.operand())
        if self.tok.kind is not Kind.RPAREN:
            raise self.fail("',' or ')'")
        self.advance()
        arity = STDLIB_ARITY.get(name.text)
        if arity is not None and arity != len(args):
            raise RuleSyntaxError(
                f"function {name.text!r} expects {arity} arguments, got {len(args)}", name.offset)
        return Call(name.text, tuple(args), name.offset)

    def value(self) -> Node:
        tok = self.advance()
        kind, text = tok.kind, tok.text
        if kind is Kind.FIELD or kind is Kind.FUNCTION:
            # A bare name is a field: upstream cannot tell ``foo`` the field from a function.
            return Field(text, tok.offset)
        try:
            if kind is Kind.INT:
                return Literal(V.parse_int(text), text, tok.offset)
            if kind is Kind.FLOAT:
                return Literal(float(text), text, tok.offset)
            if kind is Kind.BOOL:
                return Literal(text.lower() == "true", text, tok.offset)
            if kind is Kind.STRING:
                return Literal(V.parse_string(text), text, tok.offset)
            if kind is Kind.IP:
                return Literal(V.parse_ip(text), text, tok.offset)
            if kind is Kind.CIDR:
                return Literal(V.parse_cidr(text), text, tok.offset)
            if kind is Kind.HEX:
                return Literal(V.parse_hex(text), text, tok.offset)
        except ValueError as exc:
            raise RuleSyntaxError(f"bad {kind.value} {text!r}: {exc}", tok.offset) from None
        if kind is Kind.REGEX:
            return Literal(compile_regex(text[1:-1], tok.offset), text, tok.offset)
        raise self.fail("a value", tok)


#: Deepest tree we accept: compiling and evaluating recurse once per level, and no real rule
#: comes near this (upstream has no limit; Go's stack would grow instead).
MAX_DEPTH = 200


def _depth(node: Node) -> int:
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(n, (And, Or, Compare)):
            stack += [(n.left, d + 1), (n.right, d + 1)]
        elif isinstance(n, Not):
            stack.append((n.operand, d + 1))
        elif isinstance(n, (Match, In)):
            stack.append((n.left, d + 1))
        elif isinstance(n, Call):
            stack += [(a, d + 1) for a in n.args]
    return deepest


def parse(text: str) -> Node:
    """Parse one rulekit expression into a tree; ``RuleSyntaxError`` if it does not parse."""
    try:
        node = _Parser(text).parse()
    except RecursionError:
        raise RuleSyntaxError(f"rule nested too deeply (more than {MAX_DEPTH} levels)",
                              0) from None
    if _depth(node) > MAX_DEPTH:
        raise RuleSyntaxError(f"rule nested too deeply (more than {MAX_DEPTH} levels)", 0)
    return node
