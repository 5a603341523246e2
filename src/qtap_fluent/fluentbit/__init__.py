"""qtap_fluent.fluentbit."""
