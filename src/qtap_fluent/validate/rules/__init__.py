"""Validator rules owned by ``validate``: compose schema, cross-file and security rules.

One module per scope; each registers its rules with ``qtap_fluent.validate.registry`` when
imported, and ``registry.RULE_MODULES`` lists them. Fluent Bit rules live in
``qtap_fluent.fluentbit.config.checks``, Qtap rules with the Qtap model.
"""
