"""Which TLS libraries we probe, and how: one table, one row per library kind.

A row names the file names that identify the library, the symbols that prove it, and for
every symbol the entry and return programs of ``tls.bpf.c``. The loader walks this table; adding
a library is adding a row. No bcc here: the ELF symbol reader is plain :mod:`struct`.
"""

from __future__ import annotations

import platform
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    symbol: str
    enter: str  #: program run at the function's entry (uprobe)
    ret: str | None = None  #: program run at its return (uretprobe)
    required: bool = False  #: the library is not this kind without it


@dataclass(frozen=True, slots=True, kw_only=True)
class InnerProbe:
    """Probe the function an exported thin wrapper calls, in place of the exported ones.

    OpenSSL 1.1.1-3.1's ``SSL_write_ex`` is ``sub $8,%rsp; call ssl_write_internal; ...`` and
    ``SSL_write`` calls the same internal function with the same arguments as ``SSL_write_ex``
    (and likewise for reads). A uprobe on the exported function traps on ``sub``, which the
    kernel cannot emulate, so it single-steps it out of line: a second trap. The internal
    function starts with ``push``, which is emulated (arch/x86/kernel/uprobes.c): one trap.
    Measured on this project's VMs: ~8-11 us per probed call at the exported entry, ~2 us at
    the internal one. One probe there also covers both exported forms.
    """

    wrapper: str  #: the exported thin wrapper, read to find the internal function
    enter: str  #: entry program (the internal function has the wrapper's arguments)
    ret: str  #: return program
    replaces: frozenset[str]  #: exported probes made unnecessary when this one is attached
    #: a symbol whose presence means the internal function's arguments differ (OpenSSL 3.2
    #: added SSL_write_ex2 and a flags argument to ssl_write_internal): then not used
    unless: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsLibrary:
    kind: str
    file_re: re.Pattern[str]  #: shared-object file names of this library
    probes: tuple[Probe, ...]
    #: symbols only this kind defines, any one of which proves it (tells BoringSSL from OpenSSL)
    markers: tuple[str, ...] = ()
    inner: tuple[InnerProbe, ...] = ()

    @property
    def symbols(self) -> frozenset[str]:
        """Every symbol this row looks at: probed ones and those that decide how."""
        return frozenset(p.symbol for p in self.probes) | frozenset(
            s for i in self.inner for s in (i.wrapper, i.unless) if s)


_OPENSSL_PROBES = (
    # curl calls SSL_write/SSL_read; CPython's ssl module calls the _ex forms.
    Probe(symbol="SSL_write", enter="qf_ossl_write_enter", ret="qf_ossl_write_return",
          required=True),
    Probe(symbol="SSL_read", enter="qf_ossl_read_enter", ret="qf_ossl_read_return",
          required=True),
    Probe(symbol="SSL_write_ex", enter="qf_ossl_write_ex_enter", ret="qf_ossl_write_ex_return"),
    Probe(symbol="SSL_read_ex", enter="qf_ossl_read_ex_enter", ret="qf_ossl_read_ex_return"),
    # Bytes on the socket inside these are handshake/alert records, never application data.
    Probe(symbol="SSL_do_handshake", enter="qf_ossl_other_enter", ret="qf_ossl_other_return"),
    Probe(symbol="SSL_shutdown", enter="qf_ossl_other_enter", ret="qf_ossl_other_return"),
    Probe(symbol="SSL_set_fd", enter="qf_ossl_set_fd_enter"),
    # The server name (SNI) a client asks for: OpenSSL's SSL_set_tlsext_host_name is a macro
    # over SSL_ctrl; BoringSSL exports it as a function. Once per connection, not per request.
    Probe(symbol="SSL_ctrl", enter="qf_ossl_ctrl_enter"),
    Probe(symbol="SSL_set_tlsext_host_name", enter="qf_ossl_set_sni_enter"),
)

_OPENSSL_INNER = (
    InnerProbe(wrapper="SSL_write_ex", enter="qf_ossl_write_ex_enter",
               ret="qf_ossl_write_ex_return", replaces=frozenset({"SSL_write", "SSL_write_ex"}),
               unless="SSL_write_ex2"),
    InnerProbe(wrapper="SSL_read_ex", enter="qf_ossl_read_ex_enter",
               ret="qf_ossl_read_ex_return", replaces=frozenset({"SSL_read", "SSL_read_ex"})),
)

