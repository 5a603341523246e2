"""Pipeline, routing, plugin loading and config problems (no sockets)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qtap_fluent.problems import Level
from qtap_fluent.serve.config import build_pipeline, load_config
from qtap_fluent.serve.match import TagMatcher
from qtap_fluent.serve.pipeline import FilterStage, OutputStage, Pipeline
from qtap_fluent.serve.plugins import PluginError, build, load_object
from qtap_fluent.sinks.base import Batch, Result


class ListSink:
    """An output that records batches and answers from a script of results."""

    name = "list"

    def __init__(self, script: list[Result] | None = None) -> None:
        self.script = list(script or [])
        self.got: list[Any] = []

    def open(self) -> None:
        pass

    def write(self, batch: Batch) -> Result:
        result = self.script.pop(0) if self.script else Result.OK
        if result is Result.OK:
            self.got.extend(e.record["i"] for e in batch.entries)
        return result

    def flush(self, now: float, *, force: bool = False) -> Result:
        return Result.OK

    def close(self) -> Result:
        return Result.OK


def entries(tag: str, n: int, start: int = 0) -> list[tuple[str, float, dict[str, Any]]]:
    return [(tag, 1.0, {"i": i}) for i in range(start, start + n)]


@pytest.mark.parametrize(("pattern", "tag", "hit"), [
    ("*", "anything.at.all", True), ("qtap.*", "qtap.http", True), ("qtap.*", "qtap", False),
    ("qtap.*", "xqtap.http", False), ("*.http", "qtap.http", True), ("a*b*c", "aXbYc", True),
    ("a*b*c", "aXbYcZ", False), ("Qtap.*", "qtap.http", False), ("a.b", "aXb", False),
])
def test_fluent_bit_wildcards(pattern: str, tag: str, hit: bool) -> None:
    assert TagMatcher(pattern).matches(tag) is hit


def test_match_regex_wins_and_searches() -> None:
    assert TagMatcher("nomatch", r"http$").matches("qtap.http")
    assert not TagMatcher("*", r"^x").matches("qtap.http")
    assert not TagMatcher().matches("qtap.http")


def pipe(filters: list[FilterStage], outputs: list[OutputStage]) -> Pipeline:
    return Pipeline(filters, outputs, sleep=lambda s: None)


def test_routing_by_tag_to_several_outputs() -> None:
    a, b = ListSink(), ListSink()
    p = pipe([], [OutputStage("a", TagMatcher("qtap.*"), a),
                  OutputStage("b", TagMatcher("*"), b)])
    assert p.deliver(entries("qtap.x", 2) + entries("other", 2, 10))
    assert a.got == [0, 1] and b.got == [0, 1, 10, 11]


def test_raising_filter_is_counted_and_never_stops_delivery(
        caplog: pytest.LogCaptureFixture) -> None:
    def boom(tag: str, t: float, r: dict[str, Any]) -> dict[str, Any]:
        if r["i"] == 1:
            raise RuntimeError("plugin bug")
        return {**r, "seen": True}

    sink = ListSink()
    stage = FilterStage("boom", TagMatcher("*"), boom)
    p = pipe([stage], [OutputStage("o", TagMatcher("*"), sink)])
    assert p.deliver(entries("t", 3))
    assert sink.got == [0, 1, 2]
    assert stage.counters.errors == 1
    assert "plugin boom failed (1 errors so far): RuntimeError: plugin bug" in caplog.text


def test_on_error_drop_fails_closed() -> None:
    def bad(tag: str, t: float, r: dict[str, Any]) -> Any:
        return 42  # not a record: an error too

    sink = ListSink()
    stage = FilterStage("redact.0", TagMatcher("*"), bad, on_error="drop")
    assert pipe([stage], [OutputStage("o", TagMatcher("*"), sink)]).deliver(entries("t", 2))
    assert sink.got == [] and stage.counters.errors == 2 and stage.counters.dropped == 2


def test_filter_split_and_drop() -> None:
    def split(tag: str, t: float, r: dict[str, Any]) -> Any:
        return None if r["i"] == 0 else [r, {"i": r["i"] * 100}]

    sink = ListSink()
    assert pipe([FilterStage("s", TagMatcher("*"), split)],
                [OutputStage("o", TagMatcher("*"), sink)]).deliver(entries("t", 3))
    assert sink.got == [1, 100, 2, 200]


def test_retry_then_ok_and_error_is_acked_but_counted() -> None:
    flaky = ListSink([Result.RETRY, Result.RETRY, Result.OK])
    broken = ListSink([Result.ERROR])
    outs = [OutputStage("flaky", TagMatcher("*"), flaky, retry_limit=3),
            OutputStage("broken", TagMatcher("*"), broken)]
    p = pipe([], outs)
    assert p.deliver(entries("t", 2))
    assert flaky.got == [0, 1] and outs[0].counters.retried == 2
    assert outs[1].counters.dropped == 2


def test_refused_chunk_is_not_stored_twice_by_the_output_that_took_it() -> None:
    good = ListSink()
    down = ListSink([Result.RETRY, Result.RETRY])
    p = pipe([], [OutputStage("good", TagMatcher("*"), good),
                  OutputStage("down", TagMatcher("*"), down, retry_limit=1)])
    assert not p.deliver(entries("t", 3))  # not acked: the sender resends the same chunk
    assert p.deliver(entries("t", 3))
    assert good.got == [0, 1, 2] and down.got == [0, 1, 2]


def test_raising_output_means_retry_not_crash() -> None:
    class Boom(ListSink):
        def write(self, batch: Batch) -> Result:
            raise OSError("disk on fire")

    stage = OutputStage("boom", TagMatcher("*"), Boom(), retry_limit=0)
    assert not pipe([], [stage]).deliver(entries("t", 1))
    assert stage.counters.errors == 1


PLUGIN_SRC = '''
from typing import Any

def make_tagger(options: dict[str, Any]):
    label = options["label"]
    return lambda tag, time, record: {**record, "label": label}

class Collect:
    instances: list["Collect"] = []

    def __init__(self, options):
        self.got = []
        Collect.instances.append(self)

    def open(self): pass
    def write(self, batch):
        from qtap_fluent.sinks.base import Result
        self.got.extend(e.record for e in batch.entries)
        return Result.OK
    def flush(self, now, *, force=False):
        from qtap_fluent.sinks.base import Result
        return Result.OK
    def close(self):
        from qtap_fluent.sinks.base import Result
        return Result.OK
'''


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "myplugins.py").write_text(PLUGIN_SRC)
    dist = tmp_path / "myplugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[qtap_fluent.plugins]\ntagger = myplugins:make_tagger\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "myplugins", raising=False)
    return tmp_path


def test_plugins_by_dotted_path_and_entry_point(plugin_path: Path, tmp_path: Path) -> None:
    text = textwrap.dedent(f"""\
        spool: {tmp_path / 'spool'}
        filters:
          - plugin: tagger          # entry point in group qtap_fluent.plugins
            match: "*"
            label: from-entry-point
        outputs:
          - plugin: myplugins:Collect
            match: "*"
        """)
    cfg, problems = load_config(text, "serve.yaml")
    assert cfg is not None, problems
    p, problems = build_pipeline(cfg)
    assert p is not None, problems
    assert p.deliver(entries("t", 1))
    collect = load_object("myplugins.Collect")
    assert collect.instances[-1].got == [{"i": 0, "label": "from-entry-point"}]


def test_plugin_errors_are_clear(plugin_path: Path) -> None:
    with pytest.raises(PluginError, match="no module path and no entry point"):
        load_object("nosuchplugin")
    with pytest.raises(PluginError, match="has no attribute 'nope'"):
        load_object("myplugins:nope")
    with pytest.raises(PluginError, match="KeyError"):
        build("myplugins:make_tagger", {})


def test_config_problems_have_positions(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        listen: nowhere:port
        colour: blue
        filters:
          - name: redactt
            match: "*"
          - name: keep
            match_regex: "(["
        outputs:
          - name: stdout
        """)
    cfg, problems = load_config(text, "serve.yaml")
    assert cfg is None
    got = {(p.line, p.col, p.rule, p.level) for p in problems}
    assert (1, 9, "serve-address", Level.ERROR) in got
    assert (2, 1, "serve-unknown-key", Level.ERROR) in got
    assert (4, 11, "serve-unknown-plugin", Level.ERROR) in got
    assert (6, 5, "serve-match-regex", Level.ERROR) in got
    assert (9, 5, "serve-no-match", Level.WARNING) in got


