"""Trace correlation: the current OpenTelemetry span's ids on every record, when the
``opentelemetry-api`` package is installed. Nothing is imported when it is not."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

SpanIds = Callable[[], "tuple[str, str] | None"]


def installed() -> bool:
    """Whether opentelemetry-api can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False


def load_span_ids() -> SpanIds | None:
    """A function returning (trace_id, span_id) as W3C hex for the recording span, or None
    when there is none; None itself when OpenTelemetry is not installed."""
    if not installed():
        return None
    try:
        from opentelemetry.trace import get_current_span
    except ImportError:
        return None

    def span_ids() -> tuple[str, str] | None:
        span = get_current_span()
        if not span.is_recording():
            return None
        context = span.get_span_context()
        return format(context.trace_id, "032x"), format(context.span_id, "016x")

    return span_ids
