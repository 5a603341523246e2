"""Filters whose values are small languages: grep (patterns, record-accessor keys, logical_op),
rewrite_tag, modify and record_modifier (rule arity) — fluentbit.md §2.3, §3.3. Fluent Bit checks
none of this at dry-run; a bad grep regex or rule only shows at start, a dotted grep key or an
unquoted record_modifier value never shows at all: records just do not match or lack a key."""

from __future__ import annotations

import re
from collections.abc import Iterator

from qtap_fluent.fluentbit.config import options
from qtap_fluent.fluentbit.config.checks.base import (
    FluentBitView,
    at_entry,
    at_section,
    onig_error,
    split_tokens,
)
from qtap_fluent.fluentbit.config.model import FILTER, ConfigFile, Entry, Section
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

#: Record accessor (FB src/record_accessor/ra.l): ``$`` IDENT then ``['key']`` / ``[n]`` parts;
#: IDENT may contain dots, which do *not* nest.
_ACCESSOR = re.compile(r"^\$?[_A-Za-z][A-Za-z0-9_.\-/]*(\[('([^']|'')*'|\d+)\])*$")


def _filters(view: FluentBitView, plugin: str) -> Iterator[tuple[ConfigFile, Section]]:
    for config in view.fluentbit:
        for s in config.of(FILTER):
            if s.plugin == plugin:
                yield config, s


def _grep_entries(s: Section) -> list[Entry]:
    return [e for e in s.entries if e.name in ("regex", "exclude")]


def nested_form(key: str) -> str:
    """``request.url`` as a record accessor that nests: ``$request['url']``."""
    head, *rest = key.lstrip("$").split(".")
    return "$" + head + "".join(f"['{part}']" for part in rest)


@register("fb-grep-pattern", Level.ERROR, "fluentbit",
          "grep Regex/Exclude that is not 'KEY REGEX' or whose regex does not compile "
          "(Oniguruma)")
def grep_pattern(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "grep"):
        for e in _grep_entries(s):
            if e.unresolved:
                continue
            key, _, pattern = e.value.partition(" ")  # split at the first space (grep.c)
            pattern = pattern.strip()
            if not key or not pattern:
                yield at_entry(e, config, Level.ERROR, "fb-grep-pattern",
                               f"{e.key} needs 'KEY REGEX' (a record key, a space, a pattern); "
                               f"got '{e.value}'", value=True)
                continue
            if not _ACCESSOR.match(key):
                yield at_entry(e, config, Level.ERROR, "fb-grep-pattern",
                               f"'{key}' is not a valid record accessor key", value=True)
            err = onig_error(pattern)
            if err:
                yield at_entry(e, config, Level.ERROR, "fb-grep-pattern",
                               f"{e.key} pattern does not compile: {err}", value=True)


@register("fb-grep-dotted-key", Level.WARNING, "fluentbit",
          "grep key written 'a.b': dots do not nest, the filter looks for a key named 'a.b'")
def grep_dotted_key(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "grep"):
        for e in _grep_entries(s):
            key = e.value.partition(" ")[0]
            if "." in key and "[" not in key and _ACCESSOR.match(key):
                what = ("lets no record through" if e.name == "regex" else "excludes nothing")
                yield at_entry(e, config, Level.WARNING, "fb-grep-dotted-key",
                               f"'{key}' names one flat key (record accessor dots do not nest): "
                               f"on a nested record this {e.key} {what}; write "
                               f"{nested_form(key)}", value=True)


@register("fb-grep-logical-op", Level.ERROR, "fluentbit",
          "grep Logical_Op not AND/OR/legacy, or AND/OR with both Regex and Exclude")
def grep_logical_op(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "grep"):
        op = s.entry("logical_op")
        if op is None or op.unresolved:
            continue
        value = op.value.lower()
        if value not in ("and", "or", "legacy"):
            yield at_entry(op, config, Level.ERROR, "fb-grep-logical-op",
                           f"Logical_Op '{op.value}' is not AND, OR or legacy (Fluent Bit "
                           "silently uses legacy)", value=True)
        elif value != "legacy" and s.get_all("regex") and s.get_all("exclude"):
            yield at_entry(op, config, Level.ERROR, "fb-grep-logical-op",
                           f"Logical_Op {op.value} cannot mix Regex and Exclude (Fluent Bit: "
                           "\"Both 'regex' and 'exclude' are set.\"); use two grep filters",
                           value=True)
        if not _grep_entries(s):
            yield at_section(s, config, Level.ERROR, "fb-grep-pattern",
                             "grep filter without Regex or Exclude")


