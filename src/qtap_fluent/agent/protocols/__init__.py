"""qtap_fluent.agent.protocols."""
