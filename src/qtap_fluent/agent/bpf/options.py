"""Options, program text and counters of the eBPF source (no bcc here: importable anywhere).

The C program is configured with -D flags built from :class:`BpfOptions` (never templated);
its text is read from this package with importlib.resources.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from dataclasses import dataclass, field

from qtap_fluent.agent.bpf import decode as d
from qtap_fluent.agent.bpf.translate import DIRECTION_ORIGINS

#: The compile units, in order; each may `#include "x"` other files of this package.
BPF_SOURCES = ("sock.bpf.c", "tls.bpf.c")
_INCLUDE_RE = re.compile(r'^#include "([^"/]+)"[ \t]*$', re.MULTILINE)
#: Qtap's direction names -> QF_DIRECTION (0 all, 1 egress, 2 ingress); the egress-internal/
#: -external split needs the peer address and is left to the policy after capture.
_KERNEL_DIRECTION = {"all": 0, "egress": 1, "egress-internal": 1, "egress-external": 1,
                     "ingress": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class BpfOptions:
    """Compile-time (-D) and run-time options of the capture source."""

    max_data: int = 16384  #: bytes per data record; a power of two (QF_MAX_DATA)
    max_chunks: int = 16  #: records per call before the rest is only counted (QF_MAX_CHUNKS)
    max_iov: int = 8  #: iovecs looked at per readv/writev/sendmsg/recvmsg (QF_MAX_IOV)
    max_iov_chunks: int = 2  #: records per iovec (QF_MAX_IOV_CHUNKS)
    wakeup_every: int = 64  #: ring-buffer records per CPU between reader wake-ups
    ringbuf_pages: int = 4096  #: ring buffer size in pages (power of two): 16 MiB
    perfbuf_pages: int = 256  #: per-CPU perf buffer pages when the ring buffer is unavailable
    use_perfbuf: bool | None = None  #: None: ring buffer when the kernel has it (5.8+)
    #: read the ring buffer through our own mapping of it (ringbuf.py) instead of bcc's
    #: per-record callbacks; x86-64 only, else bcc's reader is used
    direct_ring: bool = True
    #: probe OpenSSL's internal read/write functions behind thin exported wrappers where they
    #: are recognised (one cheap trap per call instead of two: libs.InnerProbe)
    inner_probes: bool = True
    ignore_loopback: bool = True
    direction: str = "all"
    exclude_pids: frozenset[int] = frozenset()
    exclude_self: bool = True  #: never capture the agent's own traffic (its sinks)
    #: look only at these processes and what they fork after start (None: every process)
    only_pids: frozenset[int] | None = None
    extra_targets: tuple[str, ...] = ()  #: more libraries/binaries to probe (paths)
    scan_interval_s: float = 2.0  #: how often /proc is looked at for new TLS libraries
    scan_processes: bool = True  #: also probe libraries/binaries of running processes
    seed_existing: bool = True  #: track TCP connections already open when capture starts

    def problems(self) -> list[str]:
        """What is wrong with these options (empty list: fine)."""
        out = []
        if self.max_data < 64 or self.max_data & (self.max_data - 1):
            out.append(f"max_data must be a power of two >= 64, not {self.max_data}")
        # Every chunk is unrolled, and programs here may have at most 4096 instructions:
        # these bounds are what was measured to load (32 chunks; 16 iovecs x 4).
        if not 1 <= self.max_chunks <= 32:
            out.append(f"max_chunks must be 1..32, not {self.max_chunks}")
        if not 1 <= self.max_iov <= 16:
            out.append(f"max_iov must be 1..16, not {self.max_iov}")
        if not 1 <= self.max_iov_chunks <= 4 or self.max_iov * self.max_iov_chunks > 64:
            out.append(f"max_iov_chunks must be 1..4 with max_iov * max_iov_chunks <= 64, not "
                       f"{self.max_iov_chunks} (max_iov {self.max_iov})")
        if self.wakeup_every < 1:
            out.append(f"wakeup_every must be >= 1, not {self.wakeup_every}")
        if self.ringbuf_pages < 1 or self.ringbuf_pages & (self.ringbuf_pages - 1):
            out.append(f"ringbuf_pages must be a power of two, not {self.ringbuf_pages}")
        if self.direction not in DIRECTION_ORIGINS:
            out.append(f"direction must be one of {', '.join(DIRECTION_ORIGINS)}, "
                       f"not {self.direction!r}")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Attached:
    """What :meth:`BpfSource.start` attached to (for the one "capturing" log line)."""

    libraries: tuple[tuple[str, str], ...]  #: (kind, path)
    tracepoints: tuple[str, ...]
    buffer: str  #: "ring buffer" or "perf buffer"
    headers: str

    def describe(self) -> str:
        libs = ", ".join(f"{k} {p}" for k, p in self.libraries) or "none"
        return (f"capturing: {len(self.tracepoints)} tracepoints "
                f"({', '.join(self.tracepoints)}); TLS libraries: {libs}; via {self.buffer}")


def program_text() -> str:
    """The C program: the compile units with this package's includes inlined once each.

    Read with importlib.resources so it works from a wheel; include guards make repeats empty.
    """
    pkg = importlib.resources.files("qtap_fluent.agent.bpf")
    done: set[str] = set()

    def inline(name: str) -> str:
        if name in done:
            return ""
        done.add(name)
        text = (pkg / name).read_text(encoding="utf-8")
        return _INCLUDE_RE.sub(lambda m: inline(m.group(1)), text)

    return "\n".join(inline(n) for n in BPF_SOURCES)


def cflags(options: BpfOptions, perfbuf: bool) -> list[str]:
    """The -D flags that configure the C program (never string templating)."""
    flags = [
        f"-DQF_MAX_DATA={options.max_data}",
        f"-DQF_MAX_CHUNKS={options.max_chunks}",
        f"-DQF_MAX_IOV={options.max_iov}",
        f"-DQF_MAX_IOV_CHUNKS={options.max_iov_chunks}",
        f"-DQF_WAKEUP_EVERY={options.wakeup_every}",
        f"-DQF_RINGBUF_PAGES={options.ringbuf_pages}",
        f"-DQF_DIRECTION={_KERNEL_DIRECTION[options.direction]}",
    ]
    if options.ignore_loopback:
        flags.append("-DQF_IGNORE_LOOPBACK")
    if options.only_pids is not None:
        flags.append("-DQF_ONLY_PIDS")
    if perfbuf:
        flags.append("-DQF_USE_PERFBUF")
    return flags


def kernel_has_ringbuf() -> bool:
    """BPF ring buffers arrived in Linux 5.8."""
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= (5, 8)


@dataclass(slots=True)
class Counters:
    """What the source saw and dropped; every loss is counted somewhere here."""

    records: int = 0  #: ring-buffer records read
    decode_errors: int = 0
    lost_buffer: int = 0  #: records the kernel could not put in the buffer
    filtered: int = 0  #: connections the in-kernel filters skipped
    truncated_calls: int = 0
    tls_no_fd: int = 0
    tls_skipped: int = 0
    libraries: int = 0
    attach_errors: int = 0
    seeded: int = 0  #: connections found open at start and tracked from then on
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in (
            "records", "decode_errors", "lost_buffer", "filtered", "truncated_calls",
            "tls_no_fd", "tls_skipped", "libraries", "attach_errors", "seeded")}


KERNEL_COUNTERS = {
    d.Counter.RB_FULL: "lost_buffer",
    d.Counter.FILTERED: "filtered",
    d.Counter.TRUNCATED: "truncated_calls",
    d.Counter.TLS_NO_FD: "tls_no_fd",
    d.Counter.TLS_SKIPPED: "tls_skipped",
}
