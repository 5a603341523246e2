"""``stdout`` sink: one JSON object per line (Fluent Bit's ``Format json_lines``)."""

from __future__ import annotations

import sys
from typing import BinaryIO

from qtap_fluent.sinks.base import Batch, Result, json_lines


class StdoutSink:
    """Write every record as a JSON line to ``stream`` (default: the process's stdout)."""

    name = "stdout"

    def __init__(self, *, stream: BinaryIO | None = None, json_date_key: str | None = "date"):
        self._stream = stream
        self._date_key = json_date_key
        self.records_out = 0

    def open(self) -> None:
        if self._stream is None:
            self._stream = sys.stdout.buffer

    def write(self, batch: Batch) -> Result:
        assert self._stream is not None, "open() first"
        data = json_lines(batch.entries, self._date_key)
        try:
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError:
            # The reader went away: nothing we write will ever be read.
            return Result.ERROR
        except OSError:
            return Result.RETRY
        self.records_out += len(batch)
        return Result.OK

    def flush(self, now: float, *, force: bool = False) -> Result:
        return Result.OK

    def close(self) -> Result:
        return Result.OK
