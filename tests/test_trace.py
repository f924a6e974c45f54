"""Trace correlation with OpenTelemetry: ids of the recording span on every record."""

from __future__ import annotations

from pathlib import Path

import pytest

import kakashi

from conftest import json_records, read_lines, run_python

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")

_provider = sdk_trace.TracerProvider()
tracer = _provider.get_tracer("tests")


records = json_records


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_records_in_a_span_carry_its_ids(log_path: Path, mode: str) -> None:
    kakashi.configure(sink=log_path, format="json", mode=mode)
    log = kakashi.get_logger("traced")
    with tracer.start_as_current_span("work") as span:
        log.info("inside", n=1)
        ids = span.get_span_context()
    log.info("outside")
    inside, outside = records(log_path)
    assert inside["trace_id"] == format(ids.trace_id, "032x") and inside["span_id"] == format(ids.span_id, "016x")
    assert len(inside["trace_id"]) == 32 and len(inside["span_id"]) == 16  # type: ignore[arg-type]
    assert "trace_id" not in outside and "span_id" not in outside


def test_trace_ids_can_be_turned_off(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="logfmt", trace_ids=False)
    with tracer.start_as_current_span("work"):
        kakashi.get_logger("off").info("inside")
    kakashi.flush()
    assert "trace_id" not in read_lines(log_path)[0]


def test_trace_ids_true_without_opentelemetry_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    from kakashi import _config

    monkeypatch.setattr(_config, "otel_installed", lambda: False)
    with pytest.raises(ValueError, match="trace_ids=True needs OpenTelemetry: pip install opentelemetry-api"):
        kakashi.configure(trace_ids=True)
    with pytest.raises(ValueError, match="trace_ids must be 'auto', True or False, got 'yes'"):
        kakashi.configure(trace_ids="yes")


def test_nothing_is_imported_when_turned_off() -> None:
    proc = run_python(
        """
        import sys, kakashi
        kakashi.configure(trace_ids=False)
        kakashi.get_logger("x").info("y")
        print("opentelemetry" in sys.modules)
        """
    )
    assert proc.returncode == 0 and proc.stdout == "False\n"
