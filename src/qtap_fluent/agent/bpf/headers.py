"""Find kernel headers for bcc, which compiles the BPF C at run time.

Looked for, in order: ``BCC_KERNEL_SOURCE`` (bcc's own variable), the running kernel's
``/lib/modules/$(uname -r)/build``, then the folder ``scripts/setup-ebpf.sh`` unpacks Debian's
linux-headers packages into (``QTAP_FLUENT_HEADERS_DIR``, default below). Headers of a nearby
kernel are fine for our programs: they touch only pt_regs, helpers and tracepoint arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Where scripts/setup-ebpf.sh unpacks headers when the kernel has none packaged.
SETUP_HEADERS_DIR = Path("/var/lib/qtap-fluent/kernel-headers")
#: Files bcc's front end needs from a kernel build tree (include/generated comes from the
#: arch-specific package, include/linux from -common: both halves must be there).
_NEEDED = ("include/linux/kconfig.h", "include/generated/autoconf.h")


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelHeaders:
    path: Path
    found_by: str  #: which rule found it, for the "capturing" log line and error messages


def is_header_tree(path: Path) -> bool:
    """Does ``path`` look like a kernel build tree bcc can compile against?"""
    return all((path / rel).is_file() for rel in _NEEDED)


def candidates(env: dict[str, str] | None = None, release: str | None = None
               ) -> list[tuple[str, Path]]:
    """(rule, path) pairs in the order they are tried."""
    env = dict(os.environ) if env is None else env
    release = os.uname().release if release is None else release
    out: list[tuple[str, Path]] = []
    if env.get("BCC_KERNEL_SOURCE"):
        out.append(("BCC_KERNEL_SOURCE", Path(env["BCC_KERNEL_SOURCE"])))
    out.append(("/lib/modules/RELEASE/build", Path(f"/lib/modules/{release}/build")))
    if env.get("QTAP_FLUENT_HEADERS_DIR"):
        out.append(("QTAP_FLUENT_HEADERS_DIR", Path(env["QTAP_FLUENT_HEADERS_DIR"])))
    out.append(("setup-ebpf.sh folder", SETUP_HEADERS_DIR))
    return out


def find(env: dict[str, str] | None = None, release: str | None = None) -> KernelHeaders | None:
    """The first usable header tree, or None (then :mod:`.env` reports how to get one)."""
    for rule, path in candidates(env, release):
        if is_header_tree(path):
            return KernelHeaders(path=path, found_by=rule)
    return None


def kernel_has_builtin_headers() -> bool:
    """CONFIG_IKHEADERS kernels ship their headers; bcc unpacks them itself."""
    return Path("/sys/kernel/kheaders.tar.xz").exists()
