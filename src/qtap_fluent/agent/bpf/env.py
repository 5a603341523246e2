"""Is this host able to run the eBPF capture source? Returns data; the loader raises.

Each missing piece comes with the fix, so the one-line error a user sees says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qtap_fluent.agent.bpf import headers
from qtap_fluent.errors import QtapFluentError

SETUP = "scripts/setup-ebpf.sh"


@dataclass(frozen=True, slots=True, kw_only=True)
class Missing:
    piece: str
    fix: str

    def __str__(self) -> str:
        return f"{self.piece} (fix: {self.fix})"


class BpfUnavailable(QtapFluentError):
    """eBPF capture cannot start here; ``missing`` lists every piece that is absent."""

    def __init__(self, missing: list[Missing]) -> None:
        self.missing = list(missing)
        super().__init__("eBPF capture unavailable: " + "; ".join(str(m) for m in missing))


TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def tracefs_dir() -> Path | None:
    """The mounted tracefs (bcc reads tracepoint ids from it)."""
    for d in TRACEFS_DIRS:
        if (d / "events").is_dir():
            return d
    return None


def check(*, root: Path = Path("/")) -> list[Missing]:
    """Everything this host lacks for eBPF capture (empty list: good to go).

    ``root`` lets tests point the file checks at a fake tree.
    """
    missing: list[Missing] = []
    if os.geteuid() != 0:
        missing.append(Missing(piece="root privileges (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)",
                               fix="run qtap-fluent agent as root, or with those capabilities"))
    if not any((root / str(d).lstrip("/") / "events").is_dir() for d in TRACEFS_DIRS):
        missing.append(Missing(piece="tracefs is not mounted at /sys/kernel/tracing",
                               fix=f"mount -t tracefs tracefs /sys/kernel/tracing (or run {SETUP})"))
    if not (root / "sys/kernel/btf/vmlinux").exists():
        missing.append(Missing(piece="kernel BTF (/sys/kernel/btf/vmlinux)",
                               fix="use a kernel built with CONFIG_DEBUG_INFO_BTF=y"))
    if not (root / "sys/bus/event_source/devices/uprobe").exists():
        missing.append(Missing(piece="uprobes (/sys/bus/event_source/devices/uprobe)",
                               fix="use a kernel built with CONFIG_UPROBE_EVENTS=y"))
    if headers.find() is None and not headers.kernel_has_builtin_headers():
        missing.append(Missing(
            piece=f"kernel headers (none at BCC_KERNEL_SOURCE, /lib/modules/{os.uname().release}"
                  f"/build or {headers.SETUP_HEADERS_DIR})",
            fix=f"run {SETUP}, which unpacks Debian's linux-headers packages, or set "
                "BCC_KERNEL_SOURCE to a kernel build tree"))
    return missing


BCC_MISSING = Missing(
    piece="bcc Python bindings (python3-bpfcc)",
    fix=f"apt-get install python3-bpfcc and link /usr/lib/python3/dist-packages/bcc into this "
        f"interpreter's site-packages ({SETUP} does both); never 'pip install bcc', an "
        "unrelated project")
