"""Every Fluent Bit rule: a broken config (classic and, where it applies, YAML) must be reported
under that rule id at that line; the fixed config must not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from qtap_fluent.problems import Problem

Run = Callable[..., list[Problem]]

SERVICE = "[SERVICE]\n    Flush 1\n    Log_Level info\n"
IN = "[INPUT]\n    Name dummy\n    Tag app\n"
OUT = "[OUTPUT]\n    Name stdout\n    Match app\n"
YIN = "pipeline:\n  inputs:\n    - name: dummy\n      tag: app\n"
YOUT = "  outputs:\n    - name: stdout\n      match: app\n"


@dataclass
class Case:
    id: str
    files: dict[str, str]
    expect: list[tuple[str, str, str | int]]  #: (rule, file, text on the line or line number)
    main: str = "fluent-bit.conf"
    forward_tags: list[str] = field(default_factory=list)
    parsers: tuple[str, ...] = ()


def classic(body: str, *, service: str = SERVICE, inp: str = IN, out: str = OUT) -> str:
    return service + inp + body + out


def yaml(body: str, *, top: str = "") -> str:
    return top + YIN + body + YOUT


CASES = [
    # -- loader: syntax, indentation, includes, variables, comments ---------------------------
    Case("syntax-bad-header", {"fluent-bit.conf": classic("[FILTER\n    Name grep\n")},
         [("fb-syntax", "fluent-bit.conf", "[FILTER")]),
    Case("syntax-tab-separator", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name\tstdout\n    Match app\n")},
         [("fb-syntax", "fluent-bit.conf", "Name\tstdout")]),
    Case("syntax-tab-in-key", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n    Match\tapp x\n")},
         [("fb-syntax", "fluent-bit.conf", "Match\tapp")]),
    Case("syntax-empty-value", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n    Format \n    Match app\n")},
         [("fb-syntax", "fluent-bit.conf", "Format ")]),
    Case("syntax-bad-meta", {"fluent-bit.conf": "@INCLUDEX other.conf\n" + classic("")},
         [("fb-syntax", "fluent-bit.conf", "@INCLUDEX")]),
    Case("syntax-key-outside-section", {"fluent-bit.conf": "    Flush 1\n" + classic("")},
         [("fb-syntax", "fluent-bit.conf", "Flush 1")]),
    Case("indent-tab-space", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n\t   Match app\n")},
         [("fb-indentation", "fluent-bit.conf", "\t   Match")]),
    Case("indent-too-low", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n  Match app\n")},
         [("fb-indentation", "fluent-bit.conf", "  Match app")]),
    Case("indent-extra", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n      Match app\n")},
         [("fb-indentation", "fluent-bit.conf", "      Match app")]),
    Case("indent-none", {"fluent-bit.conf": "[SERVICE]\nFlush 1\n" + IN + OUT},
         [("fb-indentation", "fluent-bit.conf", "Flush 1")]),
    Case("include-missing", {"fluent-bit.conf": "@INCLUDE nope.conf\n" + classic("")},
         [("fb-include", "fluent-bit.conf", "@INCLUDE nope")]),
    Case("include-cycle", {"fluent-bit.conf": "@INCLUDE a.conf\n" + classic(""),
                           "a.conf": "@include fluent-bit.conf\n"},
         [("fb-include", "a.conf", "@include fluent-bit.conf")]),
    Case("include-twice", {"fluent-bit.conf": "@INCLUDE a.conf\n@INCLUDE a.conf\n" + classic(""),
                           "a.conf": "[FILTER]\n    Name stdout\n    Match app\n"},
         [("fb-include", "fluent-bit.conf", "@INCLUDE a.conf")]),
    Case("include-glob-nomatch", {"fluent-bit.conf": "@INCLUDE conf.d/*.conf\n" + classic("")},
         [("fb-include", "fluent-bit.conf", "@INCLUDE conf.d")]),
    Case("include-yaml-missing", {"fluent-bit.yaml": "includes:\n  - nope.yaml\n" + yaml("")},
         [("fb-include", "fluent-bit.yaml", "- nope.yaml")], main="fluent-bit.yaml"),
    Case("variable-undefined", {"fluent-bit.conf": classic("", inp="[INPUT]\n    Name dummy\n    Tag ${APP_TAG}x\n")},
         [("fb-variable", "fluent-bit.conf", "${APP_TAG}")]),
    Case("variable-undefined-yaml", {"fluent-bit.yaml": yaml("", top="service:\n  flush: ${NOPE_FLUSH}\n")},
         [("fb-variable", "fluent-bit.yaml", "${NOPE_FLUSH}")], main="fluent-bit.yaml"),
    Case("eol-comment", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Flush 1 # seconds\n")},
         [("fb-eol-comment", "fluent-bit.conf", "# seconds")]),
    # -- sections, plugins, properties ------------------------------------------------------
    Case("unknown-section", {"fluent-bit.conf": classic("[INPTU]\n    Name dummy\n")},
         [("fb-unknown-section", "fluent-bit.conf", "[INPTU]")]),
    Case("unknown-section-yaml", {"fluent-bit.yaml": yaml("", top="pipelines:\n  x: 1\n")},
         [("fb-unknown-section", "fluent-bit.yaml", "pipelines:")], main="fluent-bit.yaml"),
    Case("unknown-section-yaml-pipeline", {"fluent-bit.yaml": YIN + "  filter:\n    - name: grep\n" + YOUT},
         [("fb-unknown-section", "fluent-bit.yaml", "  filter:")], main="fluent-bit.yaml"),
    Case("parser-in-main", {"fluent-bit.conf": classic("[PARSER]\n    Name j\n    Format json\n")},
         [("fb-parser-in-main", "fluent-bit.conf", "[PARSER]")]),
    Case("missing-name", {"fluent-bit.conf": classic("[FILTER]\n    Match app\n")},
         [("fb-missing-name", "fluent-bit.conf", "[FILTER]")]),
    Case("unknown-plugin", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdot\n    Match app\n")},
         [("fb-unknown-plugin", "fluent-bit.conf", "stdot")]),
    Case("unknown-plugin-yaml", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: s4\n      match: app\n"},
         [("fb-unknown-plugin", "fluent-bit.yaml", "name: s4")], main="fluent-bit.yaml"),
    Case("unknown-property", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bukcet b\n    bucket b\n    s3_key_format /$UUID\n")},
         [("fb-unknown-property", "fluent-bit.conf", "bukcet")]),
    Case("unknown-property-yaml", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: stdout\n      match: app\n      formatt: json\n"},
         [("fb-unknown-property", "fluent-bit.yaml", "formatt")], main="fluent-bit.yaml"),
    Case("duplicate-property", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n    Match app\n    Format json\n    format json_lines\n")},
         [("fb-duplicate-property", "fluent-bit.conf", "format json_lines")]),
    Case("duplicate-property-yaml-list", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: stdout\n      match: [app, app]\n"},
         [("fb-duplicate-property", "fluent-bit.yaml", "match: [app")], main="fluent-bit.yaml"),
    Case("service-key", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Flush 1\n    Listen 0.0.0.0\n")},
         [("fb-service-key", "fluent-bit.conf", "Listen")]),
    Case("service-key-yaml", {"fluent-bit.yaml": yaml("", top="service:\n  flsh: 1\n")},
         [("fb-service-key", "fluent-bit.yaml", "flsh")], main="fluent-bit.yaml"),
    Case("log-level", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Log_Level verbose\n")},
         [("fb-log-level", "fluent-bit.conf", "verbose")]),
    Case("log-level-plugin", {"fluent-bit.conf": classic("", inp=IN + "    log_level loud\n")},
         [("fb-log-level", "fluent-bit.conf", "loud")]),
    # -- values --------------------------------------------------------------------------------
    Case("bool", {"fluent-bit.conf": classic("", out=OUT + "[OUTPUT]\n    Name forward\n    Match app\n    Host 127.0.0.1\n    tls maybe\n")},
         [("fb-bool", "fluent-bit.conf", "tls maybe")]),
    Case("bool-service", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Daemon nope\n")},
         [("fb-bool", "fluent-bit.conf", "Daemon")]),
    Case("size", {"fluent-bit.conf": classic("", inp=IN + "    Mem_Buf_Limit 5Q\n")},
         [("fb-size", "fluent-bit.conf", "5Q")]),
    Case("time", {"fluent-bit.conf": classic("", out=OUT + "[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    upload_timeout 10x\n    s3_key_format /$UUID\n")},
         [("fb-time", "fluent-bit.conf", "10x")]),
    Case("int", {"fluent-bit.conf": classic("", inp=IN + "    Rate many\n")},
         [("fb-int", "fluent-bit.conf", "Rate many")]),
    Case("port-non-numeric", {"fluent-bit.conf": classic("", inp="[INPUT]\n    Name forward\n    Port 24224a\n", out="[OUTPUT]\n    Name stdout\n    Match *\n")},
         [("fb-port", "fluent-bit.conf", "24224a")]),
    Case("port-range-yaml", {"fluent-bit.yaml": "pipeline:\n  inputs:\n    - name: forward\n      port: 70000\n  outputs:\n    - name: stdout\n      match: '*'\n"},
         [("fb-port", "fluent-bit.yaml", "70000")], main="fluent-bit.yaml"),
    Case("port-service", {"fluent-bit.conf": classic("", service="[SERVICE]\n    HTTP_Port 0\n")},
         [("fb-port", "fluent-bit.conf", "HTTP_Port")]),
    # -- parsers --------------------------------------------------------------------------------
    Case("parsers-file-missing", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File nope.conf\n")},
         [("fb-parsers-file", "fluent-bit.conf", "nope.conf")]),
    Case("parser-no-format", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                              "parsers.conf": "[PARSER]\n    Name a\n    Format json\n\n[PARSER]\n    Name b\n"},
         [("fb-parser-definition", "parsers.conf", "[PARSER]")]),
    Case("parser-bad-format", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                               "parsers.conf": "[PARSER]\n    Name a\n    Format yaml\n"},
         [("fb-parser-definition", "parsers.conf", "Format yaml")]),
    Case("parser-duplicate-name", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                   "parsers.conf": "[PARSER]\n    Name a\n    Format json\n[PARSER]\n    Name a\n    Format logfmt\n"},
         [("fb-parser-definition", "parsers.conf", 5)]),
    Case("parser-regex", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                          "parsers.conf": "[PARSER]\n    Name a\n    Format regex\n    Regex ^(?<host>[^ ]*\n"},
         [("fb-parser-regex", "parsers.conf", "Regex ^(")]),
    Case("parser-regex-multiline", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                    "parsers.conf": '[MULTILINE_PARSER]\n    name ml\n    type regex\n    rule "start_state" "/([a-z]+/" "cont"\n'},
         [("fb-parser-regex", "parsers.conf", "rule ")]),
    Case("parser-regex-yaml", {"fluent-bit.yaml": yaml("", top="parsers:\n  - name: a\n    format: regex\n    regex: '^(?<x>[0-9]+'\n")},
         [("fb-parser-regex", "fluent-bit.yaml", "regex: '^(")], main="fluent-bit.yaml"),
    Case("parser-regex-standalone", {"fluent-bit.conf": classic(""),
                                     "parsers-extra.conf": "[PARSER]\n    Name a\n    Format regex\n    Regex [z-a]\n"},
         [("fb-parser-regex", "parsers-extra.conf", "[z-a]")], parsers=("parsers-extra.conf",)),
    Case("parser-filter-no-key", {"fluent-bit.conf": classic("[FILTER]\n    Name parser\n    Match app\n    Parser j\n", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                  "parsers.conf": "[PARSER]\n    Name j\n    Format json\n"},
         [("fb-parser-filter", "fluent-bit.conf", "[FILTER]")]),
    Case("parser-filter-unknown", {"fluent-bit.conf": classic("[FILTER]\n    Name parser\n    Match app\n    Key_Name log\n    Parser jsn\n", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                   "parsers.conf": "[PARSER]\n    Name json\n    Format json\n"},
         [("fb-parser-filter", "fluent-bit.conf", "Parser jsn")]),
    Case("parser-filter-unknown-yaml", {"fluent-bit.yaml": YIN + "  filters:\n    - name: parser\n      match: app\n      key_name: log\n      parser: nope\n" + YOUT},
         [("fb-parser-filter", "fluent-bit.yaml", "parser: nope")], main="fluent-bit.yaml"),
    # -- grep / rewrite_tag ---------------------------------------------------------------------
    Case("grep-no-pattern", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Regex source\n")},
         [("fb-grep-pattern", "fluent-bit.conf", "Regex source")]),
    Case("grep-bad-regex", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Exclude log (abc\n")},
         [("fb-grep-pattern", "fluent-bit.conf", "(abc")]),
    Case("grep-bad-regex-yaml", {"fluent-bit.yaml": yaml("  filters:\n    - name: grep\n      match: app\n      regex:\n        - log ok\n        - log a{2\n        - log [x\n")},
         [("fb-grep-pattern", "fluent-bit.yaml", "log [x")], main="fluent-bit.yaml"),
    Case("grep-empty", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Logical_Op or\n")},
         [("fb-grep-pattern", "fluent-bit.conf", "[FILTER]")]),
    Case("grep-dotted-key", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Regex request.url .*api\\.important\\.com.*\n")},
         [("fb-grep-dotted-key", "fluent-bit.conf", "request.url")]),
    Case("grep-logical-op-mix", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Logical_Op AND\n    Regex a x\n    Exclude b y\n")},
         [("fb-grep-logical-op", "fluent-bit.conf", "Logical_Op AND")]),
    Case("grep-logical-op-value", {"fluent-bit.conf": classic("[FILTER]\n    Name grep\n    Match app\n    Logical_Op XOR\n    Regex a x\n")},
         [("fb-grep-logical-op", "fluent-bit.conf", "XOR")]),
    Case("rewrite-tag-arity", {"fluent-bit.conf": classic("[FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $log ^a new\n")},
         [("fb-rewrite-tag-rule", "fluent-bit.conf", "Rule $log")]),
    Case("rewrite-tag-unquoted-space", {"fluent-bit.conf": classic("[FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $log ^a b$ new false\n")},
         [("fb-rewrite-tag-rule", "fluent-bit.conf", "Rule $log")]),
    Case("rewrite-tag-keep", {"fluent-bit.yaml": yaml("  filters:\n    - name: rewrite_tag\n      match: app\n      rule: $log ^a app keep\n")},
         [("fb-rewrite-tag-rule", "fluent-bit.yaml", "rule: $log")], main="fluent-bit.yaml"),
    # -- lua ----------------------------------------------------------------------------------
    Case("lua-missing-script", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script nope.lua\n    call cb\n")},
         [("fb-lua-script", "fluent-bit.conf", "nope.lua")]),
    Case("lua-syntax", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cb\n"),
                        "f.lua": "function cb(tag, ts, record)\n  return 1, ts record\nend\n"},
         [("fb-lua-script", "f.lua", "return 1, ts record")]),
    Case("lua-code-syntax", {"fluent-bit.yaml": yaml("  filters:\n    - name: lua\n      match: app\n      call: cb\n      code: 'function cb(t, s, r) return 0, s, r'\n")},
         [("fb-lua-script", "fluent-bit.yaml", "code: 'function")], main="fluent-bit.yaml"),
    Case("lua-call-undefined", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call redact\n"),
                                "f.lua": "function cb(tag, ts, record)\n  return 0, ts, record\nend\n"},
         [("fb-lua-call", "fluent-bit.conf", "call redact")]),
    Case("lua-call-local", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cb\n"),
                            "f.lua": "local function cb(tag, ts, record)\n  return 0, ts, record\nend\n"},
         [("fb-lua-call", "fluent-bit.conf", "call cb")]),
    Case("lua-call-static", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cbx\n"),
                             "f.lua": "local cjson = require('cjson')\nfunction cb(tag, ts, record)\n  return 0, ts, record\nend\n"},
         [("fb-lua-call", "fluent-bit.conf", "call cbx")]),
    Case("lua-no-call", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    code function cb() end\n")},
         [("fb-lua-call", "fluent-bit.conf", "[FILTER]")]),
    # -- s3 / cloudwatch / stdout -------------------------------------------------------------
    Case("s3-bucket", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    s3_key_format /$UUID\n")},
         [("fb-s3-bucket", "fluent-bit.conf", "[OUTPUT]")]),
    Case("s3-bucket-yaml", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: s3\n      match: app\n      region: us-east-1\n"},
         [("fb-s3-bucket", "fluent-bit.yaml", "- name: s3")], main="fluent-bit.yaml"),
    Case("s3-total-too-small", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    total_file_size 500K\n    s3_key_format /$UUID\n")},
         [("fb-s3-size", "fluent-bit.conf", "500K")]),
    Case("s3-put-object-too-big", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    use_put_object on\n    total_file_size 2G\n")},
         [("fb-s3-size", "fluent-bit.conf", "2G")]),
    Case("s3-chunk-too-small", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    total_file_size 100M\n    upload_chunk_size 3M\n")},
         [("fb-s3-size", "fluent-bit.conf", "3M")]),
    Case("s3-chunk-2x", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: s3\n      match: app\n      bucket: b\n      total_file_size: 100M\n      upload_chunk_size: 60M\n"},
         [("fb-s3-size", "fluent-bit.yaml", "60M")], main="fluent-bit.yaml"),
    Case("s3-key-slash", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    s3_key_format qtap/$UUID.gz\n")},
         [("fb-s3-key-format", "fluent-bit.conf", "qtap/$UUID")]),
    Case("s3-key-token", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    s3_key_format /qtap/$HOST/$UUID\n")},
         [("fb-s3-key-format", "fluent-bit.conf", "$HOST")]),
    Case("s3-key-tag-index", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    s3_key_format /$TAG[12]/$UUID\n")},
         [("fb-s3-key-format", "fluent-bit.conf", "$TAG[12]")]),
    Case("s3-overwrite", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    s3_key_format /qtap/%Y/%m/%d/%H.gz\n")},
         [("fb-s3-overwrite", "fluent-bit.conf", "s3_key_format")]),
    Case("s3-overwrite-static", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    use_put_object on\n    static_file_path on\n    s3_key_format /qtap/%Y/%m/%d.gz\n")},
         [("fb-s3-overwrite", "fluent-bit.conf", "s3_key_format")]),
    Case("s3-compression", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    compression lz4\n    s3_key_format /$UUID\n")},
         [("fb-s3-enum", "fluent-bit.conf", "lz4")]),
    Case("s3-format", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n    format msgpack\n    s3_key_format /$UUID\n")},
         [("fb-s3-enum", "fluent-bit.conf", "msgpack")]),
    Case("cloudwatch-required", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    log_stream_prefix q-\n")},
         [("fb-cloudwatch-required", "fluent-bit.conf", "[OUTPUT]")]),
    Case("cloudwatch-stream-both", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    region us-east-1\n    log_group_name g\n    log_stream_name s\n    log_stream_prefix q-\n")},
         [("fb-cloudwatch-stream", "fluent-bit.conf", "log_stream_prefix")]),
    Case("cloudwatch-stream-none-yaml", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: cloudwatch_logs\n      match: app\n      region: us-east-1\n      log_group_name: g\n"},
         [("fb-cloudwatch-stream", "fluent-bit.yaml", "name: cloudwatch_logs")], main="fluent-bit.yaml"),
    Case("cloudwatch-retention", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    region us-east-1\n    log_group_name g\n    log_stream_prefix q-\n    log_retention_days 45\n")},
         [("fb-cloudwatch-retention", "fluent-bit.conf", "log_retention_days")]),
    Case("stdout-format", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name stdout\n    Match app\n    Format json_line\n")},
         [("fb-stdout-format", "fluent-bit.conf", "json_line")]),
    Case("stdout-date-format-yaml", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: stdout\n      match: app\n      json_date_format: rfc3339\n"},
         [("fb-stdout-format", "fluent-bit.yaml", "rfc3339")], main="fluent-bit.yaml"),
    # -- routing --------------------------------------------------------------------------------
    Case("no-match", {"fluent-bit.conf": classic("", out=OUT + "[OUTPUT]\n    Name stdout\n")},
         [("fb-no-match", "fluent-bit.conf", 10)]),
    Case("match-no-input", {"fluent-bit.conf": classic("", out=OUT + "[OUTPUT]\n    Name stdout\n    Match docker.*\n")},
         [("fb-match-no-input", "fluent-bit.conf", "docker.*")]),
    Case("match-no-input-forward-tag", {"fluent-bit.conf": "[INPUT]\n    Name forward\n    Port 24224\n[OUTPUT]\n    Name stdout\n    Match docker.qtpa\n"},
         [("fb-match-no-input", "fluent-bit.conf", "docker.qtpa"),
          ("fb-input-unconsumed", "fluent-bit.conf", "[INPUT]")], forward_tags=["docker.qtap"]),
    Case("match-regex-no-input", {"fluent-bit.yaml": YIN + "  outputs:\n    - name: stdout\n      match_regex: ^docker\\.\n"},
         [("fb-match-no-input", "fluent-bit.yaml", "match_regex"),
          ("fb-input-unconsumed", "fluent-bit.yaml", "- name: dummy")], main="fluent-bit.yaml"),
    Case("input-unconsumed", {"fluent-bit.conf": classic("", inp=IN + "[INPUT]\n    Name dummy\n    Tag other\n")},
         [("fb-input-unconsumed", "fluent-bit.conf", 7)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_reported_at_line(case: Case, deploy: Run) -> None:
    problems = deploy(case.files, main=case.main, forward_tags=case.forward_tags,
                      parsers=case.parsers)
    got = {(p.rule, p.path.rsplit("/", 1)[-1], p.line) for p in problems}
    for rule, fname, needle in case.expect:
        text = case.files[fname]
        lines = ([needle] if isinstance(needle, int) else
                 [n for n, line in enumerate(text.split("\n"), 1) if needle in line])
        assert lines, f"bad test: {needle!r} not in {fname}"
        assert any((rule, fname, n) in got for n in lines), (
            f"{rule} not reported at {fname}:{lines}; got:\n"
            + "\n".join(p.format() for p in problems))


def test_expected_rules_cover_every_rule() -> None:
    """Every rule id this package registers or declares has a broken case above."""
    from qtap_fluent.fluentbit.config.checks import run_checks
    from qtap_fluent.fluentbit.config.checks.base import SimpleView
    from qtap_fluent.validate.registry import RULES

    run_checks(SimpleView([]))
    ours = {r for r in RULES if r.startswith("fb-")}
    covered = {rule for c in [*CASES, *EXTRA] for rule, _f, _n in c.expect}
    assert ours - covered == set()


CLEAN = [
    Case("grep-nested-accessor", {"fluent-bit.conf": classic(
        "[FILTER]\n    Name grep\n    Match app\n    Regex $request['url'] .*api\\.important\\.com.*\n"
        "    Regex source stdout\n")}, []),
    Case("grep-yaml-list", {"fluent-bit.yaml": yaml(
        "  filters:\n    - name: grep\n      match: app\n      logicalOp: or\n"
        "      regex:\n        - log a b\n        - $request['method'] ^GET$\n")},
         [], main="fluent-bit.yaml"),
    Case("rewrite-tag-quoted", {"fluent-bit.conf": classic(
        '[FILTER]\n    Name rewrite_tag\n    Match app\n    Rule $log "^a b$" new.$TAG false\n',
        out=OUT + "[OUTPUT]\n    Name stdout\n    Match new.*\n")}, []),
    Case("lua-static-ok", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cb\n"),
                           "f.lua": "local cjson = require('cjson')\nfunction cb(tag, ts, record)\n  return 0, ts, record\nend\n"}, []),
    Case("lua-assigned-function", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cb\n"),
                                   "f.lua": "local n = 0\nfor i = 1, 100 do n = n + i end\ncb = function(tag, ts, record)\n  return 0, ts, record\nend\n"}, []),
    Case("lua-endless-toplevel", {"fluent-bit.conf": classic("[FILTER]\n    Name lua\n    Match app\n    script f.lua\n    call cb\n"),
                                  "f.lua": "function cb(t, s, r) return 0, s, r end\nwhile true do end\n"}, []),
    Case("s3-multipart-ok", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name s3\n    Match app\n    bucket b\n"
                             "    total_file_size 100M\n    upload_chunk_size 10M\n    s3_key_format /q/$TAG[0]/%Y/$INDEX\n"
                             "    compression zstd\n    format json_lines\n    upload_timeout 5m\n")}, []),
    Case("yaml-full", {"fluent-bit.yaml": (
        "env:\n  FLUSH: 2\nservice:\n  flush: ${FLUSH}\n  logLevel: info\n  http_server: on\n"
        "parsers:\n  - name: j\n    format: json\nmultiline_parsers:\n  - name: ml\n    type: regex\n"
        "    rules:\n      - state: start_state\n        regex: '/^\\d+/'\n        next_state: cont\n"
        "pipeline:\n  inputs:\n    - name: forward\n      listen: 127.0.0.1\n      port: 24224\n"
        "      processors:\n        logs:\n          - name: content_modifier\n            action: insert\n"
        "  filters:\n    - name: parser\n      match: docker.*\n      key_name: log\n      parser: j\n"
        "    - name: modify\n      match: '*'\n      set: [a 1, b 2]\n"
        "  outputs:\n    - name: stdout\n      match: '*'\n      format: json_lines\n")},
         [], main="fluent-bit.yaml"),
    Case("classic-include-set-default", {
        "fluent-bit.conf": "@SET TAG=app\n[SERVICE]\n    Flush ${FLUSH:-1}\n@INCLUDE conf.d/*.conf\n",
        "conf.d/in.conf": "[INPUT]\n    Name dummy\n    Tag ${TAG}\n",
        "conf.d/out.conf": "[OUTPUT]\n    Name stdout\n    Match ${TAG}\n"}, []),
    Case("repeatable-keys", {"fluent-bit.conf": classic(
        "[FILTER]\n    Name modify\n    Match app\n    Set a 1\n    Set b 2\n    Condition Key_exists a\n"
        "[FILTER]\n    Name record_modifier\n    Match app\n    Record k v\n    Record k2 v2\n"
        "[FILTER]\n    Name nest\n    Match app\n    Operation nest\n    Wildcard a*\n    Wildcard b*\n    Nest_under x\n",
        inp="[INPUT]\n    Name tail\n    Path /var/log/*.log\n    Tag app\n    parser_1 a\n    multiline.parser docker, cri\n")}, []),
    Case("parsers-multiline-classic", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                       "parsers.conf": '[MULTILINE_PARSER]\n    name ml\n    type regex\n    rule "start_state" "/(\\d+ \\w+)(.*)/" "cont"\n    rule "cont" "/^\\s+at.*/" "cont"\n'}, []),
    Case("unknown-plugin-properties-not-checked", {"fluent-bit.conf": classic(
        "", out=OUT + "[OUTPUT]\n    Name es\n    Match app\n    Host 127.0.0.1\n    Suppress_Type_Name On\n")}, []),
    Case("cloudwatch-ok", {"fluent-bit.conf": classic("", out="[OUTPUT]\n    Name cloudwatch_logs\n    Match app\n    region us-east-1\n"
                           "    log_group_name g\n    log_stream_name s\n    log_retention_days 90\n")}, []),
    Case("forward-docker-template-tag", {"fluent-bit.conf": "[INPUT]\n    Name forward\n    Port 24224\n[OUTPUT]\n    Name stdout\n    Match docker.web\n"},
         [], forward_tags=["docker.{{.Name}}"]),
    Case("forward-dynamic-tag", {"fluent-bit.conf": "[INPUT]\n    Name forward\n    Port 24224\n[OUTPUT]\n    Name stdout\n    Match anything.at.all\n"}, []),
]


@pytest.mark.parametrize("case", CLEAN, ids=[c.id for c in CLEAN])
def test_clean_config_has_no_problems(case: Case, deploy: Run) -> None:
    problems = deploy(case.files, main=case.main, forward_tags=case.forward_tags)
    assert problems == [], "\n".join(p.format() for p in problems)


EXTRA = [
    Case("empty-section", {"fluent-bit.conf": "[SERVICE]\n[INPUT]\n    Name dummy\n    Tag app\n" + OUT},
         [("fb-empty-section", "fluent-bit.conf", "[SERVICE]")]),
    Case("comment-after-header", {"fluent-bit.conf": classic("", out="[OUTPUT] # to stdout\n    Name stdout\n    Match app\n")},
         [("fb-eol-comment", "fluent-bit.conf", "# to stdout")]),
    Case("enum-storage-type", {"fluent-bit.conf": classic("", inp=IN + "    storage.type disk\n")},
         [("fb-enum", "fluent-bit.conf", "storage.type disk")]),
    Case("enum-nest-yaml", {"fluent-bit.yaml": yaml("  filters:\n    - name: nest\n      match: app\n      operation: flatten\n      wildcard: a*\n")},
         [("fb-enum", "fluent-bit.yaml", "flatten")], main="fluent-bit.yaml"),
    Case("parser-unknown-key", {"fluent-bit.conf": classic("", service="[SERVICE]\n    Parsers_File parsers.conf\n"),
                                "parsers.conf": "[PARSER]\n    Name a\n    Format json\n    Time_Formt %s\n"},
         [("fb-parser-key", "parsers.conf", "Time_Formt")]),
    Case("modify-arity", {"fluent-bit.conf": classic("[FILTER]\n    Name modify\n    Match app\n    Set a\n    Rename x \"y z\"\n")},
         [("fb-modify-rule", "fluent-bit.conf", "Set a")]),
    Case("modify-condition-yaml", {"fluent-bit.yaml": yaml("  filters:\n    - name: modify\n      match: app\n      condition: key_is_there a\n      remove: b\n")},
         [("fb-modify-rule", "fluent-bit.yaml", "key_is_there")], main="fluent-bit.yaml"),
    Case("record-modifier-unquoted", {"fluent-bit.conf": classic("[FILTER]\n    Name record_modifier\n    Match app\n    Record host my host\n    Record ok \"a b\"\n")},
         [("fb-record-modifier", "fluent-bit.conf", "my host")]),
    Case("upstream-in-main", {"fluent-bit.conf": classic("[UPSTREAM]\n    name forward-balancing\n[NODE]\n    name n1\n    host 127.0.0.1\n")},
         [("fb-unknown-section", "fluent-bit.conf", "[UPSTREAM]"),
          ("fb-unknown-section", "fluent-bit.conf", "[NODE]")]),
]


@pytest.mark.parametrize("case", EXTRA, ids=[c.id for c in EXTRA])
def test_extra_rules_reported_at_line(case: Case, deploy: Run) -> None:
    test_rule_reported_at_line(case, deploy)


def test_package_docstring_lists_every_rule() -> None:
    from qtap_fluent.fluentbit.config import checks
    from qtap_fluent.validate.registry import RULES

    checks.run_checks(checks.base.SimpleView([]))
    listed = {line.split()[0] for line in (checks.__doc__ or "").splitlines()
              if line.startswith("fb-")}
    assert listed == {r for r in RULES if r.startswith("fb-")}