#: Looked at in this order; the first row whose required symbols a file defines wins.
TLS_LIBRARIES: tuple[TlsLibrary, ...] = (
    TlsLibrary(kind="boringssl", file_re=re.compile(r"^lib(ssl|boringssl)\.so[.\d]*$"),
               probes=_OPENSSL_PROBES,
               # OPENSSL_is_boringssl is in libcrypto (and not in Android's build at all: Debian's
               # android-libboringssl lacks it), so a libssl of its own is told by a function
               # OpenSSL has no form of: the custom certificate-verify callback setter.
               markers=("OPENSSL_is_boringssl", "SSL_CTX_set_custom_verify")),
    # libssl.so.1.1, libssl.so.3 (but not NSS's libssl3.so: it defines no SSL_write).
    TlsLibrary(kind="openssl", file_re=re.compile(r"^libssl\.so[.\d]*$"),
               probes=_OPENSSL_PROBES, inner=_OPENSSL_INNER),
    TlsLibrary(kind="gnutls", file_re=re.compile(r"^libgnutls\.so[.\d]*$"), probes=(
        Probe(symbol="gnutls_record_send", enter="qf_gnutls_send_enter",
              ret="qf_gnutls_send_return", required=True),
        Probe(symbol="gnutls_record_recv", enter="qf_gnutls_recv_enter",
              ret="qf_gnutls_recv_return", required=True),
        Probe(symbol="gnutls_handshake", enter="qf_gnutls_other_enter",
              ret="qf_gnutls_other_return"),
        Probe(symbol="gnutls_bye", enter="qf_gnutls_other_enter", ret="qf_gnutls_other_return"),
        Probe(symbol="gnutls_server_name_set", enter="qf_gnutls_sni_enter"),
    )),
)

#: Every symbol any row cares about (what the ELF reader looks for).
ALL_SYMBOLS: frozenset[str] = frozenset().union(
    *(lib.symbols for lib in TLS_LIBRARIES),
    *(frozenset(lib.markers) for lib in TLS_LIBRARIES),
)


def candidate_by_name(path: str) -> bool:
    """Could this mapped file be a TLS library, judging by its name alone?"""
    name = path.rsplit("/", 1)[-1]
    return any(lib.file_re.match(name) for lib in TLS_LIBRARIES)


def classify(symbols: Iterable[str]) -> TlsLibrary | None:
    """The table row a file with these defined symbols is, or None.

    Works for shared libraries and for executables that link OpenSSL statically (their
    .symtab/.dynsym define SSL_write like libssl does).
    """
    have = set(symbols)
    for lib in TLS_LIBRARIES:
        if lib.markers and have.isdisjoint(lib.markers):
            continue
        if all(p.symbol in have for p in lib.probes if p.required):
            return lib
    return None


# ---- ELF symbol names (ELF-64 little-endian only: the x86-64/arm64 hosts we run on) ----------

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_SHT_SYMTAB, _SHT_DYNSYM = 2, 11
_SHN_UNDEF = 0
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
#: Symbol tables larger than this are not read (a bound on what one file can cost us).
MAX_SYMTAB_BYTES = 64 << 20


def defined_functions(path: str | Path, wanted: frozenset[str] = ALL_SYMBOLS) -> frozenset[str]:
    """Which of ``wanted`` are functions the ELF file at ``path`` defines (not just imports).

    Returns an empty set for files that are not ELF-64 LE or cannot be read.
    """
    return frozenset(function_addresses(path, wanted))


def function_addresses(path: str | Path, wanted: frozenset[str] = ALL_SYMBOLS
                       ) -> dict[str, int]:
    """Name -> virtual address of the functions of ``wanted`` the ELF file defines."""
    try:
        with open(path, "rb") as f:
            return _scan(f, wanted)
    except (OSError, struct.error, ValueError):
        return {}


def _sections(f: BinaryIO) -> list[tuple[int, ...]] | None:
    ident = f.read(_EHDR.size)
    if len(ident) < _EHDR.size or ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
        return None
    (_, _, _, _, _, _, shoff, _, _, _, _, shentsize, shnum, _) = _EHDR.unpack(ident)
    if shentsize != _SHDR.size or shnum == 0:
        return None
    f.seek(shoff)
    raw = f.read(shentsize * shnum)
    return [_SHDR.unpack_from(raw, i * shentsize) for i in range(shnum)]


def _scan(f: BinaryIO, wanted: frozenset[str]) -> dict[str, int]:
    sections = _sections(f)
    if sections is None:
        return {}
    found: dict[str, int] = {}
    for sh in sections:
        sh_type, offset, size, link, entsize = sh[1], sh[4], sh[5], sh[6], sh[9]
        if sh_type not in (_SHT_SYMTAB, _SHT_DYNSYM) or entsize != _SYM.size:
            continue
        if size > MAX_SYMTAB_BYTES or link >= len(sections):
            continue
        str_off, str_size = sections[link][4], sections[link][5]
        if str_size > MAX_SYMTAB_BYTES:
            continue
        f.seek(str_off)
        strtab = f.read(str_size)
        # Cheap pre-check before walking every symbol in Python (big binaries have 100k+).
        if not any(b"\0" + w.encode() + b"\0" in strtab for w in wanted):
            continue
        f.seek(offset)
        syms = f.read(size)
        for i in range(0, len(syms) - _SYM.size + 1, _SYM.size):
            name_off, info, _, shndx, value, _ = _SYM.unpack_from(syms, i)
            if shndx == _SHN_UNDEF or value == 0 or (info & 0xF) not in (_STT_FUNC,
                                                                          _STT_GNU_IFUNC):
                continue
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end].decode("ascii", "replace")
            if name in wanted:
                found[name] = value
    return found


