"""A forward receiver in its own process (killed and restarted by the reliability test).

Usage: python3 receiver_proc.py PORT OUTFILE. Appends the ``i`` field of every accepted
record to OUTFILE as big-endian uint32 *before* the batch is acknowledged, prints ``ready``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys

from qtap_fluent.fluentbit.forward.events import Entry
from qtap_fluent.fluentbit.forward.server import ForwardServer

_I = struct.Struct(">I")


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def consumer(batch: list[Entry]) -> bool:
        os.write(fd, b"".join(_I.pack(rec["i"]) for _, _, rec, _ in batch))
        return True

    async def run() -> None:
        server = ForwardServer(consumer, host="127.0.0.1", port=port)
        await server.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
