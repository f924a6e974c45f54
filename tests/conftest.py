"""Shared fixtures: a clean configuration per test and helpers for subprocess cases."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kakashi
from kakashi import _async, _engine, _stats


@pytest.fixture(autouse=True)
def reset_kakashi() -> Iterator[None]:
    """Every test starts and ends with the default configuration and nothing pending."""
    kakashi.configure()
    kakashi.clear_context()
    _stats.reset_reports()
    yield
    kakashi.shutdown()  # drains and stops the async worker too
    kakashi.configure()
    kakashi.clear_logger_cache()
    for route in _engine.routes():
        route.lost_unannounced = 0
    _async.async_queue.dropped_unannounced = 0
    _engine._dropped_inside[0] = 0
    kakashi.clear_context()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


def read_lines(path: Path) -> list[str]:
    """The file's lines; asserts the file ends with a newline (no torn last line)."""
    data = path.read_bytes().decode("utf-8")
    assert data == "" or data.endswith("\n"), f"torn last line: {data[-80:]!r}"
    return data.splitlines()


def json_records(path: Path) -> list[dict[str, Any]]:
    """Flush, then the file's lines parsed as JSON."""
    kakashi.flush()
    return [json.loads(line) for line in read_lines(path)]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the stdlib root logger's handlers and level back after the test."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def run_python(
    code: str, *, timeout: float = 60, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter and return the finished process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KAKASHI_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def seq_check(lines: list[str], pattern: str = r"t=(\d+) i=(\d+)") -> dict[int, list[int]]:
    """Group sequence numbers by thread id, in file order."""
    import re

    rx = re.compile(pattern)
    by_thread: dict[int, list[int]] = {}
    for line in lines:
        m = rx.search(line)
        assert m, f"unexpected line {line!r}"
        by_thread.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return by_thread
