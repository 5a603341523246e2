"""Byte layout of the ring-buffer records in ``events.h``, mirrored with :mod:`struct`.

Importable without bcc: tests feed it bytes built by :func:`pack_data` and friends, the loader
feeds it what the kernel wrote. Every layout here must match ``events.h`` exactly; the sizes
are asserted against bcc's own view of the structs in the system tests.
"""

from __future__ import annotations

import enum
import mmap
import struct
from dataclasses import dataclass

# qf_hdr.kind
EV_DATA = 1
EV_SOCK = 2
EV_CLOSE = 3
EV_EXEC = 4
EV_EXIT = 5
EV_LOCAL = 6
EV_SNI = 7

DIR_OUT = 0
DIR_IN = 1

ORIGIN_CONNECT = 1
ORIGIN_ACCEPT = 2

AF_INET = 2
AF_INET6 = 10

EXE_LEN = 256
SNI_LEN = 256


class Source(enum.IntEnum):
    """qf_data_event.source: which hook saw the bytes."""

    SYSCALL = 0
    OPENSSL = 1
    GNUTLS = 2


class Counter(enum.IntEnum):
    """Index of a kernel-side counter in the per-CPU array ``qf_counters``."""

    RB_FULL = 0
    FILTERED = 1
    TRUNCATED = 2
    TLS_NO_FD = 3
    TLS_SKIPPED = 4


HDR = struct.Struct("<IIIiQ")  # kind, pid, tid, fd, ts_ns
DATA_FIXED = struct.Struct("<IIIiQQQIIBB6x")  # hdr + sock_id, tls_ptr, real, cap, dir, source
SOCK = struct.Struct("<IIIiQQHHHBB16s16s")  # hdr + id, family, rport, lport, origin, has_local, ..
CLOSE = struct.Struct("<IIIiQQ")
EXEC = struct.Struct(f"<IIIiQ{EXE_LEN}s")
LOCAL = struct.Struct("<IIIiQQHH4x16s")  # hdr + sock_id, family, lport, laddr
SNI = struct.Struct(f"<IIIiQQ{SNI_LEN}s")  # hdr + tls_ptr, name

assert HDR.size == 24 and DATA_FIXED.size == 56 and SOCK.size == 72
assert CLOSE.size == 32 and EXEC.size == 24 + EXE_LEN and LOCAL.size == 56
assert SNI.size == 32 + SNI_LEN


@dataclass(frozen=True, slots=True, kw_only=True)
class RawData:
    """qf_data_event: bytes one call moved (or one chunk of them)."""

    pid: int
    tid: int
    fd: int
    ts_ns: int
    sock_id: int
    tls_ptr: int
    real_len: int
    direction: int
    source: Source
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RawSock:
    """qf_sock_event: a connection was established; its ends as far as the kernel saw them."""

    pid: int
    tid: int
    fd: int
    ts_ns: int
    sock_id: int
    family: int  #: 0 when accept() did not ask for the peer address
    origin: int
    rport: int
    raddr: bytes
    lport: int
    laddr: bytes | None  #: None when the kernel did not see our end


@dataclass(frozen=True, slots=True, kw_only=True)
class RawLocal:
    """qf_local_event: our end of a connect()ed socket, known once its handshake finished."""

    pid: int
    ts_ns: int
    sock_id: int
    family: int
    lport: int
    laddr: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RawClose:
    pid: int
    fd: int
    ts_ns: int
    sock_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RawExec:
    pid: int
    ts_ns: int
    filename: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RawExit:
    pid: int
    ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RawSni:
    """qf_sni_event: a TLS client set the server name of ``tls_ptr`` (before its handshake)."""

    pid: int
    ts_ns: int
    tls_ptr: int
    name: str


RawRecord = RawData | RawSock | RawLocal | RawClose | RawExec | RawExit | RawSni
#: The fields of a data record, in the order :func:`data_at` returns them: pid, tid, fd,
#: ts_ns, sock_id, tls_ptr, real_len, direction, source, data.
DataFields = tuple[int, int, int, int, int, int, int, int, int, bytes]


_unpack_kind = struct.Struct("<I").unpack_from


class DecodeError(ValueError):
    """A record did not have the layout of events.h (counted by the loader, never fatal)."""


def decode(buf: bytes | memoryview) -> RawRecord:
    """Decode one ring-buffer record. Raises :class:`DecodeError` on a short or unknown one."""
    if len(buf) < HDR.size:
        raise DecodeError(f"record of {len(buf)} bytes is shorter than its header")
    kind = _unpack_kind(buf)[0]
    if kind == EV_DATA:
        return _data(buf)
    if kind == EV_SOCK:
        _need(buf, SOCK.size, "sock")
        _, pid, tid, fd, ts, sid, fam, rport, lport, origin, has_local, raddr, laddr = (
            SOCK.unpack_from(buf))
        n = 4 if fam == AF_INET else 16
        return RawSock(pid=pid, tid=tid, fd=fd, ts_ns=ts, sock_id=sid, family=fam,
                       origin=origin, rport=rport, raddr=raddr[:n], lport=lport,
                       laddr=laddr[:n] if has_local else None)
    if kind == EV_CLOSE:
        _need(buf, CLOSE.size, "close")
        _, pid, _tid, fd, ts, sid = CLOSE.unpack_from(buf)
        return RawClose(pid=pid, fd=fd, ts_ns=ts, sock_id=sid)
    if kind == EV_EXEC:
        _need(buf, EXEC.size, "exec")
        _, pid, _tid, _fd, ts, name = EXEC.unpack_from(buf)
        return RawExec(pid=pid, ts_ns=ts, filename=name.split(b"\0", 1)[0].decode("utf-8",
                                                                                  "replace"))
    if kind == EV_LOCAL:
        _need(buf, LOCAL.size, "local")
        _, pid, _tid, _fd, ts, sid, fam, lport, laddr = LOCAL.unpack_from(buf)
        return RawLocal(pid=pid, ts_ns=ts, sock_id=sid, family=fam, lport=lport,
                        laddr=laddr[:4] if fam == AF_INET else laddr)
    if kind == EV_EXIT:
        _, pid, _tid, _fd, ts = HDR.unpack_from(buf)
        return RawExit(pid=pid, ts_ns=ts)
    if kind == EV_SNI:
        _need(buf, SNI.size, "sni")
        _, pid, _tid, _fd, ts, ptr, name = SNI.unpack_from(buf)
        return RawSni(pid=pid, ts_ns=ts, tls_ptr=ptr,
                      name=name.split(b"\0", 1)[0].decode("utf-8", "replace"))
    raise DecodeError(f"unknown record kind {kind}")


