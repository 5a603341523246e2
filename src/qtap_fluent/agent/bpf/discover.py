"""What the loader learns from /proc: TLS libraries in use, executables, socket addresses.

No bcc here. Everything is best effort: processes come and go while we look, so a vanished
file or process yields None/nothing, never an exception.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import platform
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from qtap_fluent.agent.bpf import libs
from qtap_fluent.agent.events import Address

#: pidfd_getfd(2) (Linux 5.6); the number is the same on x86-64 and arm64 (generic table).
_SYS_PIDFD_GETFD = 438
#: Where ldconfig is missing, these directories are looked through for TLS libraries.
_LIB_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib",
             f"/usr/lib/{platform.machine()}-linux-gnu", f"/lib/{platform.machine()}-linux-gnu")
#: Looked through always: private library directories that are not in ld.so's cache (their
#: users find them by RUNPATH). Debian's android-libboringssl puts libssl.so.0 in the first.
_RUNPATH_DIRS = (f"/usr/lib/{platform.machine()}-linux-gnu/android",)
_LDCONFIG_RE = re.compile(r"=>\s+(/\S+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One file to attach uprobes to (a shared library or a statically linked binary)."""

    path: str  #: a path that opens the file from our mount namespace
    inode: tuple[int, int]  #: (st_dev, st_ino): uprobes are per inode, so this de-duplicates
    library: libs.TlsLibrary
    symbols: frozenset[str]  #: the probe symbols it defines


def identify(path: str, *, by_name_only: bool = True) -> Target | None:
    """A :class:`Target` if the file at ``path`` is a TLS library we know (or links one in).

    With ``by_name_only`` the file must be named like a TLS library; without it any ELF file
    is read (used for executables, to find statically linked OpenSSL).
    """
    if by_name_only and not libs.candidate_by_name(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    symbols = libs.defined_functions(path)
    lib = libs.classify(symbols)
    if lib is None:
        return None
    return Target(path=path, inode=(st.st_dev, st.st_ino), library=lib,
                  symbols=symbols & lib.symbols)


def system_libraries() -> list[str]:
    """Paths of TLS libraries installed on the host, by name (ldconfig's cache, else dirs)."""
    paths: list[str] = []
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
        for line in out.splitlines():
            m = _LDCONFIG_RE.search(line)
            if m and libs.candidate_by_name(m.group(1)):
                paths.append(m.group(1))
    except (OSError, subprocess.SubprocessError):
        pass
    if not paths:
        for d in _LIB_DIRS:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            paths.extend(f"{d}/{n}" for n in names if libs.candidate_by_name(n))
    for d in _RUNPATH_DIRS:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        paths.extend(f"{d}/{n}" for n in names if libs.candidate_by_name(n))
    return paths


def pids() -> list[int]:
    """Every process id in /proc right now."""
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []


def mapped_files(pid: int) -> Iterator[str]:
    """Files a process has mapped executable, as paths valid from our mount namespace.

    Paths are taken through /proc/PID/root so libraries inside containers resolve too.
    """
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    seen: set[str] = set()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        path = parts[5].removesuffix(" (deleted)")
        if path not in seen:
            seen.add(path)
            yield f"/proc/{pid}/root{path}"


_TCP_ESTABLISHED = "01"  # st column of /proc/net/tcp (include/net/tcp_states.h)


def _proc_net_address(text: str) -> Address:
    """"0100007F:1F90" (/proc/net/tcp: 32-bit words in host order, port in hex) -> Address."""
    hexip, hexport = text.split(":")
    raw = b"".join(bytes.fromhex(hexip[i:i + 8])[::-1] for i in range(0, len(hexip), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return Address(ip=str(ip), port=int(hexport, 16))


def _established(pid: int) -> dict[int, tuple[Address, Address]]:
    """inode -> (local, remote) of ESTABLISHED TCP sockets in the network namespace of pid."""
    out: dict[int, tuple[Address, Address]] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", encoding="ascii", errors="replace") as f:
                next(f, None)  # header
                for line in f:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == _TCP_ESTABLISHED:
                        out[int(cols[9])] = (_proc_net_address(cols[1]),
                                             _proc_net_address(cols[2]))
        except (OSError, ValueError):
            continue
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenSocket:
    """A TCP connection a process had open before capture started."""

    pid: int
    fd: int
    local: Address
    remote: Address


def established_sockets(pid_list: list[int]) -> list[OpenSocket]:
    """The ESTABLISHED TCP sockets of these processes, with both addresses.

    /proc/PID/net/tcp is read once per network namespace, not once per process.
    """
    by_netns: dict[str, dict[int, tuple[Address, Address]]] = {}
    out: list[OpenSocket] = []
    for pid in pid_list:
        try:
            ns = os.readlink(f"/proc/{pid}/ns/net")
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        if ns not in by_netns:
            by_netns[ns] = _established(pid)
        live = by_netns[ns]
        if not live:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                ends = live.get(int(target[8:-1]))
                if ends is not None:
                    out.append(OpenSocket(pid=pid, fd=int(fd), local=ends[0], remote=ends[1]))
    return out


def exe(pid: int) -> str | None:
    """The process's executable path, or None if it is gone (or a kernel thread)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


_libc = ctypes.CDLL(None, use_errno=True)


def socket_addresses(pid: int, fd: int) -> tuple[Address, Address] | None:
    """(local, remote) of another process's TCP socket, through a pidfd_getfd(2) duplicate.

    The kernel tracepoints cannot read socket structs portably (no kernel struct layouts),
    so the local address is asked of the socket itself. Needs CAP_SYS_PTRACE (root has it).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        dup = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            return None
        try:
            s = socket.socket(fileno=dup)
        except OSError:  # ENOTSOCK: the fd was closed and reused for a file meanwhile
            os.close(dup)
            return None
        try:
            if s.type != socket.SOCK_STREAM or s.family not in (socket.AF_INET,
                                                                socket.AF_INET6):
                return None
            local, remote = s.getsockname(), s.getpeername()
        except OSError:
            return None
        finally:
            s.close()  # our duplicate only: the process keeps its socket
        return Address(ip=_unmap(local[0]), port=local[1]), Address(ip=_unmap(remote[0]),
                                                                    port=remote[1])
    finally:
        os.close(pidfd)


def _unmap(ip: str) -> str:
    """::ffff:1.2.3.4 (an IPv4 peer on a dual-stack socket) -> 1.2.3.4."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


class ProcHost:
    """:class:`~qtap_fluent.agent.bpf.translate.HostLookup` backed by /proc and pidfds."""

    def exe(self, pid: int) -> str | None:
        return exe(pid)

    def socket_addresses(self, pid: int, fd: int) -> tuple[Address, Address] | None:
        return socket_addresses(pid, fd)

    def resolve(self, path: str) -> str:
        return os.path.realpath(path) if path.startswith("/") else path
