"""Tests of qtap_fluent.fluentbit.forward."""
