"""Renderer -> loader round trip: what ``gen`` renders (``render.py``) loads back to the same
sections and entries in both formats, with no problems (Hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.fluentbit.config.load import load_text
from qtap_fluent.fluentbit.config.model import FILTER, INPUT, OUTPUT, SERVICE, Section
from qtap_fluent.fluentbit.config.render import render_classic, render_yaml

keys = st.from_regex(r"\A[a-z][a-z0-9_.]{0,15}\Z", fullmatch=True).filter(
    lambda k: k not in ("processors",))
# Printable one-line values without surrounding blanks; no "${" (it would be expanded). Control
# characters are left out: render_yaml single-quotes them and YAML forbids them raw (reported
# to the renderer's owner).
values = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="$",
                               blacklist_categories=["Cc"]),
                 min_size=1, max_size=30).filter(lambda v: v == v.strip() and v != "")


@st.composite
def sections(draw: st.DrawFn) -> list[Section]:
    out = []
    # One [SERVICE] at most: render_yaml writes two service sections' equal keys as a
    # duplicate YAML key (the last wins), which is the renderer's limit, not the loader's.
    kinds = draw(st.lists(st.sampled_from([INPUT, FILTER, OUTPUT]), max_size=4))
    if draw(st.booleans()) or not kinds:
        kinds.insert(0, SERVICE)
    for kind in kinds:
        s = Section(kind=kind, header=kind.upper())
        if kind != SERVICE:
            s.add("Name", draw(st.sampled_from(["dummy", "grep", "stdout", "s3"])))
        pairs = draw(st.lists(st.tuples(keys, values), min_size=1, max_size=6))
        for key, value in pairs:
            if key != "name":
                s.add(key, value)
        out.append(s)
    return out


def shape(secs: list[Section]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Kinds in canonical order (YAML groups by kind), entries grouped like the YAML renderer."""
    order = [SERVICE, INPUT, FILTER, OUTPUT]
    result = []
    merged_service: list[tuple[str, str]] = []
    for s in secs:
        if s.kind == SERVICE:
            merged_service.extend((e.name, e.value) for e in s.entries)
    if merged_service:
        result.append((SERVICE, sorted(merged_service)))
    for kind in order[1:]:
        for s in secs:
            if s.kind == kind:
                result.append((kind, sorted((e.name, e.value) for e in s.entries)))
    return result


@settings(max_examples=120, deadline=None, database=None)
@given(sections())
def test_classic_round_trip(secs: list[Section]) -> None:
    text = render_classic(secs)
    cf = load_text(text, "gen.conf", "classic", env={})
    assert [p for p in cf.problems if p.rule != "fb-eol-comment"] == []
    assert shape(cf.sections) == shape(secs)


@settings(max_examples=120, deadline=None, database=None)
@given(sections())
def test_yaml_round_trip(secs: list[Section]) -> None:
    text = render_yaml(secs)
    cf = load_text(text, "gen.yaml", "yaml", env={})
    assert [p for p in cf.problems if p.rule != "yaml-duplicate-key"] == [], text
    assert shape(cf.sections) == shape(secs), text
