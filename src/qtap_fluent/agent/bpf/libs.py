"""Which TLS libraries we probe, and how: one table, one row per library kind.

A row names the file names that identify the library, the symbols that prove it, and for
every symbol the entry and return programs of ``tls.bpf.c``. The loader walks this table; adding
a library is adding a row. No bcc here: the ELF symbol reader is plain :mod:`struct`.
"""

from __future__ import annotations

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
class TlsLibrary:
    kind: str
    file_re: re.Pattern[str]  #: shared-object file names of this library
    probes: tuple[Probe, ...]
    marker: str | None = None  #: a symbol only this kind defines (tells BoringSSL from OpenSSL)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(p.symbol for p in self.probes)


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
)

#: Looked at in this order; the first row whose required symbols a file defines wins.
TLS_LIBRARIES: tuple[TlsLibrary, ...] = (
    TlsLibrary(kind="boringssl", file_re=re.compile(r"^lib(ssl|boringssl)\.so[.\d]*$"),
               probes=_OPENSSL_PROBES, marker="OPENSSL_is_boringssl"),
    # libssl.so.1.1, libssl.so.3 (but not NSS's libssl3.so: it defines no SSL_write).
    TlsLibrary(kind="openssl", file_re=re.compile(r"^libssl\.so[.\d]*$"),
               probes=_OPENSSL_PROBES),
    TlsLibrary(kind="gnutls", file_re=re.compile(r"^libgnutls\.so[.\d]*$"), probes=(
        Probe(symbol="gnutls_record_send", enter="qf_gnutls_send_enter",
              ret="qf_gnutls_send_return", required=True),
        Probe(symbol="gnutls_record_recv", enter="qf_gnutls_recv_enter",
              ret="qf_gnutls_recv_return", required=True),
        Probe(symbol="gnutls_handshake", enter="qf_gnutls_other_enter",
              ret="qf_gnutls_other_return"),
        Probe(symbol="gnutls_bye", enter="qf_gnutls_other_enter", ret="qf_gnutls_other_return"),
    )),
)

#: Every symbol any row cares about (what the ELF reader looks for).
ALL_SYMBOLS: frozenset[str] = frozenset().union(
    *(lib.symbols for lib in TLS_LIBRARIES),
    *({lib.marker} for lib in TLS_LIBRARIES if lib.marker),
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
        if lib.marker is not None and lib.marker not in have:
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
    try:
        with open(path, "rb") as f:
            return _scan(f, wanted)
    except (OSError, struct.error, ValueError):
        return frozenset()


def _scan(f: BinaryIO, wanted: frozenset[str]) -> frozenset[str]:
    ident = f.read(_EHDR.size)
    if len(ident) < _EHDR.size or ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
        return frozenset()
    (_, _, _, _, _, _, shoff, _, _, _, _, shentsize, shnum, _) = _EHDR.unpack(ident)
    if shentsize != _SHDR.size or shnum == 0:
        return frozenset()
    f.seek(shoff)
    raw = f.read(shentsize * shnum)
    sections = [_SHDR.unpack_from(raw, i * shentsize) for i in range(shnum)]
    found: set[str] = set()
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
                found.add(name)
    return frozenset(found)

