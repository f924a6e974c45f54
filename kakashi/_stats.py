"""Counters behind ``kakashi.stats()`` and the rate-limited report of internal failures."""

from __future__ import annotations

import sys
import threading
import time

# Seconds between two reports of the same kind of failure on stderr.
REPORT_INTERVAL = 10.0


class Counters:
    """Process-wide counters. Updated off the hot path only (flush time, failures)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self.sink_errors = 0
        self.internal_errors = 0

    def add(self, *, written: int = 0, dropped: int = 0, sink_errors: int = 0, internal_errors: int = 0) -> None:
        with self.lock:
            self.written += written
            self.dropped += dropped
            self.sink_errors += sink_errors
            self.internal_errors += internal_errors

    def reset_after_fork(self) -> None:
        # The parent's counts describe the parent's records; the child starts from zero.
        self.lock = threading.Lock()
        self.written = self.dropped = self.sink_errors = self.internal_errors = 0


counters = Counters()

_last_report: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def report(kind: str, message: str) -> None:
    """Tell the operator about an internal failure on ``sys.stderr``, at most once per
    ``REPORT_INTERVAL`` per ``kind``. Never raises: a missing or broken stderr stays silent."""
    now = time.monotonic()
    last = _last_report.get(kind)
    if last is not None and now - last < REPORT_INTERVAL:
        _suppressed[kind] = _suppressed.get(kind, 0) + 1
        return
    _last_report[kind] = now
    skipped = _suppressed.pop(kind, 0)
    if skipped:
        message += f" ({skipped} similar reports suppressed)"
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(f"kakashi: {message}\n")
        stream.flush()
    except Exception:  # noqa: BLE001 - the last resort has no one to tell
        pass


def reset_reports() -> None:
    """Forget the rate limiter's history (tests, and the child after fork)."""
    _last_report.clear()
    _suppressed.clear()