@register("fb-rewrite-tag-rule", Level.ERROR, "fluentbit",
          "rewrite_tag Rule that is not '$KEY REGEX NEW_TAG KEEP' (4 fields, KEEP a boolean)")
def rewrite_tag_rule(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "rewrite_tag"):
        rules = s.get_all("rule")
        if not rules:
            yield at_section(s, config, Level.ERROR, "fb-rewrite-tag-rule",
                             "rewrite_tag filter without Rule")
        for e in rules:
            if e.unresolved:
                continue
            tokens = split_tokens(e.value)
            if len(tokens) != 4:
                yield at_entry(e, config, Level.ERROR, "fb-rewrite-tag-rule",
                               f"Rule has {len(tokens)} field(s), needs 4: $KEY REGEX NEW_TAG "
                               "KEEP (quote a regex that contains spaces)", value=True)
                continue
            key, pattern, _tag, keep = tokens
            if not key.startswith("$") or not _ACCESSOR.match(key):
                yield at_entry(e, config, Level.ERROR, "fb-rewrite-tag-rule",
                               f"Rule key '{key}' must be a record accessor such as $log or "
                               "$request['url']", value=True)
            err = onig_error(pattern)
            if err:
                yield at_entry(e, config, Level.ERROR, "fb-rewrite-tag-rule",
                               f"Rule regex does not compile: {err}", value=True)
            if options.parse_bool(keep) is None:
                yield at_entry(e, config, Level.ERROR, "fb-rewrite-tag-rule",
                               f"Rule KEEP must be true or false, not '{keep}'", value=True)


#: modify rules and the number of parameters each takes (FB plugins/filter_modify/modify.c).
MODIFY_RULES = {
    "set": 2, "add": 2, "rename": 2, "hard_rename": 2, "copy": 2, "hard_copy": 2,
    "remove": 1, "remove_wildcard": 1, "remove_regex": 1, "move_to_start": 1, "move_to_end": 1,
}
MODIFY_CONDITIONS = {
    "key_exists": 1, "key_does_not_exist": 1, "a_key_matches": 1, "no_key_matches": 1,
    "key_value_equals": 2, "key_value_does_not_equal": 2, "key_value_matches": 2,
    "key_value_does_not_match": 2, "matching_keys_have_matching_values": 2,
    "matching_keys_do_not_have_matching_values": 2,
}


@register("fb-modify-rule", Level.ERROR, "fluentbit",
          "modify rule or Condition with the wrong number of parameters or an unknown name")
def modify_rule(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "modify"):
        for e in s.entries:
            if e.unresolved or e.name not in (*MODIFY_RULES, "condition"):
                continue
            tokens = split_tokens(e.value)  # quoted parameters may contain spaces
            if e.name == "condition":
                name = tokens[0].lower() if tokens else ""
                want = MODIFY_CONDITIONS.get(name)
                if want is None:
                    yield at_entry(e, config, Level.ERROR, "fb-modify-rule",
                                   f"unknown modify Condition '{tokens[0] if tokens else ''}'",
                                   value=True)
                    continue
                got, what = len(tokens) - 1, f"Condition {tokens[0]}"
            else:
                want, got, what = MODIFY_RULES[e.name], len(tokens), e.key
            if got != want:
                yield at_entry(e, config, Level.ERROR, "fb-modify-rule",
                               f"{what} takes {want} parameter(s), got {got} (quote a value "
                               "that contains spaces)", value=True)


@register("fb-record-modifier", Level.ERROR, "fluentbit",
          "record_modifier Record not 'KEY VALUE' (an unquoted value with spaces is dropped)")
def record_modifier(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _filters(view, "record_modifier"):
        for e in s.get_all("record"):
            if e.unresolved:
                continue
            tokens = split_tokens(e.value)
            if len(tokens) != 2:
                yield at_entry(e, config, Level.ERROR, "fb-record-modifier",
                               f"Record needs 'KEY VALUE', got {len(tokens)} field(s): Fluent "
                               "Bit drops it ('invalid record parameters'); quote a value with "
                               "spaces", value=True)
        if s.get_all("remove_key") and (s.get_all("allowlist_key")
                                         or s.get_all("whitelist_key")):
            yield at_section(s, config, Level.ERROR, "fb-record-modifier",
                             "Remove_key and Allowlist_key cannot be used together")
