"""Finding TLS code on the host and attaching the uprobes of the library table to it.

Works on the loaded bcc object it is handed (it does not import bcc). Uprobes are per inode,
so each file is attached once however many processes map it, and system libraries attached at
start also cover processes that start later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from qtap_fluent.agent.bpf import discover, libs
from qtap_fluent.agent.bpf.options import Counters


class TlsProbes:
    """The TLS libraries (and statically linked binaries) probed so far, and the scanning."""

    def __init__(self, bpf: Any, counters: Counters, note_exe: Callable[[int, str], None],
                 *, inner: bool = True) -> None:
        self._bpf = bpf
        self._inner = inner  # attach at the internal functions thin wrappers call (libs.py)
        self._counters = counters
        self._note_exe = note_exe  # every exe seen while scanning (a process that won't exec)
        self._attached: dict[tuple[int, int], discover.Target] = {}
        self._points: dict[tuple[int, int], list[libs.AttachPoint]] = {}
        self._looked_at: set[tuple[int, int]] = set()
        self._seen_pids: set[int] = set()
        self._exec_pids: set[int] = set()
        self._interval_s = 2.0
        self._next_scan = 0.0

    def targets(self) -> list[discover.Target]:
        return list(self._attached.values())

    def attach_initial(self, extra: Iterable[str], *, scan: bool, interval_s: float) -> None:
        """System libraries, then ``extra`` paths, then (with ``scan``) running processes."""
        # System libraries first: this also covers every process that starts later and maps
        # them (the short-lived curl of a cron job).
        for path in discover.system_libraries():
            self._consider(path, by_name_only=True)
        for path in extra:
            if not self._consider(path, by_name_only=False):
                self._counters.errors.append(f"{path}: no TLS library symbols found")
        self._interval_s = interval_s
        if scan:
            self.scan(full=True)
            self._next_scan = time.monotonic() + interval_s
        else:
            # Processes that exist now will not exec again: note their exe while they live.
            for pid in discover.pids():
                exe = discover.exe(pid)
                if exe is not None:
                    self._note_exe(pid, exe)

    def note_exec(self, pid: int) -> None:
        """A process exec'd: look at it on the next :meth:`maybe_scan`."""
        self._exec_pids.add(pid)

    def maybe_scan(self, now: float) -> None:
        """Scan exec'd processes now, and all of /proc every ``interval_s``."""
        full = now >= self._next_scan
        if full or self._exec_pids:
            self.scan(full=full)
        if full:
            self._next_scan = now + self._interval_s

    def scan(self, *, full: bool) -> None:
        """Look at processes not seen before (all of /proc when ``full``) for TLS code."""
        pids = discover.pids() if full else []
        todo = {p for p in pids if p not in self._seen_pids} | self._exec_pids
        self._exec_pids = set()
        if full:
            self._seen_pids = set(pids)  # forget the dead so the set stays bounded
        for pid in todo:
            self._seen_pids.add(pid)
            exe = discover.exe(pid)
            if exe is not None:  # statically linked OpenSSL shows up in the binary itself
                self._note_exe(pid, exe)
                self._consider(f"/proc/{pid}/root{exe}", by_name_only=False)
            for path in discover.mapped_files(pid):
                self._consider(path, by_name_only=True)

    def reattach(self) -> None:
        """Attach every known target again (after its uprobes were detached)."""
        for target in self._attached.values():
            self._attach_probes(target)

    def _consider(self, path: str, *, by_name_only: bool) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        inode = (st.st_dev, st.st_ino)
        if inode in self._looked_at:
            return inode in self._attached
        self._looked_at.add(inode)
        target = discover.identify(path, by_name_only=by_name_only)
        if target is None or not self._attach_probes(target):
            return False
        self._attached[target.inode] = target
        self._counters.libraries += 1
        return True

    def _attach_probes(self, target: discover.Target) -> int:
        points = self._points.get(target.inode)
        if points is None:
            points = libs.attach_points(target.path, target.library, target.symbols,
                                        inner=self._inner)
            self._points[target.inode] = points
        attached = 0
        path = target.path.encode()
        for point in points:
            where: dict[str, Any] = (
                {"sym": point.symbol.encode()} if point.symbol is not None
                else {"addr": point.addr})
            try:
                self._bpf.attach_uprobe(name=path, fn_name=point.enter.encode(), **where)
                if point.ret is not None:
                    self._bpf.attach_uretprobe(name=path, fn_name=point.ret.encode(), **where)
                attached += 1
            except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception on attach failure
                self._counters.attach_errors += 1
                self._counters.errors.append(f"{target.path}:{point.label}: {exc}")
        return attached
