"""Rule ids the loaders (``qtap_fluent.fluentbit.config.load``) report; declared, not checked."""

from __future__ import annotations

from qtap_fluent.problems import Level
from qtap_fluent.validate.registry import declare

declare("fb-syntax", Level.ERROR, "fluentbit",
        "Fluent Bit config grammar: section headers, key/value lines (split at the first space, "
        "no tabs), meta commands, YAML structure; unreadable/binary files (a file that is not "
        "UTF-8 is a warning)")
declare("fb-indentation", Level.ERROR, "fluentbit",
        "classic indentation: the first key line's indent rules the file; no tab/space mixing; "
        "only double indentation for groups")
declare("fb-include", Level.ERROR, "fluentbit",
        "@INCLUDE / includes: file missing, glob matching nothing, cycle, file included twice, "
        "more than 1000 files")
declare("fb-variable", Level.WARNING, "fluentbit",
        "${VAR} used but set neither by @SET/env nor in the environment (Fluent Bit uses '')")
declare("fb-eol-comment", Level.WARNING, "fluentbit",
        "'#' after a value is part of the value, text after ']' is ignored: classic configs "
        "have no end-of-line comments")
declare("fb-empty-section", Level.WARNING, "fluentbit",
        "classic section with no keys (Fluent Bit warns; often a misplaced header)")
