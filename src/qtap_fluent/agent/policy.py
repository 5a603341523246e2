"""The capture policy: which connections to watch and what each transaction's record keeps.

Everything in Qtap's YAML that concerns capture (qtap.md §1.3-1.4): ``tap.direction``,
``ignore_loopback``, ``filters`` (predefined groups and custom exe filters, five strategies,
``only``), ``endpoints`` choosing a stack per domain, ``http_capture`` level/format and rules in
order (first match wins; an evaluation error is no match). Plus redaction at source.
Pure: built from plain data; ``agent.qtapconfig`` builds it from the Qtap YAML model, and the
process filters are ``qtap_fluent.qtap.filters`` (passed in as ``exe_skip``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qtap_fluent.agent import build
from qtap_fluent.agent.assembler import EGRESS_EXTERNAL, EGRESS_INTERNAL, INGRESS, Exchange
from qtap_fluent.agent.tracker import ConnInfo
from qtap_fluent.records import HttpTransaction, from_dict
from qtap_fluent.redact import Redactor

DIRECTIONS = ("all", "ingress", "egress", "egress-internal", "egress-external")
#: tap.direction -> record directions it lets through. Unknown or empty means all (§1.4).
_DIRECTION_ALLOWS: dict[str, frozenset[str]] = {
    "all": frozenset({INGRESS, EGRESS_INTERNAL, EGRESS_EXTERNAL}),
    "ingress": frozenset({INGRESS}),
    "egress": frozenset({EGRESS_INTERNAL, EGRESS_EXTERNAL}),
    "egress-internal": frozenset({EGRESS_INTERNAL}),
    "egress-external": frozenset({EGRESS_EXTERNAL}),
}

# BPF is_local_ip (qtap.md §1.4): loopback, link-local v4, unspecified, ::1, ::, mapped 127/8.
_LOCAL = tuple(ipaddress.ip_network(n) for n in
               ("127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/32", "::1/128", "::/128"))


def is_local_ip(ip: str) -> bool:
    """What ``tap.ignore_loopback`` skips (IPv4-mapped IPv6 addresses count as their IPv4)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == n.version and addr in n for n in _LOCAL)


#: Skip-flag bits of ``tap.filters`` ``only`` (qtap.md §1.4): data=1, dns=2, tls=4, http=8.
SKIP_DATA, SKIP_DNS, SKIP_TLS, SKIP_HTTP = 1, 2, 4, 8

ExeSkip = Callable[[str, int], int]
"""(exe, pid) -> skip flags; ``qtap_fluent.qtap.filters.ExeMatcher.skip_flags`` in practice."""


class Matcher(Protocol):
    """A compiled rule expression (``qtap_fluent.qtap.rulekit.CompiledRule``)."""

    def matches(self, ctx: Mapping[str, Any]) -> bool: ...


