"""Sans-I/O protocol parsers: bytes in, ``protocols.events`` out; no sockets, no clocks.

``detect`` classifies a connection from its first bytes; ``http1`` (one llhttp request parser
and one response parser per connection) and ``http2`` (hyperframe frames, one hpack decoder per
direction) share ``feed_client`` / ``feed_server`` / ``gap_client`` / ``gap_server`` /
``close`` / ``discard`` and a ``state`` of "http", "tunnel" or "desync"; ``body`` bounds and
decodes message bodies. Every parser is tested for split-invariance (tests/agent/splitting.py).
"""
