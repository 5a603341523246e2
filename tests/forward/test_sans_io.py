"""The protocol modules stay sans-I/O (STYLE principle 1): no sockets, loops, threads, clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qtap_fluent.fluentbit import forward

PACKAGE = Path(forward.__file__).parent
SANS_IO = ["events.py", "encode.py", "codec.py", "handshake.py", "connection.py", "batcher.py"]
BANNED = {"socket", "asyncio", "threading", "time", "select", "ssl", "os", "random", "secrets"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", SANS_IO)
def test_protocol_module_does_no_io(name: str) -> None:
    assert imported_modules(PACKAGE / name) & BANNED == set()