class RecordRedactor(Protocol):
    """``qtap_fluent.redact.Redactor``: masks secrets in a record map."""

    def redact_record(self, record: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    name: str
    matcher: Matcher
    level: str
    format: str | None = None  #: None inherits the plugin's format


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCapture:
    """One stack's ``http_capture`` plugin config."""

    level: str = build.NONE
    format: str = "json"
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    level: str
    format: str
    rule: str = ""  #: the rule that decided, "" for the plugin default


NO_CAPTURE = Decision(level=build.NONE, format="json")
#: Bound of a policy's domain -> decision memo.
_DECISIONS_MAX = 4096


@functools.lru_cache(maxsize=256)
def _decision(level: str, format: str, rule: str = "") -> Decision:
    # Decisions are immutable and few (levels x formats x rules): one object each, not one per
    # transaction.
    return Decision(level=level, format=format, rule=rule)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """The whole capture policy. ``stacks`` maps a stack name to its http_capture (or None)."""

    direction: str = "all"
    ignore_loopback: bool = False
    exe_skip: ExeSkip | None = None  #: tap.filters (groups and custom), compiled
    stacks: Mapping[str, HttpCapture | None] = field(default_factory=dict)
    http_stack: str = ""
    endpoints: Mapping[str, str] = field(default_factory=dict)  #: domain -> stack name
    redactor: RecordRedactor | None = None
    #: domain -> decision, for domains whose stack has no rules (the decision is then a
    #: function of the domain alone): ~2,500 instructions per transaction less (callgrind).
    #: Bounded; a pure function of the domain, so sharing it between threads is harmless.
    _by_domain: dict[str, Decision] = field(default_factory=dict, init=False, repr=False,
                                            compare=False)

    # -- connection level (decided once, before parsing) -----------------------------------

    def accept(self, info: ConnInfo) -> bool:
        """Should this connection be parsed at all?"""
        allowed = _DIRECTION_ALLOWS.get(self.direction, _DIRECTION_ALLOWS["all"])
        if info.direction not in allowed:
            return False
        if self.ignore_loopback and info.remote is not None and is_local_ip(info.remote.ip):
            return False
        if self.exe_skip is not None:
            flags = self.exe_skip(info.exe, info.pid)
            # "data" or "http" skipped: no HTTP from this process; "tls": none over TLS.
            if flags & (SKIP_DATA | SKIP_HTTP) or (flags & SKIP_TLS and info.tls):
                return False
        return True

    # -- transaction level -----------------------------------------------------------------

    def stack_for(self, domain: str) -> str:
        """``tap.endpoints`` override the stack for their domain; else ``tap.http.stack``."""
        if domain and self.endpoints:
            stack = self.endpoints.get(domain.lower().rstrip("."))
            if stack is not None:
                return stack
        return self.http_stack

    def decide(self, ex: Exchange, parts: build.Parts | None = None) -> Decision:
        """Level and format for one exchange."""
        p = parts or build.Parts(ex)
        domain = p.domain
        decision = self._by_domain.get(domain)
        if decision is not None:
            return decision
        stack = self.stack_for(domain)
        cap = self.stacks.get(stack) if stack and stack != "none" else None
        if cap is None:
            decision = NO_CAPTURE
        elif cap.rules:
            ctx = build.rule_context(ex, p)
            for rule in cap.rules:
                if rule.matcher.matches(ctx):
                    return _decision(rule.level, rule.format or cap.format, rule.name)
            return _decision(cap.level, cap.format)
        else:
            decision = _decision(cap.level, cap.format)
        if len(self._by_domain) >= _DECISIONS_MAX:
            self._by_domain.clear()
        self._by_domain[domain] = decision
        return decision

    def apply_map(self, ex: Exchange) -> tuple[Decision, dict[str, Any] | None]:
        """Decide and build: the record's map at its level (None for ``none``), redacted.

        The map (``build.record_map``) is what the outputs write; the caller owns it."""
        parts = build.Parts(ex)
        # decide()'s memo written out (one call less per transaction, ~600 instructions)
        decision = self._by_domain.get(parts.domain) or self.decide(ex, parts)
        level = decision.level
        if level == build.NONE:
            return decision, None
        redactor = self.redactor
        if redactor is None or redactor.__class__ is Redactor:  # ours: in place, while building
            return decision, build.record_map(ex, level, parts, redactor)
        return decision, redactor.redact_record(build.record_map(ex, level, parts))


def redact(rec: HttpTransaction, redactor: RecordRedactor) -> HttpTransaction:
    """Apply the record redactor (which works on the Qtap map) to a typed record: ``rec`` itself
    when nothing changes, else the redacted map read back (``records.from_dict``)."""
    d = rec.to_dict()
    if isinstance(redactor, Redactor):  # in place, checking the raw bodies (no base64 trip)
        changed = redactor.redact_map(d, rec.request.body, rec.response.body)
    else:
        after = redactor.redact_record(d)
        changed, d = after != d, after
    return from_dict(d, container_id=rec.container_id) if changed else rec
