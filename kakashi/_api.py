"""Process-wide operations: flush, shutdown, stats, and the 0.2.x compatibility names."""

from __future__ import annotations

from typing import Any

from . import _config, _engine
from ._logger import Logger, get_logger
from ._stats import counters


def flush() -> None:
    """Write every thread's pending lines; returns when they are written."""
    _engine.flush_all()


def shutdown() -> None:
    """Flush and close the sink. Safe to call twice; :func:`configure` works afterwards."""
    _config.shutdown()


def stats() -> dict[str, Any]:
    """Counters since start (or since fork, in a child).

    ``records`` accepted, ``written`` to the sink, ``dropped`` (sink failures, internal
    errors), ``pending`` in batches now, ``sink_errors`` and ``internal_errors`` (failed
    write calls / failed records).
    """
    pending = _engine.pending()
    with counters.lock:
        written, dropped = counters.written, counters.dropped
        sink_errors, internal_errors = counters.sink_errors, counters.internal_errors
    return {
        "records": written + dropped + pending,
        "written": written,
        "dropped": dropped,
        "pending": pending,
        "sink_errors": sink_errors,
        "internal_errors": internal_errors,
    }


def get_async_logger(name: str | None = None, min_level: int | str | None = None) -> Logger:
    """kakashi 0.2.x name. Returns the (thread-batched) logger for ``name``."""
    return get_logger(name, min_level)


def shutdown_async_logging() -> None:
    """kakashi 0.2.x name for :func:`shutdown`."""
    shutdown()
