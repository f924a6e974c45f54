"""The console format (plain and on a terminal) and kakashi.testing.capture."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import kakashi
from kakashi.testing import capture

from conftest import read_lines


def test_console_is_aligned_with_indented_tracebacks(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="console", level="DEBUG")
    log = kakashi.get_logger("app")
    log.debug("d")
    log.warning("w", k=1)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("failed")
    lines = read_lines(log_path)
    assert [line[24:] for line in lines[:2]] == [" DEBUG    app: d", " WARNING  app: w k=1"]
    assert lines[2][24:] == " ERROR    app: failed"
    assert lines[3] == "    Traceback (most recent call last):"
    assert lines[-2:] == ["    ValueError: bad", "    value"]  # still indented: never a record
    assert all(line.startswith("    ") for line in lines[3:])
    assert "\x1b[" not in log_path.read_text()  # a file is not a terminal: no colour


def test_console_marks_a_cut_traceback_like_the_other_formats(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="console", max_value_length=64)
    try:
        raise ValueError("x" * 1000)
    except ValueError:
        kakashi.get_logger("app").exception("failed")
    lines = read_lines(log_path)
    assert lines[-1].startswith("    ") and "...[truncated " in lines[-1] and lines[-1].endswith(" chars]")


def test_console_colours_levels_on_a_terminal() -> None:
    code = textwrap.dedent(
        """
        import kakashi
        kakashi.configure(format="console", sink="stdout")
        kakashi.get_logger("tty").error("red alert")
        """
    )
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
    assert proc.wait(30) == 0
    assert b"\x1b[31mERROR\x1b[0m    tty: red alert" in output


def test_capture_collects_records_and_restores_the_configuration(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="text")
    log = kakashi.get_logger("svc")
    log.info("before")
    with capture() as records:
        log.debug("inside", user="bob")
        assert records[-1]["message"] == "inside"  # delivered at once
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("boom")
    log.info("after")
    kakashi.flush()
    assert [(r["level"], r["message"]) for r in records] == [("DEBUG", "inside"), ("ERROR", "boom")]
    assert records[0]["user"] == "bob" and records[1]["exception"]["type"] == "ZeroDivisionError"
    assert [line.split(": ", 1)[1] for line in read_lines(log_path)] == ["before", "after"]
