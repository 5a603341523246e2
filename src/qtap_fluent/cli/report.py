"""Reporters: turn a list of ``Problem`` into text. Pure functions; the caller prints.

Four formats, chosen by ``validate --format``:

* ``text``: one ``path:line:col: level: message [rule]`` line per problem (``Problem.format``),
  the shape editors and ``grep`` understand, then a one-line summary.
* ``json``: ``{"problems": [...], "summary": {...}}`` for scripts.
* ``sarif``: SARIF 2.1.0 (OASIS standard), what GitHub code scanning and most CI dashboards
  ingest; the rule table comes from the validator registry.
* ``github``: GitHub Actions workflow commands (``::error file=…,line=…::message``), which
  the runner turns into annotations on the pull request diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from qtap_fluent import __version__
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import RuleInfo

FORMATS: tuple[str, ...] = ("text", "json", "sarif", "github")

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

#: SARIF ``level`` values (SARIF 2.1.0 §3.27.10) and GitHub command names per problem level.
_SARIF_LEVEL = {Level.ERROR: "error", Level.WARNING: "warning", Level.INFO: "note"}
_GITHUB_COMMAND = {Level.ERROR: "error", Level.WARNING: "warning", Level.INFO: "notice"}


def summary(problems: Sequence[Problem], files: int) -> dict[str, int]:
    """Counts per level plus the number of files checked."""
    return {
        "files": files,
        "errors": sum(1 for p in problems if p.level is Level.ERROR),
        "warnings": sum(1 for p in problems if p.level is Level.WARNING),
        "info": sum(1 for p in problems if p.level is Level.INFO),
    }


def render_text(problems: Sequence[Problem], rules: Mapping[str, RuleInfo], files: int) -> str:
    """``path:line:col: level: message [rule]`` lines, then ``N files checked: ...``."""
    lines = [p.format() for p in problems]
    s = summary(problems, files)
    lines.append(
        f"{s['files']} file(s) checked: {s['errors']} error(s), {s['warnings']} warning(s), "
        f"{s['info']} info"
    )
    return "\n".join(lines) + "\n"


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {
        "path": p.path,
        "line": p.line,
        "col": p.col,
        "level": str(p.level),
        "rule": p.rule,
        "message": p.message,
    }


def render_json(problems: Sequence[Problem], rules: Mapping[str, RuleInfo], files: int) -> str:
    """One JSON object: ``problems`` (a list) and ``summary`` (counts)."""
    doc = {"problems": [_problem_dict(p) for p in problems], "summary": summary(problems, files)}
    return json.dumps(doc, indent=2) + "\n"


def _uri(path: str) -> str:
    # SARIF artifactLocation.uri is a URI reference (§3.4.3): a relative path stays relative
    # (code scanning resolves it against the checkout), an absolute one becomes file://.
    from pathlib import Path
    from urllib.parse import quote

    if os.path.isabs(path):
        return Path(path).as_uri()
    return quote(path.replace(os.sep, "/"))


def render_sarif(problems: Sequence[Problem], rules: Mapping[str, RuleInfo], files: int) -> str:
    """A SARIF 2.1.0 log with one run; every registered rule is listed in the driver."""
    rule_ids = sorted(set(rules) | {p.rule for p in problems})
    index = {rid: i for i, rid in enumerate(rule_ids)}
    driver_rules = []
    for rid in rule_ids:
        info = rules.get(rid)
        entry: dict[str, Any] = {"id": rid}
        if info is not None:
            entry["shortDescription"] = {"text": info.doc}
            entry["defaultConfiguration"] = {"level": _SARIF_LEVEL[info.level]}
            entry["properties"] = {"scope": info.scope}
        driver_rules.append(entry)
    results = []
    for p in problems:
        results.append(
            {
                "ruleId": p.rule,
                "ruleIndex": index[p.rule],
                "level": _SARIF_LEVEL[p.level],
                "message": {"text": p.message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(p.path)},
                            "region": {"startLine": max(p.line, 1), "startColumn": max(p.col, 1)},
                        }
                    }
                ],
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "qtap-fluent",
                        "version": __version__,
                        "rules": driver_rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _gh_data(text: str) -> str:
    # Workflow-command escaping (actions/toolkit command.ts escapeData / escapeProperty).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(problems: Sequence[Problem], rules: Mapping[str, RuleInfo], files: int) -> str:
    """GitHub Actions annotations: ``::error file=…,line=…,col=…,title=rule::message``."""
    lines = []
    for p in problems:
        props = ",".join(
            [
                f"file={_gh_property(p.path)}",
                f"line={p.line}",
                f"col={p.col}",
                f"title={_gh_property(p.rule)}",
            ]
        )
        lines.append(f"::{_GITHUB_COMMAND[p.level]} {props}::{_gh_data(p.message)}")
    s = summary(problems, files)
    lines.append(
        f"qtap-fluent validate: {s['files']} file(s), {s['errors']} error(s), "
        f"{s['warnings']} warning(s), {s['info']} info"
    )
    return "\n".join(lines) + "\n"


Renderer = Callable[[Sequence[Problem], Mapping[str, RuleInfo], int], str]

RENDERERS: dict[str, Renderer] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
    "github": render_github,
}


def render(fmt: str, problems: Sequence[Problem], rules: Mapping[str, RuleInfo], files: int) -> str:
    """Render ``problems`` in format ``fmt`` (one of ``FORMATS``)."""
    return RENDERERS[fmt](problems, rules, files)


def render_rules(rules: Iterable[RuleInfo]) -> str:
    """The ``--list-rules`` table: id, level, scope, doc; one rule per line, by scope then id."""
    rows = sorted(rules, key=lambda r: (r.scope, r.id))
    if not rows:
        return ""
    width_id = max(len(r.id) for r in rows)
    width_scope = max(len(r.scope) for r in rows)
    out = [
        f"{r.id:<{width_id}}  {r.level!s:<7}  {r.scope:<{width_scope}}  {r.doc}" for r in rows
    ]
    return "\n".join(out) + "\n"
