"""Line protocol both ways: what the sink writes parses back to the same point."""

from __future__ import annotations

import pytest

from iomt.monitoring.point import Encoder, LineError, Point, encode, parse_line


def test_encode_sorts_tags_types_fields_and_keeps_the_event_time() -> None:
    fields = {"loss": 0.25, "samples": 12, "flagged": True}
    line = encode(Point("train", fields, 1700, {"hmu": "hmu-01"}), {"run": "r", "scenario": "s"})
    assert line == "train,hmu=hmu-01,run=r,scenario=s loss=0.25,samples=12i,flagged=true 1700"


def test_a_point_tag_wins_over_the_base_tag() -> None:
    line = encode(Point("m", {"x": 1.0}, 5, {"run": "mine"}), {"run": "base"})
    assert parse_line(line)[1] == {"run": "mine"}


@pytest.mark.parametrize(
    "point",
    [
        Point("m e,a", {"f ,=x": 1.5, "n": -3}, 42, {"hmu": "a b,c=d"}),
        Point("m", {"big": 2**62, "tiny": 5e-324, "neg": -1.25e300}, 1),
        Point("m", {"t": True, "f": False}, 0, {"scenario": 'quo"te'}),
    ],
)
def test_round_trip_through_escapes(point: Point) -> None:
    measurement, tags, fields, stamp = parse_line(encode(point))
    assert measurement == point.measurement
    assert tags == dict(point.tags or {})
    assert fields == dict(point.fields)
    assert all(type(fields[k]) is type(v) for k, v in point.fields.items())
    assert stamp == point.time_ns


def test_non_finite_fields_are_left_out_and_an_empty_point_refused() -> None:
    assert encode(Point("m", {"a": float("nan"), "b": 1.0}, 1)) == "m b=1.0 1"
    with pytest.raises(LineError):
        encode(Point("m", {"a": float("inf")}, 1))
    with pytest.raises(LineError):
        encode(Point("m\nx", {"a": 1.0}, 1))
    with pytest.raises(LineError):
        encode(Point("m", {"a": "text"}, 1))  # type: ignore[dict-item]


def test_the_encoder_cache_does_not_mix_series() -> None:
    enc = Encoder({"run": "r"})
    a = enc.line(Point("m", {"x": 1.0}, 1, {"hmu": "hmu-01"}))
    b = enc.line(Point("m", {"x": 1.0}, 1, {"hmu": "hmu-02"}))
    c = enc.line(Point("m", {"x": 1.0}, 1))
    assert a == "m,hmu=hmu-01,run=r x=1.0 1"
    assert b == "m,hmu=hmu-02,run=r x=1.0 1"
    assert c == "m,run=r x=1.0 1"


def test_parse_reads_the_full_grammar() -> None:
    m, tags, fields, stamp = parse_line('cpu,host=a\\ b usage=1,idle=2i,u=3u,s="x, \\"y\\" z",ok=T')
    assert (m, tags, stamp) == ("cpu", {"host": "a b"}, None)
    assert fields == {"usage": 1.0, "idle": 2, "u": 3, "s": 'x, "y" z', "ok": True}


@pytest.mark.parametrize(
    "line",
    ["", "m", "m x", "m x=", "m x=1 notatime", "m,t x=1", "m x=1_000", "m x=nan", 'm x="open',
     "m x=-1u", " =1"],
)  # fmt: skip
def test_parse_refuses_what_is_not_line_protocol(line: str) -> None:
    with pytest.raises(LineError):
        parse_line(line)
