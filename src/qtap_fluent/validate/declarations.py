"""Rule ids reported while loading files, before any rule runs (no check function).

``yaml-*`` come from ``qtap_fluent.yamlpos``; ``file-*`` from ``validate.deployment``;
``validator-crash`` from ``validate.engine`` when a rule raises (a bug, reported as a problem so
that one broken rule cannot hide the others' findings).
"""

from __future__ import annotations

from qtap_fluent.problems import Level
from qtap_fluent.validate.registry import declare

declare("yaml-syntax", Level.ERROR, "yaml", "YAML that does not parse (or is nested too deeply)")
declare("yaml-duplicate-key", Level.ERROR, "yaml",
        "a YAML mapping repeats a key; only the last value is used")
declare("file-unreadable", Level.ERROR, "file",
        "a file that cannot be read as a config: binary, not UTF-8, too large, no permission")
declare("file-unknown-kind", Level.ERROR, "file",
        "a file named on the command line that is none of the kinds validate knows")
declare("file-not-checked", Level.INFO, "file",
        "a file named on the command line whose kind validate recognises but does not check yet "
        "(Fluent Bit upstream/plugins/streams files on their own)")
declare("file-none-found", Level.WARNING, "file",
        "a folder holds no file validate knows (wrong path in CI?)")
declare("validator-crash", Level.ERROR, "file",
        "a rule raised an exception on this deployment (a bug in qtap-fluent: please report)")

# ``qtap-fluent serve`` configs (``qtap_fluent.serve.config.check``).
for _id, _doc in (
    ("serve-empty", "the serve config is empty"),
    ("serve-top", "the top level of a serve config is not a mapping"),
    ("serve-unknown-key", "a top-level key serve does not know"),
    ("serve-address", "listen / metrics_listen is not HOST:PORT"),
    ("serve-time", "a duration (flush_interval, retry_backoff) that does not parse"),
    ("serve-section", "a filter or output section that is malformed"),
    ("serve-unknown-plugin", "a filter or output name that is neither built in nor loadable"),
    ("serve-plugin", "a plugin whose options its factory rejects"),
    ("serve-match-regex", "a Match_Regex that does not compile"),
    ("serve-no-match", "a filter or output with neither match nor match_regex: it gets nothing"),
    ("serve-no-output", "no outputs: every record would be acked and thrown away"),
    ("serve-out", "an output section whose options are invalid"),
):
    declare(_id, Level.ERROR, "serve", _doc)