def test_factory_errors_point_at_their_section(tmp_path: Path) -> None:
    text = textwrap.dedent(f"""\
        spool: {tmp_path}
        filters:
          - name: keep
            match: "*"
            rule: "http.res.status >>= 2"
        outputs:
          - name: file
            match: "*"
        """)
    cfg, problems = load_config(text, "serve.yaml")
    assert cfg is not None
    p, problems = build_pipeline(cfg)
    assert p is None
    assert [(x.line, x.rule) for x in problems] == [(3, "serve-plugin"), (7, "serve-plugin")]
    assert "keep: rule" in problems[0].message and "'path' is required" in problems[1].message


def test_check_reports_without_starting_anything(tmp_path: Path) -> None:
    from qtap_fluent.serve.config import check

    spool = tmp_path / "never-created"
    good = f"spool: {spool}\noutputs:\n  - name: s3\n    match: '*'\n    bucket: b\n"
    assert check(good, "serve.yaml") == []
    assert not spool.exists()
    bad = good.replace("bucket: b", "bucket: b\n    total_file_size: lots")
    [problem] = check(bad, "serve.yaml")
    assert (problem.line, problem.rule) == (3, "serve-plugin")
    assert "total_file_size" in problem.message
    # validate must not import boto3 (cold start, and gen/validate stay light)
    probe = ("import sys; from qtap_fluent.serve.config import check; "
             f"assert check({good!r}, 's.yaml') == []; print('boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_cmd_serve_fits_the_dispatcher(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from qtap_fluent.cli import cmd_serve, main

    assert cmd_serve.NAME == "serve" and cmd_serve.HELP
    assert "serve" in main.COMMANDS
    assert main.main(["serve", "--output", "s3"]) == 2
    assert "--output s3 needs --bucket" in capsys.readouterr().err
    assert main.main(["serve", "--listen", "nowhere:x"]) == 2
