"""Tests of the Qtap config model and the rulekit expression language."""
