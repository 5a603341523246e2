"""qtap_fluent.sinks."""
