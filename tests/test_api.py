"""The public API: names, loggers, levels, %-args, bind, exceptions, stats, 0.2.x names."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

import kakashi

from conftest import read_lines

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_all_is_sorted_and_importable() -> None:
    assert kakashi.__all__ == sorted(kakashi.__all__)
    for name in kakashi.__all__:
        assert hasattr(kakashi, name), name


def test_legacy_level_constants_keep_their_values() -> None:
    assert (
        kakashi.LOG_LEVEL_DEBUG,
        kakashi.LOG_LEVEL_INFO,
        kakashi.LOG_LEVEL_WARNING,
        kakashi.LOG_LEVEL_ERROR,
        kakashi.LOG_LEVEL_CRITICAL,
    ) == (10, 20, 30, 40, 50)


def test_get_logger_is_cached_by_name_and_defaults_to_module_name() -> None:
    assert kakashi.get_logger("a.b") is kakashi.get_logger("a.b")
    assert kakashi.get_logger("a.b") is not kakashi.get_logger("a.c")
    assert kakashi.get_logger().name == __name__


def test_get_logger_positional_min_level_as_in_0_2(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    log = kakashi.get_logger("legacy", kakashi.LOG_LEVEL_WARNING)
    log.info("hidden")
    log.warning("shown")
    kakashi.flush()
    assert [line.split(" ", 1)[1] for line in read_lines(log_path)] == ["WARNING legacy: shown"]


def test_get_logger_rejects_non_str_name() -> None:
    with pytest.raises(TypeError, match="logger name must be a str, not int"):
        kakashi.get_logger(42)  # type: ignore[arg-type]


def test_text_line_layout(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    kakashi.get_logger("app.db").info("user logged in", user_id=42, ip="10.0.0.1")
    kakashi.flush()
    (line,) = read_lines(log_path)
    assert re.fullmatch(TS + r" INFO app\.db: user logged in user_id=42 ip=10\.0\.0\.1", line), line


def test_percent_args_are_applied_only_when_enabled(log_path: Path) -> None:
    class Counting:
        calls = 0

        def __str__(self) -> str:
            Counting.calls += 1
            return "bob"

    kakashi.configure(sink=log_path)
    log = kakashi.get_logger("args")
    log.debug("user %s", Counting())
    assert Counting.calls == 0
    log.info("user %s has %d items", Counting(), 3)
    log.info("dict form %(a)s", {"a": 1})
    kakashi.flush()
    assert [line.split(": ", 1)[1] for line in read_lines(log_path)] == ["user bob has 3 items", "dict form 1"]
    assert Counting.calls == 1


def test_bad_percent_args_keep_the_message_and_the_args(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    kakashi.get_logger("args").info("needs two %s %s", "one")
    kakashi.flush()
    (line,) = read_lines(log_path)
    assert line.endswith("needs two %s %s <format error TypeError; args: one>")


def test_set_level_takes_effect_at_once_for_bound_loggers_too(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    log = kakashi.get_logger("lvl")
    child = log.bind(k=1)
    child.debug("before")
    log.set_level("DEBUG")
    assert log.level == kakashi.DEBUG and log.is_enabled_for("DEBUG") and child.is_enabled_for(10)
    child.debug("after")
    log.set_level(None)  # follow the configuration again
    child.debug("hidden again")
    kakashi.flush()
    assert [line.split(": ", 1)[1] for line in read_lines(log_path)] == ["after k=1"]


def test_configure_changes_existing_loggers(log_path: Path) -> None:
    log = kakashi.get_logger("live")
    kakashi.configure(sink=log_path, level="ERROR", format="json")
    log.warning("hidden")
    log.error("shown")
    (line,) = read_lines(log_path)
    assert json.loads(line)["message"] == "shown"


def test_log_accepts_names_numbers_and_custom_levels(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    before = kakashi.stats()
    log = kakashi.get_logger("lv")
    log.log("warning", "by name")
    log.log(50, "by number")
    log.log(25, "custom")
    log.log(15, "below INFO")
    log.log("NOPE", "unknown level")
    kakashi.flush()
    records = [json.loads(line) for line in read_lines(log_path)]
    assert [(r["level"], r["message"]) for r in records] == [
        ("WARNING", "by name"),
        ("CRITICAL", "by number"),
        ("LEVEL25", "custom"),
    ]
    # the unknown level: dropped and counted as the caller's mistake, not an internal error
    stats = kakashi.stats()
    assert (stats["dropped"] - before["dropped"], stats["internal_errors"] - before["internal_errors"]) == (1, 0)


def test_warn_is_warning_and_exception_carries_the_traceback(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    log = kakashi.get_logger("exc")
    log.warn("old name")
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError:
        log.exception("failed", order=7)
    records = [json.loads(line) for line in read_lines(log_path)]
    assert records[0]["level"] == "WARNING"
    exc = records[1]["exception"]
    assert records[1]["level"] == "ERROR" and records[1]["order"] == 7
    assert exc["type"] == "ValueError" and exc["message"] == "outer"
    assert "KeyError: 'inner'" in exc["traceback"]
    assert "direct cause" in exc["traceback"] and 'raise ValueError("outer")' in exc["traceback"]
    assert list(records[1]) == ["timestamp", "level", "logger", "message", "order", "exception"]


def test_exc_info_accepts_an_exception_or_a_tuple(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    log = kakashi.get_logger("exc")
    err = RuntimeError("given")
    log.error("as instance", exc_info=err)
    log.error("as tuple", exc_info=(RuntimeError, err, None))
    log.error("no active exception", exc_info=True)
    records = [json.loads(line) for line in read_lines(log_path)]
    assert records[0]["exception"]["message"] == "given"
    assert records[1]["exception"]["type"] == "RuntimeError"
    assert "exception" not in records[2]


def test_bind_adds_fields_and_call_fields_win(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="logfmt")
    log = kakashi.get_logger("b").bind(request_id="r1", user="u")
    log.info("one", extra=1)
    log.info("two", user="override")
    log.bind(more=True).info("three")
    kakashi.flush()
    tails = [line.split(" message=", 1)[1] for line in read_lines(log_path)]
    assert tails == [
        "one request_id=r1 user=u extra=1",
        "two request_id=r1 user=override",
        "three request_id=r1 user=u more=true",
    ]


def test_msg_and_exc_info_names(log_path: Path) -> None:
    # msg is positional-only, so a field may be called "msg"
    kakashi.configure(sink=log_path, format="json")
    kakashi.get_logger("n").info("text", msg="field")
    kakashi.flush()
    assert json.loads(read_lines(log_path)[0])["msg"] == "field"


def test_stats_count_records_and_writes(log_path: Path) -> None:
    kakashi.configure(sink=log_path, batch_size=10)
    before = kakashi.stats()
    log = kakashi.get_logger("s")
    for i in range(25):
        log.info("n", i=i)
    mid = kakashi.stats()
    assert mid["written"] - before["written"] == 20 and mid["pending"] == 5
    kakashi.flush()
    after = kakashi.stats()
    assert after["written"] - before["written"] == 25 and after["pending"] == 0
    assert after["records"] - before["records"] == 25
    assert set(after) >= {"records", "written", "dropped", "sink_errors"}


def test_shutdown_twice_then_logging_and_configure_still_work(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    log = kakashi.get_logger("sd")
    log.info("before")
    kakashi.shutdown()
    kakashi.shutdown()
    kakashi.shutdown_async_logging()
    log.info("after shutdown")  # the file is reopened on demand
    kakashi.flush()
    assert [line.split(": ", 1)[1] for line in read_lines(log_path)] == ["before", "after shutdown"]
    kakashi.configure(sink=log_path, format="json")
    log.info("reconfigured")
    kakashi.flush()
    assert json.loads(read_lines(log_path)[-1])["message"] == "reconfigured"


def test_get_async_logger_and_clear_logger_cache_exist() -> None:
    log = kakashi.get_async_logger("legacy.async")
    assert log.name == "legacy.async"
    kakashi.clear_logger_cache()
    assert kakashi.get_logger("legacy.async") is not log
    log.info("still works after the cache was cleared")


def test_logger_repr_names_level() -> None:
    assert repr(kakashi.get_logger("r", "ERROR")) == "<kakashi.Logger 'r' level=ERROR>"


def test_filtered_methods_accept_anything_and_write_nothing(log_path: Path) -> None:
    kakashi.configure(sink=log_path)
    errors = kakashi.stats()["internal_errors"]
    log = kakashi.get_logger("f", "CRITICAL")
    log.debug("x %s", 1, exc_info=True, any_field=object())
    log.info("x", **{"weird key": 1})
    log.exception("not at ERROR")
    kakashi.flush()
    assert read_lines(log_path) == [] and kakashi.stats()["internal_errors"] == errors


def test_loggers_are_thread_safe_to_create() -> None:
    barrier = threading.Barrier(8)
    got: list[kakashi.Logger] = []

    def work() -> None:
        barrier.wait()
        got.append(kakashi.get_logger("race"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(g) for g in got}) == 1
