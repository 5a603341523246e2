"""qtap_fluent.qtap."""
