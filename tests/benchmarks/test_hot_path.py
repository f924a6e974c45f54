"""pytest-benchmark cases, skipped in the default run: ``pytest tests/benchmarks --benchmark-only``.

Each kakashi case has its stdlib twin in the same run, so the ratio is what to read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kakashi


@pytest.fixture
def kakashi_log(tmp_path: Path) -> Iterator[kakashi.Logger]:
    kakashi.configure(sink=tmp_path / "k.log")
    yield kakashi.get_logger("bench")
    kakashi.flush()
    kakashi.configure()


@pytest.fixture
def std_log(tmp_path: Path) -> Iterator[logging.Logger]:
    handler = logging.FileHandler(tmp_path / "s.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("bench.std")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    yield log
    handler.close()


def many(call: Any, *args: Any, **kwargs: Any) -> None:
    for _ in range(1000):
        call(*args, **kwargs)


def test_kakashi_info(benchmark: Any, kakashi_log: kakashi.Logger) -> None:
    benchmark(many, kakashi_log.info, "user logged in")


def test_stdlib_info(benchmark: Any, std_log: logging.Logger) -> None:
    benchmark(many, std_log.info, "user logged in")


def test_kakashi_info_fields(benchmark: Any, kakashi_log: kakashi.Logger) -> None:
    benchmark(many, kakashi_log.info, "user logged in", user_id=42, ip="10.0.0.1", path="/api/v1/users")


def test_stdlib_info_fields(benchmark: Any, std_log: logging.Logger) -> None:
    benchmark(many, std_log.info, "user logged in", extra={"user_id": 42, "ip": "10.0.0.1", "path": "/api/v1/users"})


def test_kakashi_filtered(benchmark: Any, kakashi_log: kakashi.Logger) -> None:
    benchmark(many, kakashi_log.debug, "user logged in")


def test_stdlib_filtered(benchmark: Any, std_log: logging.Logger) -> None:
    benchmark(many, std_log.debug, "user logged in")
