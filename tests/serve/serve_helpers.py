"""Helpers for serve tests: a serve subprocess and a forward sender that waits for acks."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack

from qtap_fluent.fluentbit.forward.codec import encode_forward

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.05)


class Serve:
    """A ``python -m qtap_fluent.serve`` process; ``port`` read from its 'listening' line."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self.logf = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "qtap_fluent.serve", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.logf,
                                     env={**os.environ, **AWS_ENV})
        self.port = self._wait_listening()

    def _wait_listening(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            found = re.findall(r"listening for forward on [^ ]+:(\d+)", text)
            if found:
                return int(found[-1])
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("serve did not log its listening line")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.logf.close()
        return code


class Sender:
    """Forward-mode chunks with a chunk id each; ``send`` returns True when acked."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, tag: str, records: list[dict[str, Any]], t: float = 1_700_000_000.0) -> bool:
        chunk = secrets.token_hex(8)
        self.sock.sendall(encode_forward(tag, [(t, r) for r in records], chunk=chunk))
        try:
            while True:
                for obj in self.unpacker:
                    return bool(isinstance(obj, dict) and obj.get("ack") == chunk)
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.unpacker.feed(data)
        except OSError:
            return False

    def close(self) -> None:
        self.sock.close()
