"""Write the broken corpus: tests/data/validate/broken/<case>/ files and their expect.txt.

Each case is a small deployment derived from the guide's (fluentbit.md's reference configs)
with one mistake, and the problems it must produce as ``(file, where, rule-id)``; ``where`` is
a substring of the line (``(substring, n)`` for its n-th occurrence), a line number, or None
for line 1. Line numbers in expect.txt are resolved here, so editing a case cannot leave them
stale. Run from anywhere: ``python3 tests/data/validate/make_broken.py`` (rewrites broken/).
"""
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "broken")

GUIDE_CONF = """\
[SERVICE]
    Flush        5
    Daemon       Off
    Log_Level    info
    Parsers_File parsers.conf

[INPUT]
    Name        forward
    Listen      127.0.0.1
    Port        24224

[FILTER]
    Name        parser
    Match       docker.qtap
    Key_Name    log
    Parser      generic_json_parser
    Reserve_Data On
    Preserve_Key Off

[FILTER]
    Name    grep
    Match   docker.qtap
    Regex   source stdout

[OUTPUT]
    Name         stdout
    Match        docker.qtap
    Format       json_lines
"""
PARSERS = """\
[PARSER]
    Name   generic_json_parser
    Format json
"""
QTAP = """\
services:
  event_stores:
    - type: stdout
  object_stores:
    - type: stdout
stacks:
  capture_all:
    plugins:
      - type: http_capture
        config:
          level: summary
          format: json
tap:
  direction: egress
  ignore_loopback: true
  audit_include_dns: false
  http:
    stack: capture_all
"""
COMPOSE = """\
services:
  fluent-bit:
    image: fluent/fluent-bit:latest
    network_mode: host
    volumes:
      - ./fluent-bit.conf:/fluent-bit/etc/fluent-bit.conf
      - ./parsers.conf:/fluent-bit/etc/parsers.conf
    command: ["fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"]
  qtap:
    image: us-docker.pkg.dev/qpoint-edge/public/qtap:v0
    depends_on:
      - fluent-bit
    privileged: true
    user: "0:0"
    pid: host
    network_mode: host
    volumes:
      - /sys:/sys
      - ./qtap-config.yaml:/app/config/qtap.yaml
    logging:
      driver: fluentd
      options:
        tag: docker.qtap
        fluentd-address: 127.0.0.1:24224
    command:
      - --config=/app/config/qtap.yaml
"""
FB_YAML = """\
service:
  flush: 5
  log_level: info
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 24224
  outputs:
    - name: stdout
      match: '*'
      format: json_lines
"""

def conf(old, new, base=GUIDE_CONF):
    assert old in base, old
    return base.replace(old, new, 1)

CASES = {}
def case(name, files, expect):
    CASES[name] = (files, expect)

