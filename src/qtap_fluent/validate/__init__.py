"""``qtap-fluent validate``: load a deployment, run every registered rule, return problems."""
