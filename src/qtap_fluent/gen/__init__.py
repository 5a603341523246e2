"""``qtap-fluent gen``: from a Qtap YAML to a complete Fluent Bit deployment (files as bytes)."""
