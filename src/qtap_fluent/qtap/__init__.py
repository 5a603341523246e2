"""Qtap's YAML configuration and its rule language, read the way Qtap reads them.

* ``config``    — ``load(text, path)`` / ``load_file(path)`` → ``(QtapConfig | None, problems)``;
  ``load_default()`` / ``default_text()`` for the bundled guide config (assets/qtap/default.yaml).
* ``model``     — frozen dataclasses for the whole schema, each node with its file position.
* ``schema``    — the allowed values and defaults the loader enforces.
* ``checks``    — cross-node checks (stacks, rules, macros, filters, domains, store ids).
* ``rules``     — every problem id, declared once in the validator registry.
* ``filters``   — the compiled process-exclusion matcher (``Filters.excludes``).
* ``capture``   — ``CapturePolicy``: the http_capture level/format for one transaction.
* ``rulekit``   — lexer, parser, compiler and evaluator of rule expressions.

Nothing here imports the rulekit parser unless a config has rules or macros, so ``gen`` on a
plain config stays fast.
"""
