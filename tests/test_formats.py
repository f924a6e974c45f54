"""Formats: exact layouts, reserved names, bad values that never raise, hostile input
that stays on one line, orjson parity."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kakashi
from kakashi import _values

from conftest import read_lines

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
HOSTILE = "a\nb\rc\x00d\x1b[31me\u2028f\u2029g\"h'i key=j \\k \x85l \x9bm \u202en"


def one_line(path: Path) -> str:
    kakashi.flush()
    lines = read_lines(path)
    assert len(lines) == 1, lines
    return lines[0]


def test_json_layout_and_key_order(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.get_logger("app").bind(b=2).info("hello", z=1, a=[1, "x"], n=None, t=True, f=1.5)
    line = one_line(log_path)
    record = json.loads(line)
    assert list(record) == ["timestamp", "level", "logger", "message", "b", "z", "a", "n", "t", "f"]
    assert re.fullmatch(TS, record["timestamp"])
    assert record == {
        **record,
        "level": "INFO",
        "logger": "app",
        "message": "hello",
        "b": 2,
        "z": 1,
        "a": [1, "x"],
        "n": None,
        "t": True,
        "f": 1.5,
    }


def test_logfmt_layout(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="logfmt")
    kakashi.get_logger("app db").info("hi there", user="bob smith", n=3, ok=False, empty="")
    line = one_line(log_path)
    assert re.fullmatch(
        "timestamp=" + TS + r' level=INFO logger="app db" message="hi there" user="bob smith" n=3 ok=false empty=""',
        line,
    ), line


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_fields_cannot_overwrite_record_keys(log_path: Path, fmt: str) -> None:
    kakashi.configure(sink=log_path, format=fmt)
    kakashi.get_logger("real").info(
        "real message", timestamp="forged", level="DEBUG", logger="fake", message="forged", exception="fake"
    )
    line = one_line(log_path)
    if fmt == "json":
        record = json.loads(line)
        assert (record["level"], record["logger"], record["message"]) == ("INFO", "real", "real message")
        assert record["field_timestamp"] == "forged" and record["field_level"] == "DEBUG"
        assert record["field_logger"] == "fake" and record["field_message"] == "forged"
        assert record["field_exception"] == "fake" and "exception" not in record
    else:
        assert " field_timestamp=forged field_level=DEBUG field_logger=fake field_message=forged" in line
        assert " timestamp=forged" not in line


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_hostile_message_and_values_stay_on_one_line(log_path: Path, fmt: str) -> None:
    kakashi.configure(sink=log_path, format=fmt)
    kakashi.get_logger("h").warning(HOSTILE, value=HOSTILE, **{"bad key=\n": HOSTILE})
    line = one_line(log_path)
    assert "\x1b" not in line and "\x00" not in line and "\u2028" not in line and "\x9b" not in line
    assert "\u202e" not in line and "\x85" not in line
    if fmt == "json":
        record = json.loads(line)
        # JSON keeps a name as given (escaped), so names that differ never collide
        assert record["message"] == HOSTILE and record["value"] == HOSTILE and record["bad key=\n"] == HOSTILE
    elif fmt == "text":
        assert "a\\nb\\rc\\x00d\\x1b[31me\\u2028f\\u2029g\"h'i key=j \\k \\x85l \\x9bm \\u202en" in line
        assert ' bad_key__="a\\nb' in line
    else:
        assert 'message="a\\nb\\rc\\u0000d\\u001b[31me\\u2028f\\u2029g\\"h\'i key=j \\\\k \\u0085l' in line


def test_text_escapes_backslash_free_messages_verbatim(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    kakashi.get_logger("t").info("path C:\\temp is fine", where="C:\\temp")
    line = one_line(log_path)
    assert line.endswith(': path C:\\temp is fine where="C:\\\\temp"')


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_bad_values_never_raise_and_other_fields_survive(log_path: Path, fmt: str) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    cyc_dict: dict[str, Any] = {}
    cyc_dict["self"] = cyc_dict
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    kakashi.configure(sink=log_path, format=fmt, max_value_length=1000)
    kakashi.get_logger("bad").info(
        BadStr(),
        bad=BadStr(),
        cyc=cyclic,
        cycd=cyc_dict,
        raw=b"\x00\xff",
        huge="x" * 10_000_000,
        nan=math.nan,
        inf=-math.inf,
        deep=deep,
        keys={(1, 2): "tuple key", 3: "int key"},
        ok="survivor",
    )
    line = one_line(log_path)
    assert len(line) < 20_000
    if fmt == "json":
        record = json.loads(line)
        assert record["message"] == "<unprintable BadStr: RuntimeError>"
        assert record["bad"] == "<unprintable BadStr: RuntimeError>"
        assert record["cyc"] == [1, "<cycle>"] and record["cycd"] == {"self": "<cycle>"}
        assert record["raw"] == "b'\\x00\\xff'"
        assert record["huge"] == "x" * 1000 + "...[truncated 9999000 chars]"
        assert record["nan"] is None and record["inf"] is None
        assert record["keys"] == {"(1, 2)": "tuple key", "3": "int key"}
        assert "<max depth>" in json.dumps(record["deep"])
        assert record["ok"] == "survivor"
    else:
        assert "<unprintable BadStr: RuntimeError>" in line
        assert ' cyc="[1,\\"<cycle>\\"]"' in line
        assert " raw=\"b'\\\\x00\\\\xff'\"" in line
        assert ' huge="' + "x" * 1000 + '...[truncated 9999000 chars]" ' in line
        assert " nan=nan inf=-inf " in line and line.endswith(" ok=survivor")


def test_long_messages_are_cut_with_a_marker(log_path: Path) -> None:
    kakashi.configure(sink=log_path, max_value_length=100)
    kakashi.get_logger("m").info("y" * 250)
    assert one_line(log_path).endswith("y" * 100 + "...[truncated 150 chars]")


def test_lone_surrogates_are_written_escaped(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.get_logger("s").info("half \ud800 pair", v="\udfff")
    record = json.loads(one_line(log_path))
    assert record["message"] == "half \ud800 pair" and record["v"] == "\udfff"


def test_non_ascii_text_is_kept(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    kakashi.get_logger("u").info("grüße 日本", city="Zürich")
    line = one_line(log_path)
    assert "grüße 日本" in line and json.loads(line)["city"] == "Zürich"


def test_orjson_and_stdlib_json_give_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("orjson")

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int

    values: list[Any] = [
        {"a": [1, 2.5, None, True, "x\ny"], "b": {"c": "é\u2028"}},
        [1e16, 1e-7, 0.1],
        {1: "int key", None: 1},
        {True: 2},
        {"t": (1, 2)},
        {"set": {1}},
        [float("nan")],
        {"b": b"x"},
        [Color.RED, uuid.UUID(int=1), datetime.datetime(2026, 1, 2, 3, 4, 5)],
        [Point(1)],
        [2**70],
        {"s": "one-time 1e-5"},
    ]
    fast = [_values.dumps(v) for v in values]
    monkeypatch.setattr(_values, "_fast_dumps", _values._std_encoder)
    assert [_values.dumps(v) for v in values] == fast


text_st = st.text(alphabet=st.characters(), max_size=60)
value_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text_st | st.binary(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text_st, children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(message=text_st, key=text_st, value=value_st)
def test_any_input_is_one_line_and_valid_json(message: str, key: str, value: Any) -> None:
    for fmt in ("text", "json", "logfmt"):
        got: list[str] = []
        kakashi.configure(sink=got.append, format=fmt)
        kakashi.get_logger("prop").info(message, **{key: value, "after": "kept"})
        kakashi.flush()
        (data,) = got
        assert data.endswith("\n") and data.count("\n") == 1
        body = data[:-1]
        assert len(body.splitlines()) == 1 or body == ""
        assert not any(ch in body for ch in "\r\x00\x1b\u2028\u2029\x85")
        if fmt == "json":
            record = json.loads(body)
            assert record["message"] == message and record["after"] == "kept"
            assert record["level"] == "INFO" and record["logger"] == "prop"
        elif fmt == "logfmt":
            assert body.endswith(" after=kept")
        else:
            assert body.endswith(" after=kept")


def test_timestamps_are_utc_milliseconds_also_when_the_clock_steps_back() -> None:
    from kakashi._render import format_timestamp

    assert format_timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1.9999) == "1970-01-01T00:00:01.999Z"
    assert format_timestamp(1_795_000_000.123456) == "2026-11-18T11:06:40.123Z"
    assert format_timestamp(1_795_000_000.1239) == "2026-11-18T11:06:40.123Z"  # same ms: cached
    assert format_timestamp(50.25) == "1970-01-01T00:00:50.250Z"  # backwards: recomputed


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def test_a_renamed_record_key_never_meets_a_field_of_that_name(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    log = kakashi.get_logger("app")
    log.info("m", level="a", field_level="b", field_field_level="c")
    line = one_line(log_path)
    record = json.loads(line, object_pairs_hook=_unique_keys)
    assert (record["level"], record["field_level"]) == ("INFO", "a")
    assert (record["field_field_level"], record["field_field_field_level"]) == ("b", "c")
    assert "field_levels" not in line and "fieldlevel" not in line


def test_long_field_names_that_differ_after_the_cut_stay_two_keys(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    long_a, long_b = "k" * 300 + "a", "k" * 300 + "b"
    kakashi.get_logger("app").info("m", **{long_a: 1, long_b: 2})
    record = json.loads(one_line(log_path), object_pairs_hook=_unique_keys)
    cut = [key for key in record if key.startswith("kkk")]
    assert len(cut) == 2 and all(len(key) < 200 and "301 chars" in key for key in cut)
    assert sorted(record[key] for key in cut) == [1, 2]


def test_a_non_str_context_name_is_its_text_and_one_field(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    with kakashi.context(**{"1": "outer"}):
        token = kakashi.push_context({1: "inner"})
        kakashi.get_logger("app").info("m", **{"2": "call"})
        kakashi.reset_context(token)
    record = json.loads(one_line(log_path), object_pairs_hook=_unique_keys)
    assert (record["1"], record["2"]) == ("inner", "call")


name_st = st.sampled_from(
    ["level", "field_level", "field_field_level", "message", "field_message", "timestamp", "exception", "x", "1"]
) | st.text(max_size=140)


@settings(max_examples=200, deadline=None)
@given(
    call=st.dictionaries(name_st, st.integers(), max_size=5),
    bound=st.dictionaries(name_st, st.integers(), max_size=3),
    ctx=st.dictionaries(name_st, st.integers(), max_size=3),
)
def test_every_json_key_is_unique_whatever_the_names(
    call: dict[str, int], bound: dict[str, int], ctx: dict[str, int]
) -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, format="json")
    log = kakashi.get_logger("prop").bind(**bound)
    token = kakashi.push_context(ctx)
    try:
        log.info("m", **call)
        if call:
            log.prepare(*call).info("m", *call.values())
        kakashi.flush()
    finally:
        kakashi.reset_context(token)
    for line in "".join(got).splitlines():
        record = json.loads(line, object_pairs_hook=_unique_keys)
        # every name given is there once: the record's four keys plus one per distinct name
        assert len(record) == 4 + len({**ctx, **bound, **call})
