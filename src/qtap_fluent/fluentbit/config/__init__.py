"""qtap_fluent.fluentbit.config."""
