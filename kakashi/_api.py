"""Process-wide operations: flush, shutdown, stats, and the 0.2.x compatibility names."""

from __future__ import annotations

import time
from typing import Any

from . import _config, _engine
from ._async import async_queue
from ._stats import counters


def flush(timeout: float = 10.0, *, include_async: bool = True) -> bool:
    """Write every thread's pending lines and everything the async queue holds: a barrier,
    every line logged before the call is written when it returns True. Threads that keep
    logging meanwhile do not make it wait longer. ``timeout`` bounds the whole call; it
    returns False if it could not finish by then (a stuck or very slow sink), the lines
    left still pending. With ``include_async=False`` the async queue is left to its worker
    (what the web adapters do at request end: it never blocks on the worker)."""
    if not include_async:
        return _engine.flush_all(timeout)  # (the request-end flush: one call, no clock)
    deadline = time.monotonic() + timeout
    done = async_queue.flush(timeout)
    return _engine.flush_all(max(0.0, deadline - time.monotonic())) and done


def shutdown(timeout: float = 10.0) -> None:
    """Drain and stop the async worker, flush, close the sink. Safe to call twice;
    :func:`configure` (and logging) work afterwards."""
    _config.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Counters since start (or since fork, in a child).

    ``records`` accepted, ``written`` to the sink, ``dropped`` (sink failures, a full async
    queue under a drop policy, internal errors), ``pending`` (in thread batches and the async
    queue now), ``queue_depth`` (the async queue alone), ``sink_errors`` and
    ``internal_errors`` (failed write calls / failed records). With a sink that delivers
    later, in its own thread (:class:`OTLPSink`), ``delivery`` maps its name to its own
    counters (``sink.stats()``: what the receiver accepted, what failed); for the others,
    ``written`` is delivered.
    """
    depth = async_queue.depth()
    pending = _engine.pending() + depth
    written = _engine.written()
    with counters.lock:
        dropped = counters.dropped
        sink_errors, internal_errors = counters.sink_errors, counters.internal_errors
    result: dict[str, Any] = {
        "records": written + dropped + pending,
        "written": written,
        "dropped": dropped,
        "pending": pending,
        "queue_depth": depth,
        "sink_errors": sink_errors,
        "internal_errors": internal_errors,
    }
    delivery = {}
    for route in _engine.routes():
        counters_of = getattr(route.sink, "stats", None)
        if callable(counters_of):
            delivery[route.sink.name] = counters_of()
    if delivery:
        result["delivery"] = delivery
    return result


def shutdown_async_logging() -> None:
    """kakashi 0.2.x name for :func:`shutdown`."""
    shutdown()
