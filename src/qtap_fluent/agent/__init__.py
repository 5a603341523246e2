"""qtap_fluent.agent."""
