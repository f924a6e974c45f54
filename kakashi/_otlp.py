"""OTLPSink: JSON records as OpenTelemetry log records, exported over OTLP/HTTP by the SDK.

OpenTelemetry is imported when a sink is built, never when kakashi is imported
(``pip install 'kakashi[otel]'``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from . import _engine
from ._sinks import Sink, program_name
from ._stats import report

# kakashi level name -> (OpenTelemetry SeverityNumber value, severity text).
SEVERITY_NUMBERS: dict[str, int] = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}
_RECORD_KEYS = frozenset({"timestamp", "level", "logger", "message", "exception", "trace_id", "span_id"})


def flatten_attributes(fields: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Record fields as OpenTelemetry attributes: nested objects flattened with dots
    (``{"db": {"ms": 3}}`` -> ``db.ms``), lists of one primitive type kept as lists, other
    lists JSON-encoded as a string, ``null`` values left out (attributes have no null)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_attributes(value, name + "."))
        elif value is None:
            continue
        elif isinstance(value, list):
            kinds = {type(item) for item in value}
            if len(kinds) == 1 and kinds <= {str, bool, int, float}:
                out[name] = value
            else:
                out[name] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            out[name] = value
    return out


def _timestamp_ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(parsed.timestamp() * 1000) * 1_000_000  # kakashi stamps milliseconds


class OTLPSink(Sink):
    """Exports each record as an OpenTelemetry log record over OTLP/HTTP (protobuf), with
    the official SDK: a ``LoggerProvider``, a ``BatchLogRecordProcessor`` (it batches and
    exports in its own thread, so a collector that is down never blocks the caller) and an
    ``OTLPLogExporter``. Needs ``pip install 'kakashi[otel]'``; used with the JSON format
    (``configure()`` gives it JSON unless told otherwise).

    Args:
        endpoint: the full logs URL (``http://collector:4318/v1/logs``); by default the SDK's
            ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` +
            ``/v1/logs``, else ``http://localhost:4318/v1/logs``.
        service_name: the resource's ``service.name``; by default ``OTEL_SERVICE_NAME``,
            else the program name.
        resource_attributes: more resource attributes (``OTEL_RESOURCE_ATTRIBUTES`` is
            read too).
        headers: HTTP headers for each export (by default ``OTEL_EXPORTER_OTLP_*HEADERS``).
        timeout: seconds one export may take, retries included.
        schedule_delay: seconds between exports of a partial batch.
        max_queue_size: records the SDK's queue holds; more are dropped (see :meth:`stats`).
        max_export_batch_size: records per export request.

    Raises:
        ImportError: the OpenTelemetry SDK or the OTLP/HTTP exporter is not installed.
    """

    required_format = "json"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        service_name: str | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 2.0,
        schedule_delay: float = 1.0,
        max_queue_size: int = 2048,
        max_export_batch_size: int = 512,
    ) -> None:
        super().__init__()
        try:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: F401
            from opentelemetry.sdk._logs import LoggerProvider  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"OTLPSink needs the OpenTelemetry SDK and OTLP exporter: pip install 'kakashi[otel]' ({exc})"
            ) from None
        self.endpoint, self.headers, self.timeout = endpoint, headers, timeout
        self.service_name = service_name or os.environ.get("OTEL_SERVICE_NAME") or program_name()
        self.resource_attributes = dict(resource_attributes or {})
        self.schedule_delay, self.max_queue_size = schedule_delay, max_queue_size
        self.max_export_batch_size = max_export_batch_size
        self.name = f"otlp {endpoint or 'from OTEL_EXPORTER_OTLP_*'}"
        self._counts_lock = threading.Lock()
        self._emitted = self._exported = self._failed = self._unsent = 0
        self._provider: Any = None
        self._loggers: dict[str, Any] = {}
        self._start()
        at_exit = weakref.WeakMethod(self._at_exit)  # a forgotten sink is not kept alive

        def hook() -> None:
            method = at_exit()
            if method is not None:
                method()

        _engine.on_exit(hook)

    def _start(self) -> None:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        resource = Resource.create({**self.resource_attributes, SERVICE_NAME: self.service_name})
        exporter = OTLPLogExporter(endpoint=self.endpoint, headers=self.headers, timeout=self.timeout)
        # shutdown_on_exit=False: the SDK's own atexit hook would run before kakashi's final
        # flush and silently ignore those records; _at_exit exports them instead.
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(
                _counting_exporter(exporter, self),
                schedule_delay_millis=self.schedule_delay * 1000,
                max_export_batch_size=self.max_export_batch_size,
                max_queue_size=self.max_queue_size,
            )
        )
        self._provider, self._loggers = provider, {}

    def _logger(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            if len(self._loggers) > 1024:
                self._loggers.clear()
            logger = self._loggers[name] = self._provider.get_logger(name or "kakashi")
        return logger

    def write(self, data: str) -> None:
        if self._provider is None:  # closed by shutdown(); writing again reopens it
            self._start()
        for line in data.splitlines():
            self._emit(line)
        if _engine.at_exit():
            # No later flush is coming: export now rather than leave records in the queue.
            self._provider.force_flush(int(self.timeout * 1000))

    def _emit(self, line: str) -> None:
        from opentelemetry._logs import SeverityNumber

        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = {"message": line}
        level = record.get("level")
        level = level if isinstance(level, str) else "INFO"
        attributes = flatten_attributes({k: v for k, v in record.items() if k not in _RECORD_KEYS})
        exception = record.get("exception")
        if isinstance(exception, dict):
            for key, attr in (("type", "exception.type"), ("message", "exception.message")):
                if isinstance(exception.get(key), str):
                    attributes[attr] = exception[key]
            if isinstance(exception.get("traceback"), str):
                attributes["exception.stacktrace"] = exception["traceback"]
        logger = record.get("logger")
        self._logger(logger if isinstance(logger, str) else "").emit(
            timestamp=_timestamp_ns(record.get("timestamp")) or time.time_ns(),
            context=_span_context(record.get("trace_id"), record.get("span_id")),
            severity_number=SeverityNumber(SEVERITY_NUMBERS.get(level, 9)),
            severity_text=level,
            body=record.get("message", ""),
            attributes=attributes,
        )
        with self._counts_lock:
            self._emitted += 1

    def flush(self, timeout: float = 10.0) -> bool:
        """Export everything queued now; True when it was exported (or failed and was
        counted) in time."""
        provider = self._provider
        return True if provider is None else bool(provider.force_flush(int(timeout * 1000)))

    def close(self) -> None:
        """Export what is queued and stop the SDK's thread (writing again restarts it).
        Records that could not be exported are counted in :meth:`stats` as ``unsent``."""
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown()
            with self._counts_lock:
                self._unsent = self._emitted - self._exported - self._failed

    def _at_exit(self) -> None:
        provider = self._provider
        if provider is not None:
            provider.force_flush(int(self.timeout * 1000))

    def stats(self) -> dict[str, int]:
        """Counters of this sink: ``emitted`` (records handed to the SDK), ``exported``
        (accepted by the receiver), ``failed`` (in exports that failed: receiver down or
        refusing), ``pending`` (queued or in an export now) and, after :meth:`close`,
        ``unsent`` (queued records the SDK dropped: a full queue, or a shutdown that ran out
        of time). ``emitted == exported + failed + pending + unsent``."""
        with self._counts_lock:
            unsent = self._unsent
            pending = self._emitted - self._exported - self._failed - unsent
            return {
                "emitted": self._emitted,
                "exported": self._exported,
                "failed": self._failed,
                "pending": pending,
                "unsent": unsent,
            }

    def _count(self, exported: int, failed: int) -> None:
        with self._counts_lock:
            self._exported += exported
            self._failed += failed
        if failed:
            report(f"otlp:{id(self)}", f"sink {self.name!r}: an export failed; {failed} records dropped (sink.stats())")


def _span_context(trace_id: object, span_id: object) -> Any:
    """An OpenTelemetry context carrying the record's hex ``trace_id``/``span_id``, or None."""
    if not (isinstance(trace_id, str) and isinstance(span_id, str)):
        return None
    try:
        trace_int, span_int = int(trace_id, 16), int(span_id, 16)
    except ValueError:
        return None
    from opentelemetry import trace

    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_int, span_int, is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    )
    return trace.set_span_in_context(span)


def _counting_exporter(exporter: Any, sink: OTLPSink) -> Any:
    """Wrap the OTLP exporter to count the records of each export by outcome."""
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class CountingExporter(LogRecordExporter):
        def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
            try:
                result = exporter.export(batch)
            except Exception:
                sink._count(0, len(batch))
                raise
            ok = result == LogRecordExportResult.SUCCESS
            sink._count(len(batch) if ok else 0, 0 if ok else len(batch))
            return result  # type: ignore[no-any-return]

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return bool(exporter.force_flush(timeout_millis))

    return CountingExporter()
