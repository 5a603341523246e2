"""Process facts read from /proc (I/O: the runner passes these lookups into the pure core)."""

from __future__ import annotations

import re

# A container id is 64 hex digits in the cgroup path: docker-<id>.scope, /docker/<id>,
# cri-containerd-<id>.scope, crio-<id>.scope, /kubepods/.../<id> (qtap.md §4.2).
_CONTAINER_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{64})(?![0-9a-f])")


def container_id_from_cgroup(text: str) -> str | None:
    """The container id in the text of a /proc/<pid>/cgroup file, if there is one."""
    for line in text.splitlines():
        m = _CONTAINER_ID.search(line.rpartition(":")[2])
        if m:
            return m.group(1)
    return None


def container_id(pid: int, proc: str = "/proc") -> str | None:
    """``container_id_from_cgroup`` of a live process; None when unreadable or not in one."""
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            return container_id_from_cgroup(f.read())
    except OSError:
        return None
