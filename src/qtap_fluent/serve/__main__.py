"""``python -m qtap_fluent.serve [flags]``: the same as ``qtap-fluent serve [flags]``."""

from __future__ import annotations

import sys

from qtap_fluent.cli import main as cli


def main() -> int:
    if "serve" in cli.COMMANDS:
        return cli.main(["serve", *sys.argv[1:]])
    # Until the dispatcher lists ``serve``: the same parser and error mapping, standalone.
    import argparse

    from qtap_fluent.cli import cmd_serve
    from qtap_fluent.errors import ConfigError, QtapFluentError, UsageError

    parser = argparse.ArgumentParser(prog="qtap-fluent serve", description=cmd_serve.__doc__)
    cmd_serve.add_arguments(parser)
    args = parser.parse_args()
    try:
        return cmd_serve.run(args)
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
        return 130


if __name__ == "__main__":
    sys.exit(main())
