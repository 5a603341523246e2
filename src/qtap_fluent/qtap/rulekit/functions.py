"""The functions a rule may call: rulekit's stdlib plus qtap's extensions — one registry.

* ``starts_with(value, prefix)`` (rulekit stdlib): both sides formatted like Go ``fmt.Sprint``.
* ``zone(domain)`` (qtap ``pkg/rulekitext``): the registrable domain, eTLD+1 by the Public
  Suffix List; a domain that has none (``com``, ``localhost``) is returned as it is.
* ``in_zone(domain, zone)``: ``domain`` is ``zone`` or a subdomain of it.

Names here are reserved: a config macro may not reuse one (qtap refuses such configs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtap_fluent.qtap.rulekit.values import go_sprint


@dataclass(frozen=True, slots=True)
class ArgError:
    """A function's refusal of its arguments; becomes an error result."""

    message: str


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    params: tuple[str, ...]
    impl: Callable[..., Any]
    origin: str  #: "stdlib" (rulekit) or "qtap" (qtap's rulekitext)

    @property
    def arity(self) -> int:
        return len(self.params)


def _starts_with(value: Any, prefix: Any) -> bool:
    return go_sprint(value).startswith(go_sprint(prefix))


def _zone(domain: Any) -> Any:
    if not isinstance(domain, str):
        return ArgError(f"zone: argument 'domain' must be a string, got {type(domain).__name__}")
    return zone_of(domain)


def _in_zone(domain: Any, zone: Any) -> Any:
    if not isinstance(domain, str) or not isinstance(zone, str):
        return ArgError("in_zone: arguments 'domain' and 'zone' must be strings")
    return domain == zone or domain.endswith("." + zone)


FUNCTIONS: dict[str, Function] = {
    f.name: f for f in (
        Function("starts_with", ("value", "prefix"), _starts_with, "stdlib"),
        Function("zone", ("domain",), _zone, "qtap"),
        Function("in_zone", ("domain", "zone"), _in_zone, "qtap"),
    )
}

# --- Public Suffix List ---------------------------------------------------------------------
# qtap uses golang.org/x/net/publicsuffix (ICANN and private sections). We read the list the
# Debian/Ubuntu ``publicsuffix`` package installs; without it a small built-in subset is used
# (wrong only for suffixes it lacks, where the answer falls back to the last two labels).
PSL_PATHS = (Path("/usr/share/publicsuffix/public_suffix_list.dat"),)
_FALLBACK_RULES = (
    "com", "net", "org", "edu", "gov", "mil", "int", "io", "dev", "app", "co", "us", "uk",
    "co.uk", "org.uk", "ac.uk", "gov.uk", "de", "fr", "jp", "co.jp", "au", "com.au", "net.au",
    "org.au", "nz", "co.nz", "br", "com.br", "cn", "com.cn", "in", "co.in", "ca", "eu",
    "github.io", "herokuapp.com", "cloudfront.net", "amazonaws.com",
    "s3.amazonaws.com", "appspot.com", "azurewebsites.net", "vercel.app", "netlify.app",
    "*.compute.amazonaws.com", "*.ck", "!www.ck",
)


@dataclass(slots=True)
class _Rules:
    exact: set[str]
    wildcard: set[str]
    exception: set[str]


_rules: _Rules | None = None


def _load_rules() -> _Rules:
    global _rules
    if _rules is None:
        lines: list[str] = list(_FALLBACK_RULES)
        for path in PSL_PATHS:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
                break
            except OSError:
                continue
        rules = _Rules(set(), set(), set())
        for line in lines:
            rule = line.strip().split(" ", 1)[0]
            if not rule or rule.startswith("//"):
                continue
            rule = rule.encode("idna").decode("ascii") if not rule.isascii() else rule
            if rule.startswith("!"):
                rules.exception.add(rule[1:])
            elif rule.startswith("*."):
                rules.wildcard.add(rule[2:])
            else:
                rules.exact.add(rule)
        _rules = rules
    return _rules


def _public_suffix_len(labels: list[str]) -> int:
    """How many trailing labels form the public suffix (the default rule ``*`` gives 1)."""
    rules = _load_rules()
    best = 1
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in rules.exception:
            return len(labels) - i - 1
        parent = ".".join(labels[i + 1:])
        if candidate in rules.exact or (parent and parent in rules.wildcard):
            best = max(best, len(labels) - i)
    return best


def zone_of(domain: str) -> str:
    """eTLD+1 of ``domain`` (a trailing dot ignored); ``domain`` itself when there is none."""
    domain = domain.removesuffix(".")
    labels = domain.split(".")
    if not domain or any(not label for label in labels):
        return domain
    n = _public_suffix_len(labels)
    if n >= len(labels):
        return domain
    return ".".join(labels[-n - 1:])
