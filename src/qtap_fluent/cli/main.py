"""``qtap-fluent``: parse the command line, dispatch to one subcommand, map errors to exit codes.

Exit codes: 0 ok, 1 problems found or the command failed, 2 usage error, 130 interrupted.
Each subcommand is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; the registry below is the one place that lists them. Subcommand modules
are imported only when listed here, and keep their heavy imports inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from qtap_fluent import __version__
from qtap_fluent.errors import ConfigError, QtapFluentError, UsageError

#: Subcommands shown by ``--help``, in this order: only those that work.
COMMANDS: tuple[str, ...] = ("agent", "serve", "gen", "validate")


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"qtap_fluent.cli.cmd_{name}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qtap-fluent",
        description="Capture every HTTP transaction on a Linux host and route it through "
        "Fluent Bit.",
    )
    parser.add_argument("--version", action="version", version=f"qtap-fluent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = _load(name)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``qtap-fluent`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args._run(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            fmt = getattr(problem, "format", None)
            print(fmt() if fmt else problem, file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except QtapFluentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
