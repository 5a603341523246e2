"""qtap_fluent.cli."""
