"""Every problem id the Qtap config loader can report, declared in one place.

Levels are the defaults; a few problems are reported one level lower when Qtap itself would
carry on (for example an unknown store type, which Qtap replaces with ``stdout``).
"""

from __future__ import annotations

from qtap_fluent.problems import Level
from qtap_fluent.validate.registry import declare

SCOPE = "qtap"

UNKNOWN_KEY = "qtap-unknown-key"
TYPE = "qtap-type"
ENUM = "qtap-enum"
REQUIRED = "qtap-required"
UNDEFINED_STACK = "qtap-undefined-stack"
REGEX = "qtap-regex"
RULE_SYNTAX = "qtap-rule-syntax"
RULE_FUNCTION = "qtap-rule-function"
LEGACY_LEVEL = "qtap-legacy-level"
SECRET_IN_CLEAR = "qtap-secret-in-clear"
MACRO_NAME = "qtap-macro-name"
MACRO_CYCLE = "qtap-macro-cycle"
DOMAIN = "qtap-domain"
FILTER_GROUP = "qtap-filter-group"
UNKNOWN_PLUGIN = "qtap-unknown-plugin"
DUPLICATE_ID = "qtap-duplicate-id"
UNKNOWN_STORE = "qtap-unknown-store"
NOT_A_CONFIG = "qtap-not-a-config"
READ = "qtap-read"

_DECLARATIONS: tuple[tuple[str, Level, str], ...] = (
    (UNKNOWN_KEY, Level.WARNING,
     "A key Qtap does not know; Qtap ignores it silently (yaml.v3 without strict mode)."),
    (TYPE, Level.ERROR, "A value of the wrong type (a list where a mapping belongs, ...)."),
    (ENUM, Level.ERROR, "A value outside the allowed set (capture level, format, strategy...)."),
    (REQUIRED, Level.ERROR, "A required field is missing (s3 bucket, filter exe, plugin type)."),
    (UNDEFINED_STACK, Level.ERROR,
     "tap or an endpoint names a stack that `stacks` does not define (\"\" and none are off)."),
    (REGEX, Level.ERROR, "A `strategy: regex` filter whose exe does not compile (RE2)."),
    (RULE_SYNTAX, Level.ERROR, "A rule or macro `expr` that the rulekit grammar rejects."),
    (RULE_FUNCTION, Level.WARNING,
     ("A rule calls an unknown function or macro, or with the wrong argument count: it "
      "will never match.")),
    (LEGACY_LEVEL, Level.WARNING,
     "http_capture `level: details` is the legacy spelling of `headers`."),
    (SECRET_IN_CLEAR, Level.WARNING,
     "A credential given as `{type: text}`: it sits in the file in clear; prefer `type: env`."),
    (MACRO_NAME, Level.ERROR,
     ("A rulekit macro name that is duplicated or clashes with a function (starts_with, "
      "zone, in_zone).")),
    (MACRO_CYCLE, Level.ERROR, "Macros that refer to each other in a cycle."),
    (DOMAIN, Level.ERROR, "An endpoint domain that is not an RFC 952 host name."),
    (FILTER_GROUP, Level.WARNING, "An unknown predefined filter group (Qtap ignores it)."),
    (UNKNOWN_PLUGIN, Level.WARNING, "A plugin type this tool does not know."),
    (DUPLICATE_ID, Level.ERROR, "Two event stores or two object stores with the same id."),
    (UNKNOWN_STORE, Level.ERROR, "An object_store reference to an id no object store has."),
    (NOT_A_CONFIG, Level.ERROR, "The document is empty or not a mapping."),
    (READ, Level.ERROR, "The Qtap config file cannot be read."),
)

for _id, _level, _doc in _DECLARATIONS:
    declare(_id, _level, SCOPE, _doc)

RULE_IDS: tuple[str, ...] = tuple(d[0] for d in _DECLARATIONS)
