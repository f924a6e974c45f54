"""Helpers for testing code that logs with kakashi.

from kakashi.testing import capture

def test_login_is_logged():
    with capture() as records:
        login("bob")
    assert records[-1]["message"] == "user logged in"
    assert records[-1]["user"] == "bob"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from . import _config, _engine
from ._levels import parse_level
from ._sinks import CallableSink


@contextlib.contextmanager
def capture(level: int | str = "DEBUG") -> Iterator[list[dict[str, Any]]]:
    """Collect every record logged inside the block as a dict (the JSON format's keys:
    ``timestamp``, ``level``, ``logger``, ``message``, the fields, ``exception``).

    Records are delivered as they are logged (sync mode, batches of one), so the list can
    be inspected inside the block too. The previous configuration, sinks included, is put
    back when the block ends.
    """
    records: list[dict[str, Any]] = []

    def collect(data: str) -> None:
        records.extend(json.loads(line) for line in data.splitlines())

    settings = dataclasses.replace(
        _config.current(), level=parse_level(level), format="json", batch_size=1, mode="sync"
    )
    _engine.flush_all()
    saved, saved_routes = _config.swap(settings, [_engine.Route(CallableSink(collect), "json")])
    try:
        yield records
    finally:
        _config.swap(saved, saved_routes)
