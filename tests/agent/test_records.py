"""records.py: Qtap's exact JSON (order, omitempty, escapes, time) and text, forward shapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.records import (
    HttpTransaction,
    Metadata,
    Request,
    Response,
    docker_shape,
    go_json,
    rfc3339nano,
    structured_shape,
)


def minimal(**kw: object) -> HttpTransaction:
    base: dict[str, object] = {"metadata": Metadata(), "request": Request(method="GET", url=""),
                                   "response": Response(status=499), "transaction_time_ns": 0}
    base.update(kw)
    return HttpTransaction(**base)  # type: ignore[arg-type]


def test_omitempty_keeps_only_always_present_keys() -> None:
    assert minimal().to_json() == (
        '{"metadata":{},"request":{"method":"GET","url":""},"response":{"status":499},'
        '"transaction_time":"1970-01-01T00:00:00Z"}')


def test_key_order_matches_qtap_struct() -> None:
    rec = minimal(
        metadata=Metadata(process_id="7", process_exe="/bin/x", container_name="c",
                          container_image="i", pod_name="p", pod_namespace="n", bytes_sent=1,
                          bytes_received=2, request_id="r", connection_id="k",
                          endpoint_id="e", tags=("a:b",)),
        request=Request(method="GET", url="u", scheme="http", path="/", authority="a",
                        protocol="http1", request_id="q", user_agent="ua", content_type="ct",
                        headers=(("B", "2"), ("A", "1")), body=b"x"),
        response=Response(status=200, content_type="ct", headers=((":status", "200"),),
                          body=b"y"),
        transaction_time_ns=1, duration_ms=3, direction="ingress")
    d = json.loads(rec.to_json())
    assert list(d) == ["metadata", "request", "response", "transaction_time", "duration_ms",
                       "direction"]
    assert list(d["metadata"]) == ["process_id", "process_exe", "container_name",
                                   "container_image", "pod_name", "pod_namespace", "bytes_sent",
                                   "bytes_received", "request_id", "connection_id",
                                   "endpoint_id", "tags"]
    assert list(d["request"]) == ["method", "url", "scheme", "path", "authority", "protocol",
                                  "request_id", "user_agent", "content_type", "headers", "body"]
    assert list(d["request"]["headers"]) == ["A", "B"]  # Go sorts map keys
    assert d["request"]["body"] == "eA==" and d["metadata"]["process_id"] == "7"


def test_go_html_escaping_and_utf8() -> None:
    assert go_json({"k": "<a href='x'>&\u2028é"}) == \
        '{"k":"\\u003ca href=\'x\'\\u003e\\u0026\\u2028é"}'


def test_rfc3339nano_trims_zeros() -> None:
    assert rfc3339nano(1_761_235_661_023_379_679) == "2025-10-23T16:07:41.023379679Z"
    assert rfc3339nano(1_761_235_661_100_000_000) == "2025-10-23T16:07:41.1Z"
    assert rfc3339nano(1_761_235_661_000_000_000) == "2025-10-23T16:07:41Z"


def test_text_format_layout() -> None:
    rec = minimal(request=Request(method="GET", url="http://a/", content_type="text/plain",
                                  headers=(("X", "1"),), body=b"hi"),
                  response=Response(status=200), transaction_time_ns=1_000_000_000,
                  duration_ms=0, direction="egress-external",
                  metadata=Metadata(bytes_sent=5))
    assert rec.to_text() == (
        "HTTP Transaction\n================\n\nMetadata:\n"
        "  Transaction Time: 1970-01-01T00:00:01Z\n  Direction: egress-external\n"
        "  Bytes Sent: 5\n  Bytes Received: 0\n\nRequest:\n  Method: GET\n  URL: http://a/\n"
        "  Content-Type: text/plain\n  Headers:\n    X: 1\n  Body:\nhi\n\nResponse:\n"
        "  Status: 200\n  Content-Type: \n")


def test_forward_shapes() -> None:
    rec = minimal()
    line = rec.to_json()
    assert docker_shape(line, "ab" * 32, "/qtap") == {
        "container_id": "ab" * 32, "container_name": "/qtap", "source": "stdout", "log": line}
    assert structured_shape(rec) == json.loads(line)


def test_direct_json_writer_matches_the_map_encoding() -> None:
    import glob

    from qtap_fluent.records import from_dict

    for path in sorted(glob.glob("tests/data/agent/golden/*.json")):
        with open(path) as f:
            wanted = json.load(f)["records"]
        for want in wanted:
            rec = from_dict(want)
            assert rec.to_json() == go_json(rec.to_dict()), path
    odd = minimal(request=Request(method="GET", url='http://a/"<&>"\n\u2028',
                                  headers=(("X", "\x01"),)))
    assert odd.to_json() == go_json(odd.to_dict())


# -- the encoders agree: orjson (when installed), the direct writer, the stdlib on the map --------
_texts = st.text(st.characters(codec="utf-8") | st.sampled_from(
    ["<", ">", "&", "\u2028", "\u2029", "\x00", "\x1f", "\x7f", '"', "\\", "\U0001f600",
     "\ud800"]), max_size=12)
_ints = st.integers(0, 2**70) | st.integers(0, 10**6)
_headers = st.lists(st.tuples(st.sampled_from(["A", "B", "a", ":path", "X-Y"]) | _texts, _texts),
                    max_size=5).map(tuple)
_bodies = st.none() | st.binary(max_size=16)
_records = st.builds(
    HttpTransaction,
    metadata=st.builds(Metadata, process_id=_texts, process_exe=_texts, container_name=_texts,
                       bytes_sent=_ints, bytes_received=_ints, request_id=_texts,
                       endpoint_id=_texts, tags=st.lists(_texts, max_size=3).map(tuple)),
    request=st.builds(Request, method=_texts, url=_texts, path=_texts, user_agent=_texts,
                      content_type=_texts, headers=_headers, body=_bodies),
    response=st.builds(Response, status=st.integers(0, 999) | _ints, content_type=_texts,
                       headers=_headers, body=_bodies),
    transaction_time_ns=st.integers(0, 2**62), duration_ms=_ints, direction=_texts)


@settings(max_examples=150, deadline=None)
@given(_records)
def test_every_record_encoder_writes_the_same_bytes(rec: HttpTransaction) -> None:
    from qtap_fluent import records

    want = go_json(rec.to_dict())
    assert rec.to_json() == want
    assert records._go_escape(rec.json_direct()) == want
    assert records._go_escape(records._record_encoder()(rec)) == want


def test_orjson_and_direct_paths_both_run() -> None:
    # Without orjson the choice is the direct writer; with it, a record orjson refuses (a lone
    # surrogate) still goes out through the direct writer.
    from qtap_fluent import records

    odd = minimal(request=Request(method="GET", url="/\ud800", headers=(("X", "\ud800"),)))
    assert odd.to_json() == go_json(odd.to_dict())
    try:
        import orjson  # noqa: F401
    except ImportError:
        assert records._encode_record is HttpTransaction.json_direct
    else:
        assert records._encode_record is not HttpTransaction.json_direct


# -- quick_init keeps the dataclass contract ------------------------------------------------------
def test_quick_init_keeps_frozen_keyword_only_defaults() -> None:
    import dataclasses
    import inspect

    from qtap_fluent.agent.protocols import events

    classes = [Metadata, Request, Response, HttpTransaction, events.Body, events.RequestHead,
               events.ResponseHead, events.RequestEnd, events.ResponseEnd, events.StreamReset,
               events.Tunnel, events.Desync]
    for cls in classes:
        params = list(inspect.signature(cls).parameters.values())
        fields = dataclasses.fields(cls)
        assert [p.name for p in params] == [f.name for f in fields], cls
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), cls
        assert [p.default for p in params] == [
            inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            for f in fields], cls
    m = Metadata(process_id="1")
    assert m.process_exe == "" and m.tags == () and m == Metadata(process_id="1")
    assert hash(m) == hash(Metadata(process_id="1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.process_id = "2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Request(method="GET")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Response(status=200, colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Response(200)  # type: ignore[call-arg]


# -- fast constructors and the record map built in the same pass --------------------------------
def test_fast_new_builds_ordinary_frozen_instances() -> None:
    import dataclasses
    import inspect
    import pickle

    from qtap_fluent.agent import assembler
    from qtap_fluent.agent.protocols import events
    from qtap_fluent.records import fast_new

    for cls in (Metadata, Request, Response, HttpTransaction, events.Body, events.RequestHead):
        make = fast_new(cls)
        params = list(inspect.signature(make).parameters.values())
        assert [p.name for p in params] == [f.name for f in dataclasses.fields(cls)], cls
        assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params), cls
    m = fast_new(Metadata)(process_id="1", tags=("a",))
    # positional, in field order (the hot path's calls), with trailing defaults
    assert fast_new(Request)("GET", "/u", "http") == Request(method="GET", url="/u", scheme="http")
    assert fast_new(events.Body)(b"x", True, 1) == events.Body(data=b"x", truncated=True,
                                                                wire_len=1)
    assert type(m) is Metadata and m == Metadata(process_id="1", tags=("a",))
    assert hash(m) == hash(Metadata(process_id="1", tags=("a",))) and m.process_exe == ""
    assert pickle.loads(pickle.dumps(m)) == m and dataclasses.replace(m, pod_name="p").pod_name == "p"
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.process_id = "2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        fast_new(Request)(method="GET")  # url is required
    with pytest.raises(TypeError):
        fast_new(Response)(status=200, colour="red")
    # a plain (not frozen) slotted dataclass gets plain stores and stays mutable
    ex = assembler._new_exchange(**{f.name: None for f in dataclasses.fields(assembler.Exchange)})
    ex.status = 200
    assert type(ex) is assembler.Exchange and ex.status == 200 and ex.reset_code is None


def test_record_map_is_read_by_to_json_but_never_handed_out() -> None:
    rec = minimal(direction="ingress")
    wanted = rec.to_json()
    rec.with_map(rec.to_dict())
    assert rec.to_json() == wanted
    handed = rec.to_dict()
    handed["direction"] = "changed"  # a caller's copy: the record's own map is untouched
    assert rec.to_json() == wanted and rec.to_dict()["direction"] == "ingress"
    assert rec == minimal(direction="ingress")  # the map is no field: equality ignores it


def test_rfc3339nano_one_entry_cache_follows_the_second() -> None:
    base = 1_761_235_661_000_000_000
    assert rfc3339nano(base + 5) == "2025-10-23T16:07:41.000000005Z"
    assert rfc3339nano(base + 1_000_000_000) == "2025-10-23T16:07:42Z"
    assert rfc3339nano(base + 7) == "2025-10-23T16:07:41.000000007Z"  # back to an older second


def test_xid_matches_the_plain_base32hex_encoding() -> None:
    import base64
    import hashlib

    from qtap_fluent.agent.ids import XidGenerator

    for machine, pid, start in (("a", 0, 0), ("qtap-fluent", 65535, 0xFFFFF0), ("h", 4242, 7)):
        gen = XidGenerator(machine, pid, start)
        prefix = hashlib.md5(machine.encode(), usedforsecurity=False).digest()[:3] + (
            pid & 0xFFFF).to_bytes(2, "big")
        for k in range(1, 40):  # crosses the 24-bit counter wrap and several seconds
            ts = 1_767_225_600_000_000_000 + k * 300_000_000
            raw = (ts // 1_000_000_000).to_bytes(4, "big") + prefix + (
                (start + k) & 0xFFFFFF).to_bytes(3, "big")
            want = base64.b32hexencode(raw)[:20].decode().lower()
            assert gen.new(ts) == want, (machine, k)
