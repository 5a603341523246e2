"""Check a deployment (Qtap YAML, Fluent Bit configs in both formats, parsers files, Lua scripts,
docker compose files) for what fluent-bit --dry-run catches and what it misses.

Exit status: 0 clean, 1 errors found (warnings too with --strict), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys

from qtap_fluent.errors import UsageError
from qtap_fluent.problems import Level, worst

NAME = "validate"
HELP = "check Qtap, Fluent Bit and compose configs of a deployment for problems"

#: Kept here (not imported from cli.report) so that ``--help`` does not import the reporters.
FORMATS = ("text", "json", "sarif", "github")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", default=["."],
                        help="files or deployment folders (default: the current folder)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="output format (default: text, path:line:col: level: message "
                             "[rule])")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on warnings as well as errors")
    parser.add_argument("--list-rules", action="store_true",
                        help="print every rule: id, level, scope, what it checks; then exit")


def exit_status(level: Level | None, strict: bool) -> int:
    """0 clean, 1 when the worst problem is an error (or a warning with ``strict``)."""
    if level is None:
        return 0
    threshold = Level.WARNING if strict else Level.ERROR
    return 1 if level >= threshold else 0


def validate(paths: list[str], fmt: str, strict: bool) -> int:
    """Validate ``paths``, print the report in ``fmt`` on stdout, return the exit status."""
    from qtap_fluent.cli import report
    from qtap_fluent.validate import engine, registry

    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    result = engine.run(paths)
    sys.stdout.write(report.render(fmt, result.problems, registry.RULES, result.files))
    return exit_status(worst(result.problems), strict)


def list_rules() -> int:
    """Print the registry (``--list-rules``)."""
    from qtap_fluent.cli import report
    from qtap_fluent.validate import registry

    sys.stdout.write(report.render_rules(registry.load_all().values()))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_rules:
        return list_rules()
    return validate(list(args.paths), args.format, args.strict)
