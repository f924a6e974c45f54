"""configure(): every bad value fails there, clearly; environment defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import kakashi

from conftest import read_lines, run_python


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"level": "LOUD"}, ValueError, "unknown level 'LOUD'; valid levels: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"level": 1000}, ValueError, "level 1000 is out of range"),
        ({"level": 2.5}, TypeError, "level must be a level name or an int, not float"),
        ({"level": True}, TypeError, "level must be a level name or an int, not bool"),
        ({"format": "xml"}, ValueError, "unknown format 'xml'; valid formats: text, json, logfmt"),
        ({"format": None}, TypeError, "format must be a str, not NoneType"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({"batch_size": "100"}, TypeError, "batch_size must be an int, not str"),
        ({"flush_interval": 0}, ValueError, "flush_interval must be a positive finite number of seconds, got 0"),
        ({"flush_interval": float("inf")}, ValueError, "flush_interval must be a positive finite number"),
        ({"flush_interval": "1s"}, TypeError, "flush_interval must be a number of seconds, not str"),
        ({"max_value_length": 10}, ValueError, "max_value_length must be at least 64, got 10"),
        ({"sink": 42}, TypeError, "invalid sink 42: use 'stderr', 'stdout', a path"),
        ({"sink": b"/tmp/x"}, TypeError, "sink path must be str or os.PathLike, not bytes"),
        ({"sink": "  "}, ValueError, "sink path must not be empty"),
    ],
)
def test_bad_values_raise_naming_the_value(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        kakashi.configure(**options)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_unwritable_path_fails_in_configure(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "app.log"
    with pytest.raises(FileNotFoundError) as info:
        kakashi.configure(sink=target)
    assert str(target) in str(info.value) and "cannot open log file for appending" in str(info.value)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if not os.access(ro, os.W_OK):  # root can write anyway
        with pytest.raises(PermissionError):
            kakashi.configure(sink=ro / "app.log")


def test_a_bad_value_leaves_the_old_configuration_in_place(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json")
    with pytest.raises(ValueError):
        kakashi.configure(sink=log_path, format="yaml")
    kakashi.get_logger("keep").warning("still json")
    kakashi.flush()
    assert json.loads(read_lines(log_path)[0])["message"] == "still json"


def test_level_names_are_case_insensitive_and_warn_is_warning(log_path: Path) -> None:
    kakashi.configure(sink=log_path, level=" warn ")
    log = kakashi.get_logger("ci")
    log.info("hidden")
    log.warning("shown")
    kakashi.flush()
    assert len(read_lines(log_path)) == 1


def test_sink_kinds(tmp_path: Path) -> None:
    got: list[str] = []

    class Writer:
        def __init__(self) -> None:
            self.data: list[str] = []

        def write(self, data: str) -> None:
            self.data.append(data)

    writer = Writer()
    kakashi.configure(sink=got.append)
    kakashi.get_logger("k").info("to a callable")
    kakashi.flush()
    kakashi.configure(sink=writer)
    kakashi.get_logger("k").info("to a writer")
    kakashi.flush()
    kakashi.configure(sink=tmp_path / "pathlike.log")
    kakashi.get_logger("k").info("to a path")
    kakashi.flush()
    assert got[0].endswith("INFO k: to a callable\n")
    assert writer.data[0].endswith("INFO k: to a writer\n")
    assert read_lines(tmp_path / "pathlike.log")[0].endswith("INFO k: to a path")


def test_stdout_and_stderr_follow_redirection(capsys: pytest.CaptureFixture[str]) -> None:
    kakashi.configure(sink="stdout")
    kakashi.get_logger("o").info("on stdout")
    kakashi.flush()
    kakashi.configure(sink="stderr")
    kakashi.get_logger("o").info("on stderr")
    kakashi.flush()
    out, err = capsys.readouterr()
    assert out.endswith("INFO o: on stdout\n") and err.endswith("INFO o: on stderr\n")


def test_environment_sets_defaults_without_configure(tmp_path: Path) -> None:
    path = tmp_path / "env.log"
    proc = run_python(
        """
        import kakashi
        log = kakashi.get_logger("env")
        log.debug("debug shows")
        """,
        env={"KAKASHI_LEVEL": "debug", "KAKASHI_FORMAT": "json", "KAKASHI_SINK": str(path)},
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(read_lines(path)[0])["message"] == "debug shows"


def test_kakashi_sink_names_the_streams_in_any_case(tmp_path: Path) -> None:
    proc = run_python(
        """
        import kakashi
        kakashi.get_logger("env").info("to the stream")
        """,
        env={"KAKASHI_SINK": "STDOUT"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stdout.endswith(" INFO env: to the stream\n")
    assert not (tmp_path / "STDOUT").exists()


def test_no_environment_means_text_info_stderr() -> None:
    proc = run_python(
        """
        import kakashi
        log = kakashi.get_logger("plain")
        log.debug("hidden")
        log.info("shown")
        """
    )
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.endswith(" INFO plain: shown\n") and "hidden" not in proc.stderr


def test_bad_environment_is_reported_and_ignored(tmp_path: Path) -> None:
    proc = run_python(
        """
        import kakashi
        kakashi.get_logger("env").info("still logged")
        """,
        env={"KAKASHI_LEVEL": "LOUD", "KAKASHI_FORMAT": "xml", "KAKASHI_SINK": str(tmp_path / "no" / "such.log")},
    )
    assert proc.returncode == 0
    err = proc.stderr.splitlines()
    assert err[0] == (
        "kakashi: ignoring KAKASHI_LEVEL='LOUD': "
        "unknown level 'LOUD'; valid levels: DEBUG, INFO, WARNING, ERROR, CRITICAL (or an int)"
    )
    assert err[1].startswith("kakashi: ignoring KAKASHI_FORMAT='xml': unknown format 'xml'")
    assert err[2].startswith("kakashi: ignoring KAKASHI_SINK=") and "No such file or directory" in err[2]
    assert err[3].endswith(" INFO env: still logged") and len(err) == 4


@pytest.mark.parametrize(
    ("given", "meant"), [("stdotu", "stdout"), ("STDOUT", "stdout"), ("sdterr", "stderr"), ("stdo", "stdout")]
)
def test_a_bare_name_close_to_a_stream_is_refused_with_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, meant: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"sink '{given}': did you mean '{meant}'.*'./{given}'"):
        kakashi.configure(sink=given)
    assert list(tmp_path.iterdir()) == []  # no file made
    kakashi.configure(sink=f"./{given}")  # a path is a file, as asked
    kakashi.configure(sink="stdin.log")  # an extension, or a name further away: a file too
    kakashi.configure()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([given, "stdin.log"])


def test_choices_are_normalised_like_format_and_level() -> None:
    kakashi.configure(mode=" ASYNC ", overflow="Drop_Newest", format="JSON", level="info")
    from kakashi import _config

    config = _config.current()
    assert (config.mode, config.overflow, config.format, config.level) == ("async", "drop_newest", "json", 20)


def test_log_with_an_unknown_level_is_reported_as_the_callers_mistake(capfd: pytest.CaptureFixture[str]) -> None:
    before = kakashi.stats()
    kakashi.get_logger("lvl").log("LOUD", "m")
    stats = kakashi.stats()
    assert (stats["dropped"] - before["dropped"], stats["internal_errors"] - before["internal_errors"]) == (1, 0)
    err = capfd.readouterr().err
    assert "log() called with a bad level, the record was dropped: unknown level 'LOUD'" in err
    assert "internal error" not in err
