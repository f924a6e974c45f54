"""Logger.prepare: methods for fixed field names write exactly what the logger's own
methods write, follow the level and the configuration, and refuse a wrong call."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kakashi

from conftest import read_lines

# Timestamps are the only part two calls may not share.
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


NAMES = ("status", "duration_ms", "bytes", "user_agent", "http_version")
VALUES = (200, 0.642, 2, "curl/8.0", "1.1")


def both(logger: kakashi.Logger, names: tuple[str, ...], values: tuple[Any, ...], level: str = "info") -> None:
    getattr(logger.prepare(*names), level)("GET /items 200", *values)
    getattr(logger, level)("GET /items 200", **dict(zip(names, values)))


def masked_pairs(lines: list[str]) -> list[tuple[str, str]]:
    masked = [_TIMESTAMP.sub("T", line) for line in lines]
    assert len(masked) % 2 == 0, masked
    return list(zip(masked[::2], masked[1::2]))


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt", "console"])
def test_the_same_line_as_keyword_fields(fmt: str) -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, format=fmt)
    log = kakashi.get_logger("prep")
    both(log, NAMES, VALUES)
    with kakashi.context(request_id="abc", method="GET"):
        both(log, NAMES, VALUES)
    kakashi.flush()
    pairs = masked_pairs("".join(got).splitlines())
    assert [a == b for a, b in pairs] == [True, True]
    assert "status" in pairs[1][0] and "abc" in pairs[1][0]


HARD_VALUES = (float("nan"), float("-inf"), 10**5000, True, None, {"a": [1, "é\n"]}, "", "a b=c", "\u2028")


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
def test_the_same_line_for_values_that_need_care(fmt: str) -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, format=fmt)
    for value in HARD_VALUES:  # one at a time: an unprintable int sends its whole call the keyword way
        both(kakashi.get_logger("hard"), ("before", "value"), (1, value))
    kakashi.flush()
    pairs = masked_pairs("".join(got).splitlines())
    assert len(pairs) == len(HARD_VALUES)
    assert [a for a, b in pairs if a != b] == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["text", "json", "logfmt"]),
    names=st.lists(
        st.sampled_from(["status", "user", "password", "message", "level", "a b", "", "é", "request_id", "job"]),
        min_size=1,
        max_size=5,
    ),
    values=st.lists(
        st.none()
        | st.booleans()
        | st.integers()
        | st.sampled_from([10**5000, -(10**5000)])
        | st.floats()
        | st.text(max_size=20)
        | st.lists(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        min_size=5,
        max_size=5,
    ),
    context=st.dictionaries(st.sampled_from(["request_id", "status", "user", "path"]), st.text(max_size=5), max_size=3),
    bound=st.dictionaries(st.sampled_from(["job", "status", "host"]), st.integers(), max_size=2),
)
def test_any_names_values_context_and_bound_fields(
    fmt: str, names: list[str], values: list[Any], context: dict[str, str], bound: dict[str, int]
) -> None:
    # Repeated names, shadowing context or bound fields, redacted and reserved names,
    # unprintable ints, NaN, containers: every case writes the line info(**fields) writes.
    got: list[str] = []
    kakashi.configure(sink=got.append, format=fmt)
    log = kakashi.get_logger("prop").bind(**bound)
    fixed = tuple(names)
    vals = tuple(values[: len(fixed)])
    expected = dict(zip(fixed, vals))
    with kakashi.context(**context):
        log.prepare(*fixed).info("m", *vals)
        log.info("m", **expected)
    kakashi.flush()
    ((a, b),) = masked_pairs("".join(got).splitlines())
    assert a == b


def test_several_routes_and_async_mode_write_the_same_lines(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    kakashi.configure(sinks=[{"sink": first, "format": "json"}, {"sink": second, "format": "logfmt"}])
    both(kakashi.get_logger("routes"), NAMES, VALUES)
    kakashi.configure(sink=first.with_name("c.log"), format="text", mode="async")
    both(kakashi.get_logger("routes"), NAMES, VALUES)
    kakashi.flush()
    for path in (first, second, first.with_name("c.log")):
        ((a, b),) = masked_pairs(read_lines(path))
        assert a == b


def test_follows_the_level_and_the_configuration(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="text", level="INFO")
    log = kakashi.get_logger("levels")
    prepared = log.prepare("n")
    prepared.debug("hidden", 1)
    log.set_level("WARNING")
    prepared.info("hidden too", 2)
    prepared.warning("shown", 3)
    log.set_level(None)
    kakashi.configure(sink=log_path, format="json", level="DEBUG")
    prepared.debug("debug now", 4)
    kakashi.flush()
    lines = read_lines(log_path)
    assert len(lines) == 2
    assert lines[0].endswith("WARNING levels: shown n=3")
    assert '"message":"debug now","n":4}' in lines[1]


def test_error_is_written_before_the_call_returns(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="text")
    kakashi.get_logger("now").prepare("status").error("GET / 500", 500)
    assert read_lines(log_path)[0].endswith("ERROR now: GET / 500 status=500")  # no flush()


def test_a_wrong_call_is_refused() -> None:
    kakashi.configure(sink=lambda data: None)
    log = kakashi.get_logger("wrong")
    with pytest.raises(TypeError, match="must be str"):
        log.prepare("ok", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        log.prepare("a", "b").info("m", 1)
    with pytest.raises(TypeError, match=r"expected 2 values \(for a, a\), got 3"):
        log.prepare("a", "a").info("m", 1, 2, 3)  # repeated names take the keyword path


def test_a_message_is_not_percent_formatted(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="text")
    kakashi.get_logger("pct").prepare("n").info("100%s done", 1)
    kakashi.flush()
    assert read_lines(log_path)[0].endswith("pct: 100%s done n=1")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_context_the_call_gives_again_is_not_written_twice(fmt: str) -> None:
    # An access line gives the request's fields itself: the request context (the same
    # names) is wholly shadowed, and anything else in it is still written.
    got: list[str] = []
    kakashi.configure(sink=got.append, format=fmt)
    log = kakashi.get_logger("shadow")
    names = ("request_id", "path", "status")
    with kakashi.context(request_id="r1", path="/a"):
        both(log, names, ("r1", "/a", 200))
        with kakashi.context(user="bob"):
            both(log, names, ("r1", "/a", 200))
    kakashi.flush()
    pairs = masked_pairs("".join(got).splitlines())
    assert [a == b for a, b in pairs] == [True, True]
    assert pairs[0][0].count("r1") == 1 and "bob" in pairs[1][0]


def test_no_names_and_exc_info() -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, format="text")
    log = kakashi.get_logger("edge")
    log.prepare().info("just a message")
    kakashi.configure(sinks=[got.append, got.append], format="text")
    log.prepare().info("to two sinks")
    kakashi.configure(sink=got.append, format="text")  # rebuilds both: must not fail
    kakashi.flush()
    assert [line.split(": ", 1)[1] for line in "".join(got).splitlines()] == [
        "just a message",
        "to two sinks",
        "to two sinks",
    ]
    with pytest.raises(ValueError, match="exc_info is the traceback argument"):
        log.prepare("exc_info", "user")


def test_a_wrong_number_of_values_is_refused_at_every_level() -> None:
    kakashi.configure(sinks=[{"sink": lambda data: None, "level": "ERROR"}], level="INFO")
    prepared = kakashi.get_logger("arity").prepare("a", "b")
    with pytest.raises(TypeError, match=r"expected 2 values \(for a, b\), got 1"):
        prepared.debug("m", 1)  # below the level
    with pytest.raises(TypeError, match=r"expected 2 values \(for a, b\), got 3"):
        prepared.info("m", 1, 2, 3)  # no sink takes INFO
    with pytest.raises(TypeError):
        prepared.error("m", 1)
    with pytest.raises(TypeError):
        prepared.error("m", v0=1, v1=2)  # type: ignore[call-arg]


def test_prepare_and_configure_from_several_threads() -> None:
    # configure() rebuilds every Prepared while other threads make new ones: it must not
    # fail, and each Prepared must end up writing where the last configure() points.
    import sys
    import threading
    import time

    old: list[str] = []
    new: list[str] = []
    kakashi.configure(sink=old.append, batch_size=1)
    log = kakashi.get_logger("race")
    made: list[kakashi.Prepared] = []
    stop = threading.Event()

    def make() -> None:
        while not stop.is_set():
            made.append(log.prepare("a", "b"))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=make) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            kakashi.configure(sink=old.append, batch_size=1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    kakashi.configure(sink=new.append, batch_size=1)
    old.clear()
    for prepared in made:
        prepared.info("m", 1, 2)
    assert len(made) > 100 and len(new) == len(made) and old == []
