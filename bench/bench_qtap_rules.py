"""Rulekit evaluation and Qtap config loading, side by side with peers in one run.

    python3 bench/bench_qtap_rules.py [--n 100000]

Rules (per transaction, what the agent does): our compiled closures vs (a) a tree-walking
interpreter over the same syntax tree (the obvious alternative design) and (b) a hand-written
Python lambda doing the same test (the floor: no rule language at all). Config: our
``load()`` (positions, typed model, every check) vs bare ``yaml.safe_load`` of the same text,
and the import time of ``qtap_fluent.qtap.config`` (what ``gen`` pays) vs ``import yaml``, each
the best of 5 fresh interpreters.
Timings are noisy on a shared machine: compare the ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from qtap_fluent.qtap.config import default_text, load
from qtap_fluent.qtap.rulekit import compile_rule, parse
from qtap_fluent.qtap.rulekit import values as V
from qtap_fluent.qtap.rulekit.ast import And, Compare, Field, Literal, Node, Not, Or

CTX: dict[str, Any] = {
    "http": {"req": {"method": "GET", "path": "/api/v1/users", "host": "api.example.com",
                     "headers": {"user-agent": "curl/8.5.0"}},
             "res": {"status": 503}},
    "dst": {"port": 443, "domain": "api.example.com"},
}
RULES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    ("http.res.status >= 400",
     lambda c: c["http"]["res"]["status"] >= 400),
    ('http.req.method == "GET" and http.res.status >= 500 and dst.port != 80',
     lambda c: c["http"]["req"]["method"] == "GET" and c["http"]["res"]["status"] >= 500
     and c["dst"]["port"] != 80),
    ('not (http.req.path contains "/health") or http.req.host == "x"',
     lambda c: "/health" not in c["http"]["req"]["path"] or c["http"]["req"]["host"] == "x"),
]


def _walk_lookup(ctx: Any, name: str) -> Any:
    for part in name.split("."):
        if not isinstance(ctx, dict) or part not in ctx:
            return None
        ctx = ctx[part]
    return ctx


def walk(node: Node, ctx: dict[str, Any]) -> Any:
    """The peer design: interpret the tree on every call."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Field):
        return _walk_lookup(ctx, node.name)
    if isinstance(node, Compare):
        return V.compare(walk(node.left, ctx), node.op, walk(node.right, ctx))
    if isinstance(node, And):
        return not V.is_zero(walk(node.left, ctx)) and not V.is_zero(walk(node.right, ctx))
    if isinstance(node, Or):
        return not V.is_zero(walk(node.left, ctx)) or not V.is_zero(walk(node.right, ctx))
    if isinstance(node, Not):
        return V.is_zero(walk(node.operand, ctx))
    raise TypeError(node)


def rate(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="evaluations per rule and design")
    args = ap.parse_args()
    print(f"{'rule':58} {'ours/s':>10} {'walker/s':>10} {'lambda/s':>10}  ours/walker "
          "ours/lambda")
    for text, native in RULES:
        rule, tree = compile_rule(text), parse(text)
        assert rule.matches(CTX) == bool(walk(tree, CTX)) == native(CTX), text
        ours = rate(lambda: rule.matches(CTX), args.n)  # noqa: B023
        walker = rate(lambda: walk(tree, CTX), args.n)  # noqa: B023
        floor = rate(lambda: native(CTX), args.n)  # noqa: B023
        print(f"{text[:58]:58} {ours:10.0f} {walker:10.0f} {floor:10.0f}  "
              f"{ours / walker:11.2f} {ours / floor:11.2f}")
    parses = rate(lambda: parse(RULES[1][0]), args.n // 20)
    print(f"parse+tree of rule 2: {parses:.0f}/s")
    text = default_text()
    loads = rate(lambda: load(text, "default.yaml"), 200)
    bare = rate(lambda: yaml.safe_load(text), 200)
    print(f"config: load() {loads:.0f}/s ({1000 / loads:.2f} ms), yaml.safe_load {bare:.0f}/s "
          f"({1000 / bare:.2f} ms), load/safe_load time ratio {bare / loads:.2f}")
    imports()


def import_ms(module: str, after: str = "") -> float:
    """Best-of-5 wall time to import ``module`` in a fresh interpreter (``after`` pre-imported)."""
    code = (f"import time{', ' + after if after else ''}; t = time.perf_counter(); "
            f"import {module}; print((time.perf_counter() - t) * 1000)")
    runs = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(5)]
    return min(runs)


def imports() -> None:
    ours = import_ms("qtap_fluent.qtap.config", after="yaml")
    peer = import_ms("yaml")
    print(f"import: qtap_fluent.qtap.config {ours:.1f} ms on top of yaml; import yaml "
          f"{peer:.1f} ms; ratio {ours / peer:.2f}")


if __name__ == "__main__":
    main()
