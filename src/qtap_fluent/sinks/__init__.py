"""Outputs: open / write(batch) -> OK | RETRY | ERROR / flush / close, and the ``SINKS`` registry.

Importing this package imports neither boto3 nor any sink module; ``registry.build_sink`` does.
"""

from qtap_fluent.sinks.base import Batch, Entry, Result, Sink, SinkError
from qtap_fluent.sinks.registry import SINKS, SinkContext, build_sink

__all__ = ["SINKS", "Batch", "Entry", "Result", "Sink", "SinkContext", "SinkError", "build_sink"]
