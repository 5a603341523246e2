"""``python -m qtap_fluent.serve [flags]``: the same as ``qtap-fluent serve [flags]``."""

from __future__ import annotations

import sys

from qtap_fluent.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