_SHF_EXECINSTR = 0x4


def code_at(path: str | Path, vaddr: int, n: int) -> bytes | None:
    """``n`` bytes of machine code at virtual address ``vaddr``: None unless they lie in an
    executable section other than the PLT (a call into the PLT leaves the file)."""
    try:
        with open(path, "rb") as f:
            sections = _sections(f)
            if sections is None:
                return None
            names = _section_names(f, sections)
            for idx, sh in enumerate(sections):
                flags, addr, offset, size = sh[2], sh[3], sh[4], sh[5]
                if not flags & _SHF_EXECINSTR or not addr <= vaddr < addr + size:
                    continue
                if names.get(idx, "").startswith(".plt") or vaddr + n > addr + size:
                    return None
                f.seek(offset + vaddr - addr)
                code = f.read(n)
                return code if len(code) == n else None
    except (OSError, struct.error, ValueError):
        return None
    return None


def _section_names(f: BinaryIO, sections: list[tuple[int, ...]]) -> dict[int, str]:
    f.seek(0)
    shstrndx = _EHDR.unpack(f.read(_EHDR.size))[13]
    if shstrndx >= len(sections):
        return {}
    f.seek(sections[shstrndx][4])
    table = f.read(min(sections[shstrndx][5], MAX_SYMTAB_BYTES))
    out = {}
    for idx, sh in enumerate(sections):
        end = table.find(b"\0", sh[0])
        out[idx] = table[sh[0]:end].decode("ascii", "replace")
    return out


# ---- where to attach: exported symbols, or the internal function a thin wrapper calls --------

_ENDBR64 = b"\xf3\x0f\x1e\xfa"  # CET landing pad: changes no register, so may be stepped over
_SUB_RSP_IMM8 = b"\x48\x83\xec"  # sub $imm8,%rsp
_CALL_REL32, _JMP_REL32 = 0xE8, 0xE9


def thin_wrapper_callee(code: bytes, vaddr: int) -> int | None:
    """The address a thin wrapper hands its (untouched) arguments to, or None.

    Recognised, x86-64 only: ``[endbr64] sub $imm8,%rsp; call rel32`` and ``[endbr64] jmp
    rel32``. Neither changes the argument registers before the call, so the callee sees the
    wrapper's own arguments.
    """
    i = 4 if code.startswith(_ENDBR64) else 0
    if code[i:i + 3] == _SUB_RSP_IMM8:
        i += 4
        op = _CALL_REL32
    else:
        op = _JMP_REL32
    if len(code) < i + 5 or code[i] != op:
        return None
    return vaddr + i + 5 + int.from_bytes(code[i + 1:i + 5], "little", signed=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachPoint:
    """One place to attach an entry (and maybe a return) program."""

    enter: str
    ret: str | None
    symbol: str | None = None  #: an exported function, or
    addr: int | None = None  #: a virtual address in the file
    label: str = ""  #: what it is, for messages


def attach_points(path: str | Path, lib: TlsLibrary, symbols: frozenset[str],
                  *, inner: bool = True) -> list[AttachPoint]:
    """Where to attach ``lib``'s programs in the file at ``path`` that defines ``symbols``.

    The table's probes on the exported symbols, except those an :class:`InnerProbe` replaces
    when its wrapper is recognised (with ``inner``; x86-64 only).
    """
    out: list[AttachPoint] = []
    replaced: set[str] = set()
    if inner and lib.inner and platform.machine() == "x86_64":
        addrs = function_addresses(path, lib.symbols)
        exported = set(addrs.values())
        for ip in lib.inner:
            if ip.unless in symbols or ip.wrapper not in addrs:
                continue
            code = code_at(path, addrs[ip.wrapper], 16)
            callee = thin_wrapper_callee(code, addrs[ip.wrapper]) if code else None
            head = code_at(path, callee, 4) if callee is not None else None
            if callee is None or head is None or callee in exported:
                # A wrapper over another exported function (LibreSSL's SSL_write_ex calls
                # SSL_write, whose arguments differ): not the internal function we know.
                continue
            if head == _ENDBR64:
                callee += 4  # the return address is still on top of the stack after it
            out.append(AttachPoint(enter=ip.enter, ret=ip.ret, addr=callee,
                                   label=f"{ip.wrapper}->{callee:#x}"))
            replaced |= ip.replaces
    for p in lib.probes:
        if p.symbol in symbols and p.symbol not in replaced:
            out.append(AttachPoint(enter=p.enter, ret=p.ret, symbol=p.symbol, label=p.symbol))
    return out
