"""Option facts (shipped 5.1.1 tables) and Fluent Bit value parsing."""

from __future__ import annotations

import pytest

from qtap_fluent.fluentbit.config import options


def test_known_properties_from_the_shipped_facts() -> None:
    assert options.known("output", "s3", "total_file_size")
    assert options.known("output", "S3", "Total_File_Size")
    assert options.known("output", "s3", "match")  # global option
    assert options.known("output", "s3", "tls.verify")  # network_tls group
    assert options.known("output", "stdout", "workers")  # generic output key
    assert options.known("input", "forward", "net.share_port")
    assert options.known("input", "tail", "parser_3")  # prefixed option
    assert options.known("filter", "grep", "condition")  # always allowed
    assert not options.known("output", "s3", "bukcet")
    assert not options.known("output", "nosuch", "match")
    assert options.options_of("output", "es") is None  # real plugin, config map not shipped
    assert options.plugin_known("output", "es")
    assert not options.plugin_known("output", "s4")


def test_multi_flags() -> None:
    assert options.option("filter", "grep", "Regex") == options.Option("regex", "string", None,
                                                                       True)
    opt = options.option("filter", "rewrite_tag", "rule")
    assert opt is not None and opt.multi and opt.type == "slist"
    opt = options.option("output", "stdout", "format")
    assert opt is not None and not opt.multi
    assert options.service_options()["parsers_file"].multi


def test_suggest() -> None:
    assert options.suggest(["bucket", "region"], "bukcet") == "bucket"
    assert options.suggest(["bucket", "region"], "zzzz") is None


@pytest.mark.parametrize(("text", "value"), [
    ("on", True), ("Yes", True), ("TRUE", True), ("off", False), ("no", False),
    ("False", False), ("1", None), ("maybe", None), ("", None)])
def test_parse_bool(text: str, value: bool | None) -> None:
    assert options.parse_bool(text) is value


@pytest.mark.parametrize(("text", "value"), [
    ("50M", 50_000_000), ("50MB", 50_000_000), ("5k", 5000), ("1.5G", 1_500_000_000),
    ("100", 100), ("false", 0), ("5MiB", None), ("M", None), ("-1", None), ("5 M", 5_000_000)])
def test_parse_size(text: str, value: int | None) -> None:
    assert options.parse_size(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("10s", 10), ("10m", 600), ("2H", 7200), ("6D", 518400), ("1.5h", None),
    ("x", None), ("10 days", None)])
def test_parse_time(text: str, value: int | None) -> None:
    assert options.parse_time(text) == value


def test_parse_int_and_leading_number() -> None:
    assert options.parse_int(" 42 ") == 42
    assert options.parse_int("4x") is None
    assert options.parse_leading_number("4x") == 4.0
    assert options.parse_leading_number("x4") is None


def test_known_for_gen_every_kind() -> None:
    """``gen`` asserts every key it writes is known: Name, service and parser keys included."""
    assert options.known("output", "s3", "Name")
    assert options.known("input", "forward", "name")
    assert options.known("service", "", "Parsers_File")
    assert options.known("service", "", "storage.path")
    assert not options.known("service", "", "listen")
    assert options.known("parser", "", "Time_Key")
    assert options.known("multiline_parser", "", "rule")
    assert not options.known("parser", "", "time_formt")


def test_enum_values() -> None:
    assert options.enum_values("input", "tail", "storage.type") == ("memory", "filesystem",
                                                                   "memrb")
    assert options.enum_values("filter", "nest", "Operation") == ("nest", "lift")
    assert options.enum_values("output", "stdout", "format") is None