# ---------- Fluent Bit classic ----------
case("fb-classic-unknown-plugin", {"fluent-bit.conf": conf("Name        forward", "Name        forwardd"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "forwardd", "fb-unknown-plugin")])
case("fb-classic-unknown-property", {"fluent-bit.conf": conf("    Port        24224\n", "    Port        24224\n    Buffer_Size 1M\n"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Buffer_Size", "fb-unknown-property")])
case("fb-classic-tab-separator", {"fluent-bit.conf": conf("    Name         stdout", "    Name\tstdout"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Name\tstdout", "fb-syntax")])
case("fb-classic-indentation", {"fluent-bit.conf": conf("    Match   docker.qtap\n    Regex", "      Match   docker.qtap\n    Regex"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "      Match   docker.qtap", "fb-indentation")])
case("fb-classic-unknown-section", {"fluent-bit.conf": conf("[OUTPUT]", "[OUTPTU]"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "[OUTPTU]", "fb-unknown-section")])
case("fb-classic-parser-in-main", {"fluent-bit.conf": GUIDE_CONF + "\n[PARSER]\n    Name   other\n    Format json\n", "parsers.conf": PARSERS},
     [("fluent-bit.conf", "[PARSER]", "fb-parser-in-main")])
case("fb-classic-missing-parsers-file", {"fluent-bit.conf": conf("Parsers_File parsers.conf", "Parsers_File parserz.conf"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Parsers_File", "fb-parsers-file")])
case("fb-classic-bad-log-level", {"fluent-bit.conf": conf("Log_Level    info", "Log_Level    verbose"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Log_Level", "fb-log-level")])
case("fb-classic-service-key", {"fluent-bit.conf": conf("    Daemon       Off\n", "    Daemon       Off\n    Listen       0.0.0.0\n"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Listen       0.0.0.0", "fb-service-key")])
case("fb-classic-output-no-match", {"fluent-bit.conf": conf("    Match        docker.qtap\n    Format", "    Format"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "[OUTPUT]", "fb-no-match")])
case("fb-classic-grep-bad-regex", {"fluent-bit.conf": conf("Regex   source stdout", "Regex   source (stdout"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "source (stdout", "fb-grep-pattern")])
case("fb-classic-grep-no-pattern", {"fluent-bit.conf": conf("Regex   source stdout", "Regex   source"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Regex   source", "fb-grep-pattern")])
case("fb-classic-grep-dotted-key", {"fluent-bit.conf": conf("Regex   source stdout", "Regex   request.url .*api\\.important\\.com.*"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "request.url", "fb-grep-dotted-key")])
case("fb-classic-parser-filter-unknown", {"fluent-bit.conf": conf("Parser      generic_json_parser", "Parser      json_parzer"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "json_parzer", "fb-parser-filter")])
case("fb-classic-parser-filter-no-key", {"fluent-bit.conf": conf("    Key_Name    log\n", ""), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "[FILTER]", "fb-parser-filter")])
case("fb-classic-lua-missing-script", {"fluent-bit.conf": GUIDE_CONF.replace("[OUTPUT]", "[FILTER]\n    Name    lua\n    Match   docker.qtap\n    Script  missing.lua\n    Call    redact\n\n[OUTPUT]"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Script  missing.lua", "fb-lua-script")])
case("fb-classic-lua-syntax", {"fluent-bit.conf": GUIDE_CONF.replace("[OUTPUT]", "[FILTER]\n    Name    lua\n    Match   docker.qtap\n    Script  enrich.lua\n    Call    enrich\n\n[OUTPUT]"), "parsers.conf": PARSERS,
     "enrich.lua": "function enrich(tag, ts, record)\n    record[\"x\"] = 1\n    return 1, ts, record\n-- missing end\n"},
     [("enrich.lua", 5, "fb-lua-script")])
case("fb-classic-lua-call-missing", {"fluent-bit.conf": GUIDE_CONF.replace("[OUTPUT]", "[FILTER]\n    Name    lua\n    Match   docker.qtap\n    Script  enrich.lua\n    Call    enrich_record\n\n[OUTPUT]"), "parsers.conf": PARSERS,
     "enrich.lua": "function enrich(tag, ts, record)\n    record[\"x\"] = 1\n    return 1, ts, record\nend\n"},
     [("fluent-bit.conf", "Call    enrich_record", "fb-lua-call")])
case("fb-classic-rewrite-tag-arity", {"fluent-bit.conf": GUIDE_CONF.replace("[OUTPUT]", "[FILTER]\n    Name    rewrite_tag\n    Match   docker.qtap\n    Rule    $source ^stdout$ qtap.http\n\n[OUTPUT]"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Rule    $source", "fb-rewrite-tag-rule")])
S3 = GUIDE_CONF.replace("""[OUTPUT]
    Name         stdout
    Match        docker.qtap
    Format       json_lines
""", """[OUTPUT]
    Name              s3
    Match             docker.qtap
    bucket            your-bucket-name
    region            us-east-1
    total_file_size   50M
    upload_timeout    10m
    compression       gzip
    s3_key_format     /qtap/year=%Y/month=%m/day=%d/hour=%H/$UUID.gz
    store_dir         /tmp/fluent-bit/s3
    use_put_object    On
""")
case("fb-classic-s3-no-bucket", {"fluent-bit.conf": conf("    bucket            your-bucket-name\n", "", S3), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "[OUTPUT]", "fb-s3-bucket")])
case("fb-classic-s3-total-size", {"fluent-bit.conf": conf("    use_put_object    On\n", "", conf("total_file_size   50M", "total_file_size   60G", S3)), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "total_file_size", "fb-s3-size")])
case("fb-classic-s3-overwrite", {"fluent-bit.conf": conf("    use_put_object    On\n", "", conf("hour=%H/$UUID.gz", "hour=%H/qtap.gz", S3)), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "s3_key_format", "fb-s3-overwrite")])
case("fb-classic-cloudwatch-stream", {"fluent-bit.conf": GUIDE_CONF.replace("""    Name         stdout
    Match        docker.qtap
    Format       json_lines
""", """    Name              cloudwatch_logs
    Match             docker.qtap
    region            us-east-1
    log_group_name    /qpoint/http-traffic
    log_stream_prefix qtap-
    log_stream_name   qtap
    auto_create_group On
"""), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "log_stream_prefix", "fb-cloudwatch-stream")])
case("fb-classic-stdout-format", {"fluent-bit.conf": conf("Format       json_lines", "Format       jsonl"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Format       jsonl", "fb-stdout-format")])
case("fb-classic-port-nonnumeric", {"fluent-bit.conf": conf("Port        24224", "Port        24224x"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "24224x", "fb-port")])
case("fb-classic-port-range", {"fluent-bit.conf": conf("Port        24224", "Port        70000"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "70000", "fb-port")])
case("fb-classic-bad-parser-regex", {"fluent-bit.conf": GUIDE_CONF, "parsers.conf": PARSERS + "\n[PARSER]\n    Name   access\n    Format regex\n    Regex  ^(?<host>[^ ]* (?<rest>.*)$\n"},
     [("parsers.conf", "Regex  ^(?<host>", "fb-parser-regex")])
case("fb-classic-include-missing", {"fluent-bit.conf": "@INCLUDE outputs.conf\n" + GUIDE_CONF, "parsers.conf": PARSERS},
     [("fluent-bit.conf", "@INCLUDE outputs.conf", "fb-include")])
case("fb-classic-include-cycle", {"fluent-bit.conf": "@INCLUDE inputs.conf\n" + GUIDE_CONF, "parsers.conf": PARSERS,
     "inputs.conf": "@INCLUDE fluent-bit.conf\n[INPUT]\n    Name dummy\n    Tag  docker.qtap\n"},
     [("inputs.conf", "@INCLUDE fluent-bit.conf", "fb-include")])
case("fb-classic-match-no-input", {"fluent-bit.conf": GUIDE_CONF.replace("[OUTPUT]", "[FILTER]\n    Name    modify\n    Match   kube.*\n    Add     cluster prod\n\n[OUTPUT]"), "parsers.conf": PARSERS,
     "docker-compose.yaml": COMPOSE, "qtap-config.yaml": QTAP},
     [("fluent-bit.conf", "Match   kube.*", "fb-match-no-input")])
case("fb-classic-input-unconsumed", {"fluent-bit.conf": GUIDE_CONF.replace("[FILTER]", "[INPUT]\n    Name    dummy\n    Tag     heartbeat\n\n[FILTER]", 1), "parsers.conf": PARSERS},
     [("fluent-bit.conf", ("[INPUT]", 2), "fb-input-unconsumed")])
case("fb-classic-bool", {"fluent-bit.conf": conf("Reserve_Data On", "Reserve_Data Maybe"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Reserve_Data Maybe", "fb-bool")])

# ---------- Fluent Bit YAML ----------
case("fb-yaml-unknown-plugin", {"fluent-bit.yaml": FB_YAML.replace("name: stdout", "name: stdoutt")},
     [("fluent-bit.yaml", "stdoutt", "fb-unknown-plugin")])
case("fb-yaml-no-match", {"fluent-bit.yaml": FB_YAML.replace("      match: '*'\n", "")},
     [("fluent-bit.yaml", "- name: stdout", "fb-no-match")])
case("fb-yaml-unknown-property", {"fluent-bit.yaml": FB_YAML.replace("      port: 24224\n", "      port: 24224\n      buffer_size: 1M\n")},
     [("fluent-bit.yaml", "buffer_size", "fb-unknown-property")])
case("fb-yaml-truncated", {"fluent-bit.yaml": "service:\n  flush: 5\npipeline:\n  inputs:\n    - name: forward\n      listen: [127.0.0.1\n"},
     [("fluent-bit.yaml", 7, "yaml-syntax")])
case("fb-yaml-s3-no-bucket", {"fluent-bit.yaml": FB_YAML.replace("    - name: stdout\n      match: '*'\n      format: json_lines\n", "    - name: s3\n      match: '*'\n      region: us-east-1\n      s3_key_format: /qtap/$UUID.gz\n")},
     [("fluent-bit.yaml", "- name: s3", "fb-s3-bucket")])
case("fb-yaml-log-level", {"fluent-bit.yaml": FB_YAML.replace("log_level: info", "log_level: loud")},
     [("fluent-bit.yaml", "log_level: loud", "fb-log-level")])
case("fb-yaml-grep-bad-regex", {"fluent-bit.yaml": FB_YAML.replace("  outputs:", "  filters:\n    - name: grep\n      match: '*'\n      regex: log [unclosed\n  outputs:")},
     [("fluent-bit.yaml", "regex: log [unclosed", "fb-grep-pattern")])

FB_YAML_FULL = """\
service:
  flush: 5
  log_level: info
  parsers_file: parsers.yaml
pipeline:
  inputs:
    - name: forward
      listen: 127.0.0.1
      port: 24224
  filters:
    - name: parser
      match: docker.qtap
      key_name: log
      parser: generic_json_parser
      reserve_data: on
    - name: grep
      match: docker.qtap
      regex: source stdout
  outputs:
    - name: stdout
      match: docker.qtap
      format: json_lines
"""
PARSERS_YAML = """\
parsers:
  - name: generic_json_parser
    format: json
"""
def fby(old, new):
    assert old in FB_YAML_FULL, old
    return {"fluent-bit.yaml": FB_YAML_FULL.replace(old, new, 1), "parsers.yaml": PARSERS_YAML}

case("fb-yaml-port-nonnumeric", fby("port: 24224", "port: forward"),
     [("fluent-bit.yaml", "port: forward", "fb-port")])
case("fb-yaml-service-key", fby("  log_level: info\n", "  log_level: info\n  listen: 0.0.0.0\n"),
     [("fluent-bit.yaml", "listen: 0.0.0.0", "fb-service-key")])
case("fb-yaml-stdout-format", fby("format: json_lines", "format: ndjson"),
     [("fluent-bit.yaml", "format: ndjson", "fb-stdout-format")])
case("fb-yaml-parser-filter-unknown", fby("parser: generic_json_parser", "parser: json_generic"),
     [("fluent-bit.yaml", "parser: json_generic", "fb-parser-filter")])
case("fb-yaml-missing-parsers-file", fby("parsers_file: parsers.yaml", "parsers_file: parsers-qtap.yaml"),
     [("fluent-bit.yaml", "parsers_file:", "fb-parsers-file")])
case("fb-yaml-inline-parser-bad-regex", {"fluent-bit.yaml": FB_YAML_FULL.replace("  parsers_file: parsers.yaml\n", "") + "parsers:\n  - name: generic_json_parser\n    format: json\n  - name: access\n    format: regex\n    regex: '^(?<host>[^ ]*'\n"},
     [("fluent-bit.yaml", "regex: '^(?<host>", "fb-parser-regex")])
case("fb-yaml-include-missing", {"fluent-bit.yaml": "includes:\n  - outputs.yaml\n" + FB_YAML_FULL, "parsers.yaml": PARSERS_YAML},
     [("fluent-bit.yaml", "- outputs.yaml", "fb-include")])
case("fb-yaml-rewrite-tag-arity", fby("    - name: grep\n", "    - name: rewrite_tag\n      match: docker.qtap\n      rule: $source ^stdout$ qtap.http\n    - name: grep\n"),
     [("fluent-bit.yaml", "rule: $source", "fb-rewrite-tag-rule")])
case("fb-yaml-lua-call-missing", {**fby("    - name: grep\n", "    - name: lua\n      match: docker.qtap\n      script: enrich.lua\n      call: enrich_record\n    - name: grep\n"),
     "enrich.lua": "function enrich(tag, ts, record)\n    return 0, ts, record\nend\n"},
     [("fluent-bit.yaml", "call: enrich_record", "fb-lua-call")])
case("fb-yaml-duplicate-key", fby("      match: docker.qtap\n      format: json_lines\n", "      match: docker.qtap\n      format: json_lines\n      match: '*'\n"),
     [("fluent-bit.yaml", "match: '*'", "yaml-duplicate-key")])

# ---------- Qtap YAML ----------
case("qtap-bad-level", {"qtap.yaml": QTAP.replace("level: summary", "level: everything")},
     [("qtap.yaml", "level: everything", "qtap-enum")])
case("qtap-undefined-stack", {"qtap.yaml": QTAP.replace("    stack: capture_all", "    stack: capture_everything")},
     [("qtap.yaml", "stack: capture_everything", "qtap-undefined-stack")])
case("qtap-bad-rule", {"qtap.yaml": QTAP.replace("          format: json\n", "          format: json\n          rules:\n            - name: errors\n              expr: http.res.status >=\n              level: full\n")},
     [("qtap.yaml", "expr: http.res.status", "qtap-rule-syntax")])
case("qtap-bad-filter-regex", {"qtap.yaml": QTAP + "  filters:\n    custom:\n      - exe: /usr/bin/(curl\n        strategy: regex\n"},
     [("qtap.yaml", "exe: /usr/bin/(curl", "qtap-regex")])
case("qtap-s3-no-bucket", {"qtap.yaml": QTAP.replace("  object_stores:\n    - type: stdout\n", "  object_stores:\n    - type: s3\n      region: us-east-1\n      access_key:\n        type: env\n        value: AWS_ACCESS_KEY_ID\n      secret_key:\n        type: env\n        value: AWS_SECRET_ACCESS_KEY\n")},
     [("qtap.yaml", "- type: s3", "qtap-required")])
case("qtap-truncated", {"qtap.yaml": "services:\n  event_stores:\n    - type: stdout\nstacks:\n  capture_all:\n    plugins:\n      - type: \"http_capture\n"},
     [("qtap.yaml", 8, "yaml-syntax")])

# ---------- compose ----------
case("compose-unknown-key", {"docker-compose.yaml": COMPOSE.replace("    network_mode: host\n    volumes:\n      - ./fluent-bit.conf", "    network_mode: host\n    volumez:\n      - ./fluent-bit.conf"),
     "fluent-bit.conf": GUIDE_CONF, "parsers.conf": PARSERS, "qtap-config.yaml": QTAP},
     [("docker-compose.yaml", "volumez:", "compose-schema")])
case("compose-bad-type", {"docker-compose.yaml": COMPOSE.replace("    depends_on:\n      - fluent-bit\n", "    depends_on: 5\n"),
     "fluent-bit.conf": GUIDE_CONF, "parsers.conf": PARSERS, "qtap-config.yaml": QTAP},
     [("docker-compose.yaml", "depends_on: 5", "compose-schema")])
case("compose-truncated", {"docker-compose.yaml": COMPOSE[:COMPOSE.index("    command: [") ] + "    command: [\"fluent-bit\", \"-c\"\n  qtap:\n    image: x\n"},
     [("docker-compose.yaml", "  qtap:", "yaml-syntax")])

# ---------- cross-file ----------
BASE = {"fluent-bit.conf": GUIDE_CONF, "parsers.conf": PARSERS, "qtap-config.yaml": QTAP}
def with_base(**files):
    names = {"docker_compose_yaml": "docker-compose.yaml", "qtap_config_yaml": "qtap-config.yaml", "fluent_bit_conf": "fluent-bit.conf"}
    out = dict(BASE); out.update({names[k]: v for k, v in files.items()})
    return out
case("cross-port-mismatch", with_base(docker_compose_yaml=COMPOSE.replace("127.0.0.1:24224", "127.0.0.1:24225")),
     [("docker-compose.yaml", "fluentd-address: 127.0.0.1:24225", "cross-forward-port")])
case("cross-no-forward-input", with_base(docker_compose_yaml=COMPOSE, fluent_bit_conf=GUIDE_CONF.replace("""    Name        forward
    Listen      127.0.0.1
    Port        24224
""", """    Name        dummy
    Tag         docker.qtap
""")),
     [("docker-compose.yaml", "fluentd-address:", "cross-forward-port")])
case("cross-tag-unrouted", with_base(docker_compose_yaml=COMPOSE.replace("tag: docker.qtap", "tag: qtap")),
     [("docker-compose.yaml", "tag: qtap", "cross-log-tag-unrouted")])
case("cross-mount-missing", {"fluent-bit.conf": GUIDE_CONF, "qtap-config.yaml": QTAP, "docker-compose.yaml": COMPOSE, "parsers/parsers.conf": PARSERS},
     [("docker-compose.yaml", "./parsers.conf:", "cross-mount-missing"), ("fluent-bit.conf", "Parsers_File", "fb-parsers-file")])
case("cross-config-not-mounted", with_base(docker_compose_yaml=COMPOSE.replace('"-c", "/fluent-bit/etc/fluent-bit.conf"', '"-c", "/fluent-bit/etc/main.conf"')),
     [("docker-compose.yaml", "command: [", "cross-config-not-mounted")])
case("cross-qtap-config-not-mounted", with_base(docker_compose_yaml=COMPOSE.replace("      - --config=/app/config/qtap.yaml", "      - --config=/etc/qtap/qtap.yaml")),
     [("docker-compose.yaml", "--config=/etc/qtap", "cross-config-not-mounted")])
case("cross-parsers-not-mounted", with_base(docker_compose_yaml=COMPOSE.replace("      - ./parsers.conf:/fluent-bit/etc/parsers.conf\n", "")),
     [("fluent-bit.conf", "Parsers_File", "cross-config-not-mounted")])
case("cross-qtap-store-s3", with_base(docker_compose_yaml=COMPOSE, qtap_config_yaml=QTAP.replace("  object_stores:\n    - type: stdout\n", "  object_stores:\n    - type: s3\n      bucket: qtap\n      access_key:\n        type: env\n        value: AWS_ACCESS_KEY_ID\n      secret_key:\n        type: env\n        value: AWS_SECRET_ACCESS_KEY\n")),
     [("qtap-config.yaml", "- type: s3", "cross-qtap-store")])
case("cross-qtap-no-object-store", with_base(docker_compose_yaml=COMPOSE, qtap_config_yaml=QTAP.replace("  object_stores:\n    - type: stdout\n", "")),
     [("qtap-config.yaml", "  event_stores:", "cross-qtap-store")])

case("cross-fluentd-service-name", with_base(docker_compose_yaml=COMPOSE.replace("fluentd-address: 127.0.0.1:24224", "fluentd-address: fluent-bit:24224")),
     [("docker-compose.yaml", "fluentd-address: fluent-bit:24224", "cross-fluentd-unreachable")])
case("cross-fluentd-not-published", with_base(docker_compose_yaml=COMPOSE.replace("    image: fluent/fluent-bit:latest\n    network_mode: host\n", "    image: fluent/fluent-bit:latest\n")),
     [("docker-compose.yaml", "fluentd-address: 127.0.0.1:24224", "cross-fluentd-unreachable")])
case("compose-yaml-cross-tag-yaml-config", {"docker-compose.yaml": COMPOSE.replace("./fluent-bit.conf:/fluent-bit/etc/fluent-bit.conf", "./fluent-bit.yaml:/fluent-bit/etc/fluent-bit.yaml").replace('"/fluent-bit/etc/fluent-bit.conf"', '"/fluent-bit/etc/fluent-bit.yaml"').replace("      - ./parsers.conf:/fluent-bit/etc/parsers.conf\n", ""),
     "fluent-bit.yaml": FB_YAML.replace("match: '*'", "match: 'kube.*'"), "qtap-config.yaml": QTAP},
     [("docker-compose.yaml", "tag: docker.qtap", "cross-log-tag-unrouted")])

# ---------- security ----------
case("security-aws-key-compose", with_base(docker_compose_yaml=COMPOSE.replace("    network_mode: host\n    volumes:\n      - ./fluent-bit.conf", "    network_mode: host\n    environment:\n      - AWS_ACCESS_KEY_ID=AKIAZ7QXMPLE2EXAMPL3\n      - AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n    volumes:\n      - ./fluent-bit.conf")),
     [("docker-compose.yaml", "AWS_ACCESS_KEY_ID=AKIA", "security-aws-key"), ("docker-compose.yaml", "AWS_SECRET_ACCESS_KEY=wJal", "security-aws-key")])
case("security-aws-key-fluentbit-yaml", {"fluent-bit.yaml": "env:\n  AWS_ACCESS_KEY_ID: ASIAZ7QXMPLE2EXAMPL3\n  AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n" + FB_YAML},
     [("fluent-bit.yaml", "AWS_ACCESS_KEY_ID: ASIA", "security-aws-key"), ("fluent-bit.yaml", "AWS_SECRET_ACCESS_KEY: wJal", "security-aws-key")])
case("security-qtap-text-secret", {"qtap.yaml": QTAP.replace("  object_stores:\n    - type: stdout\n", "  object_stores:\n    - type: s3\n      bucket: qtap\n      access_key:\n        type: text\n        value: AKIAZ7QXMPLE2EXAMPL3\n      secret_key:\n        type: text\n        value: not-a-real-secret\n")},
     [("qtap.yaml", "value: AKIAZ7QXMPLE2EXAMPL3", "security-aws-key"), ("qtap.yaml", ("type: text", 1), "qtap-secret-in-clear"),
      ("qtap.yaml", ("type: text", 2), "qtap-secret-in-clear")])
case("security-compose-literal-password", with_base(docker_compose_yaml=COMPOSE.replace("    pid: host\n", "    pid: host\n    environment:\n      REGISTRATION_TOKEN: qp-live-5f2c9a\n")),
     [("docker-compose.yaml", "REGISTRATION_TOKEN: qp", "security-cleartext-secret")])
case("security-forward-exposed", {"fluent-bit.conf": conf("Listen      127.0.0.1", "Listen      0.0.0.0"), "parsers.conf": PARSERS},
     [("fluent-bit.conf", "Listen      0.0.0.0", "security-forward-exposed")])
case("security-forward-exposed-yaml", {"fluent-bit.yaml": FB_YAML.replace("listen: 127.0.0.1", "listen: 10.0.0.5")},
     [("fluent-bit.yaml", "listen: 10.0.0.5", "security-forward-exposed")])
case("security-unredacted-capture", {"qtap.yaml": QTAP.replace("level: summary", "level: full"), "fluent-bit.conf": GUIDE_CONF, "parsers.conf": PARSERS},
     [("qtap.yaml", "level: full", "security-unredacted-capture")])
case("security-unredacted-rule", {"qtap.yaml": QTAP.replace("          format: json\n", "          format: json\n          rules:\n            - name: errors\n              expr: http.res.status >= 400\n              level: full\n")},
     [("qtap.yaml", "              level: full", "security-unredacted-capture")])

# ---------- files ----------
case("file-binary", {"fluent-bit.conf": b"[SERVICE]\n\x00\x01\x02\xff\xfe garbage\n"},
     [("fluent-bit.conf", None, "file-unreadable")])
case("file-not-utf8", {"qtap.yaml": "tap:\n  direction: égress\n".encode("latin-1")},
     [("qtap.yaml", None, "file-unreadable")])
case("file-yaml-not-mapping", {"docker-compose.yaml": "- services\n- fluent-bit\n"},
     [("docker-compose.yaml", None, "yaml-syntax")])

if os.path.isdir(ROOT):
    shutil.rmtree(ROOT)
for name, (files, expect) in CASES.items():
    d = os.path.join(ROOT, name)
    for fname, content in files.items():
        p = os.path.join(d, fname)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(content if isinstance(content, bytes) else content.encode())
    lines = []
    for fname, needle, rule in expect:
        nth = 1
        if isinstance(needle, tuple):
            needle, nth = needle
        if needle is None:
            line = 1
        elif isinstance(needle, int):
            line = needle
        else:
            text = files[fname]
            text = text.decode() if isinstance(text, bytes) else text
            idx = [i for i, l in enumerate(text.splitlines(), 1) if needle in l]
            assert idx, (name, needle)
            line = idx[nth - 1]
        lines.append(f"{fname}:{line} {rule}")
    with open(os.path.join(d, "expect.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
print(len(CASES), "cases")