def _need(buf: bytes | memoryview, size: int, what: str) -> None:
    if len(buf) < size:
        raise DecodeError(f"{what} record of {len(buf)} bytes, expected {size}")


_SOURCES = tuple(Source)  # index = value (0, 1, 2)
_DATA_SIZE = DATA_FIXED.size
_unpack_data = DATA_FIXED.unpack_from


def data_at(buf: bytes | memoryview | mmap.mmap, off: int, size: int) -> DataFields:
    """The fields of the data record of ``size`` bytes at ``buf[off:]``, without objects.

    The reader's hot path (one call per captured read/write): one unpack and one copy of the
    payload, straight from the ring buffer's mapping. Raises :class:`DecodeError`.
    """
    if size < _DATA_SIZE:
        raise DecodeError(f"data record of {size} bytes, expected at least {_DATA_SIZE}")
    kind, pid, tid, fd, ts, sid, ptr, real, cap, direction, source = _unpack_data(buf, off)
    if kind != EV_DATA:
        raise DecodeError(f"record kind {kind} is not a data record")
    if _DATA_SIZE + cap > size:
        raise DecodeError(f"data record says {cap} bytes but carries {size - _DATA_SIZE}")
    if cap > real:
        raise DecodeError(f"data record carries {cap} bytes of a {real}-byte call")
    if source >= len(_SOURCES):
        raise DecodeError(f"data record from unknown source {source}")
    start = off + _DATA_SIZE
    return pid, tid, fd, ts, sid, ptr, real, direction, source, bytes(buf[start:start + cap])


def _data(buf: bytes | memoryview) -> RawData:
    pid, tid, fd, ts, sid, ptr, real, direction, source, data = data_at(buf, 0, len(buf))
    return RawData(pid=pid, tid=tid, fd=fd, ts_ns=ts, sock_id=sid, tls_ptr=ptr, real_len=real,
                   direction=direction, source=_SOURCES[source], data=data)


# ---- encoders: what the kernel would write (tests, replay of raw captures) -------------------


def pack_data(*, pid: int, fd: int, data: bytes, real_len: int | None = None, tid: int = 0,
              ts_ns: int = 0, sock_id: int = 0, tls_ptr: int = 0, direction: int = DIR_OUT,
              source: Source = Source.SYSCALL) -> bytes:
    """A qf_data_event exactly as the kernel submits it (header + ``len(data)`` bytes)."""
    real = len(data) if real_len is None else real_len
    return DATA_FIXED.pack(EV_DATA, pid, tid or pid, fd, ts_ns, sock_id, tls_ptr, real,
                           len(data), direction, int(source)) + data


def pack_sock(*, pid: int, fd: int, sock_id: int, family: int, raddr: bytes, rport: int,
              origin: int, laddr: bytes | None = None, lport: int = 0, ts_ns: int = 0) -> bytes:
    return SOCK.pack(EV_SOCK, pid, pid, fd, ts_ns, sock_id, family, rport, lport, origin,
                     laddr is not None, raddr.ljust(16, b"\0"), (laddr or b"").ljust(16, b"\0"))


def pack_local(*, pid: int, sock_id: int, family: int, laddr: bytes, lport: int,
               ts_ns: int = 0) -> bytes:
    return LOCAL.pack(EV_LOCAL, pid, pid, -1, ts_ns, sock_id, family, lport,
                      laddr.ljust(16, b"\0"))


def pack_close(*, pid: int, fd: int, sock_id: int, ts_ns: int = 0) -> bytes:
    return CLOSE.pack(EV_CLOSE, pid, pid, fd, ts_ns, sock_id)


def pack_exec(*, pid: int, filename: str, ts_ns: int = 0) -> bytes:
    return EXEC.pack(EV_EXEC, pid, pid, -1, ts_ns, filename.encode()[:EXE_LEN - 1])


def pack_exit(*, pid: int, ts_ns: int = 0) -> bytes:
    return HDR.pack(EV_EXIT, pid, pid, -1, ts_ns)


def pack_sni(*, pid: int, tls_ptr: int, name: str, ts_ns: int = 0) -> bytes:
    return SNI.pack(EV_SNI, pid, pid, -1, ts_ns, tls_ptr, name.encode()[:SNI_LEN - 1])
