"""Per-file Fluent Bit checks for ``qtap-fluent validate``.

Each module registers its rules with ``qtap_fluent.validate.registry`` when imported; the list
of modules is :data:`MODULES` (to be listed in ``registry.RULE_MODULES``). The interface a check
receives is ``base.FluentBitView``.

Loader problems (rule ids declared in ``loader``) are stored in ``ConfigFile.problems`` by
``qtap_fluent.fluentbit.config.load``; the deployment reports them for every file it loaded
(checks do not re-emit them). YAML syntax errors keep yamlpos' ids ``yaml-syntax`` and
``yaml-duplicate-key``.

Rule ids:

=========================  =======  ==========================================================
id                         level    what
=========================  =======  ==========================================================
fb-syntax                  error    classic/YAML grammar (bad header, no value, tab separator...)
fb-indentation             error    classic indentation rules (first key line's indent rules)
fb-include                 error    @INCLUDE/includes missing, cycle, same file twice, >1000
fb-variable                warning  ``${VAR}`` used but not set (Fluent Bit substitutes "")
fb-eol-comment             warning  value contains `` #``: no end-of-line comments in classic
fb-empty-section           warning  classic section without keys
fb-unknown-section         error    section name Fluent Bit does not know (silently dropped)
fb-parser-in-main          error    [PARSER]/[MULTILINE_PARSER] in a main classic config
fb-missing-name            error    plugin section without Name
fb-unknown-plugin          error    Name is not a Fluent Bit plugin of that kind
fb-unknown-property        error    property not in the plugin's 5.1.1 config map
fb-duplicate-property      error    non-repeatable property set more than once
fb-service-key             warning  unknown [SERVICE] key (silently ignored)
fb-log-level               error    Log_Level not off/error/warn/warning/info/debug/trace
fb-bool                    error    boolean value not on/off/true/false/yes/no
fb-size                    error    size value that does not parse (K/M/G decimal)
fb-time                    error    duration value that does not parse (s/m/h/d)
fb-int                     error    integer value that does not parse
fb-port                    error    port not a number in 1..65535
fb-enum                    error    value not among those the key accepts (storage.type...)
fb-parsers-file            error    Parsers_File does not exist
fb-parser-definition       error    parser without Name/Format, unknown Format, duplicate name
fb-parser-key              warning  key a [PARSER]/[MULTILINE_PARSER] does not read (ignored)
fb-parser-regex            error    parser Regex does not compile (Onigmo/Ruby syntax)
fb-parser-filter           error    parser filter without Key_Name/Parser, or naming an unknown parser
fb-grep-pattern            error    grep Regex/Exclude without ``KEY REGEX`` or bad regex
fb-grep-dotted-key         warning  grep key ``a.b`` is one flat key; nested needs ``$a['b']``
fb-grep-logical-op         error    Logical_Op AND/OR with both Regex and Exclude; bad value
fb-rewrite-tag-rule        error    rewrite_tag Rule not ``$KEY REGEX NEW_TAG KEEP``
fb-modify-rule             error    modify rule/Condition with wrong parameter count or name
fb-record-modifier         error    record_modifier Record not KEY VALUE; Remove+Allowlist
fb-lua-script              error    lua script/code missing, unreadable or not compiling
fb-lua-call                error    lua ``call`` missing or naming a function the script lacks
fb-s3-bucket               error    s3 without bucket
fb-s3-size                 error    s3 total_file_size/upload_chunk_size bounds
fb-s3-key-format           error    s3_key_format not starting with ``/``; unknown ``$`` token
fb-s3-overwrite            warning  s3_key_format without $UUID/$INDEX (objects may overwrite)
fb-s3-enum                 error    s3 compression/format value not supported
fb-cloudwatch-required     error    cloudwatch_logs without region/log_group_name
fb-cloudwatch-stream       error    not exactly one of log_stream_name/log_stream_prefix
fb-cloudwatch-retention    error    log_retention_days not an allowed value
fb-stdout-format           error    stdout Format/json_date_format not supported
fb-no-match                error    filter/output without Match/Match_Regex
fb-match-no-input          warning  Match pattern that matches no input's tag
fb-input-unconsumed        warning  input whose records no output matches
=========================  =======  ==========================================================
"""

#: Modules whose import registers the rules above, in the order they run.
MODULES: tuple[str, ...] = (
    "qtap_fluent.fluentbit.config.checks.loader",
    "qtap_fluent.fluentbit.config.checks.sections",
    "qtap_fluent.fluentbit.config.checks.values",
    "qtap_fluent.fluentbit.config.checks.parsers",
    "qtap_fluent.fluentbit.config.checks.grep",
    "qtap_fluent.fluentbit.config.checks.lua",
    "qtap_fluent.fluentbit.config.checks.outputs",
    "qtap_fluent.fluentbit.config.checks.routing",
)


def run_checks(view: object, *, with_load_problems: bool = True) -> list[object]:
    """Run every Fluent Bit rule of :data:`MODULES` on ``view`` (a ``base.FluentBitView``).

    With ``with_load_problems`` the loaders' problems of the view's files come first. The
    ``validate`` command runs the whole registry instead; this is for tests and ``gen``.
    """
    import importlib

    from qtap_fluent.validate.registry import RULES

    for name in MODULES:
        importlib.import_module(name)
    problems: list[object] = []
    if with_load_problems:
        seen: set[int] = set()
        for cf in [*getattr(view, "fluentbit", ()), *getattr(view, "parsers", ())]:
            if id(cf) not in seen:
                seen.add(id(cf))
                problems.extend(cf.problems)
    modules = set(MODULES)
    for rule in list(RULES.values()):
        if rule.check is not None and rule.check.__module__ in modules:
            problems.extend(rule.check(view))
    return problems
