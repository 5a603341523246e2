"""Where the agent's records go: ``stdout``, ``file`` (one record per line) or ``forward``.

One registry (``OUTPUTS``); each output has open / write / close, and write answers OK, RETRY or
ERROR like the sinks (``qtap_fluent.sinks.base.Result``). ``stdout`` and ``file`` write exactly
what Qtap writes for a transaction (its JSON line, or the text block); ``forward`` sends the
``docker`` or ``structured`` shape (``qtap_fluent.records``) with the reliable forward client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from qtap_fluent.errors import UsageError
from qtap_fluent.records import docker_shape
from qtap_fluent.sinks.base import Result

#: Result members as constants: an enum member lookup costs ~1,000 instructions in CPython 3.11.
_OK, _RETRY, _ERROR = Result.OK, Result.RETRY, Result.ERROR
DEFAULT_TAG = "docker.qtap"
DEFAULT_FORWARD = "127.0.0.1:24224"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputOptions:
    path: str = ""
    forward: str = DEFAULT_FORWARD
    tag: str = DEFAULT_TAG
    shape: str = "docker"
    container_id: str = ""  #: the agent's own container, for the docker shape
    container_name: str = "/qtap"


class Output(Protocol):
    """``write`` gets one transaction: its Qtap map (``HttpTransaction.to_dict``'s shape; read
    it, never change it: ``records.from_dict`` gives the typed record), the line ``stdout``
    writes (JSON or text), and the transaction time in nanoseconds since the epoch."""

    name: str

    def open(self) -> None: ...

    def write(self, record: dict[str, Any], line: str, time_ns: int) -> Result: ...

    def close(self) -> Result: ...


class StreamOutput:
    """Lines to a binary stream (stdout) or an append-only file."""

    def __init__(self, name: str, stream: BinaryIO | None = None, path: str = "") -> None:
        self.name = name
        self._stream = stream
        self._path = path
        self._owned = False

    def open(self) -> None:
        if self._stream is None and self._path:
            try:
                self._stream = open(self._path, "ab")  # noqa: SIM115 - closed in close()
            except OSError as exc:
                raise UsageError(f"--file {self._path}: {exc.strerror}") from None
            self._owned = True
        elif self._stream is None:
            self._stream = sys.stdout.buffer

    def write(self, record: dict[str, Any], line: str, time_ns: int) -> Result:
        assert self._stream is not None, "open() first"
        data = line if line.endswith("\n") else line + "\n"
        try:
            self._stream.write(data.encode("utf-8"))
        except BrokenPipeError:
            return _ERROR
        except OSError:
            return _RETRY
        return _OK

    def close(self) -> Result:
        if self._stream is None:
            return _OK
        try:
            self._stream.flush()
            if self._owned:
                os.fsync(self._stream.fileno())
                self._stream.close()
        except OSError:
            return _ERROR
        return _OK


class ForwardOutput:
    """Records over the forward protocol (acks on), as ``docker`` or ``structured`` maps."""

    name = "forward"

    def __init__(self, options: OutputOptions, client_factory: Callable[..., Any] | None = None):
        host, sep, port = options.forward.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise UsageError(f"--forward {options.forward!r}: expected HOST:PORT")
        self.host, self.port = host.strip("[]"), int(port)
        self.options = options
        self._factory = client_factory
        self._client: Any = None

    def open(self) -> None:
        factory = self._factory
        if factory is None:
            from qtap_fluent.fluentbit.forward.client import ForwardClient

            factory = ForwardClient
        self._client = factory(self.host, self.port, require_ack=True)

    def write(self, record: dict[str, Any], line: str, time_ns: int) -> Result:
        o = self.options
        body: dict[str, Any]
        if o.shape == "structured":
            body = record  # structured_shape: the transaction map itself
        else:
            body = docker_shape(line.rstrip("\n"), o.container_id, o.container_name)
        self._client.emit(o.tag, body, time_ns / 1e9)
        return _OK

    def close(self) -> Result:
        if self._client is None:
            return _OK
        return _OK if self._client.close(timeout=30.0) else _RETRY


def _stdout(o: OutputOptions) -> Output:
    return StreamOutput("stdout")


def _file(o: OutputOptions) -> Output:
    if not o.path:
        raise UsageError("--sink file needs --file PATH")
    return StreamOutput("file", path=o.path)


def _forward(o: OutputOptions) -> Output:
    return ForwardOutput(o)


OUTPUTS: dict[str, Callable[[OutputOptions], Output]] = {
    "stdout": _stdout, "file": _file, "forward": _forward,
}
