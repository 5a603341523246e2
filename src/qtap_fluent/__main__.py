"""``python -m qtap_fluent``."""

from qtap_fluent.cli.main import entry

entry()
