"""OTLPSink against an OTLP/HTTP receiver run by the test: every record arrives once with
its severity, body, attributes, trace ids and resource; a receiver that is down costs
counted records, never a blocked caller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import kakashi
from kakashi._otlp import flatten_attributes

pytest.importorskip("opentelemetry.sdk._logs")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
logs_service_pb2 = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")


def any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Receiver:
    """POST /v1/logs on 127.0.0.1: decodes each ExportLogsServiceRequest into dicts."""

    def __init__(self, port: int = 0) -> None:
        self.records: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
                for resource_logs in request.resource_logs:
                    resource = {a.key: any_value(a.value) for a in resource_logs.resource.attributes}
                    for scope_logs in resource_logs.scope_logs:
                        for record in scope_logs.log_records:
                            receiver.records.append(
                                {
                                    "path": self.path,
                                    "resource": resource,
                                    "scope": scope_logs.scope.name,
                                    "severity_number": record.severity_number,
                                    "severity_text": record.severity_text,
                                    "body": any_value(record.body),
                                    "attributes": {a.key: any_value(a.value) for a in record.attributes},
                                    "trace_id": record.trace_id.hex(),
                                    "span_id": record.span_id.hex(),
                                    "time_unix_nano": record.time_unix_nano,
                                }
                            )
                reply = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/logs"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def test_nested_fields_flatten_with_dots_and_mixed_lists_become_json() -> None:
    assert flatten_attributes({"db": {"ms": 3, "q": {"rows": 2}}, "ids": [1, 2], "mix": [1, "a"], "none": None}) == {
        "db.ms": 3,
        "db.q.rows": 2,
        "ids": [1, 2],
        "mix": '[1,"a"]',
    }


@pytest.mark.timeout(60)
def test_every_record_arrives_once_with_its_severity_body_attributes_and_ids(receiver: Receiver) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    sink = kakashi.OTLPSink(receiver.endpoint, service_name="svc-test", schedule_delay=0.05)
    kakashi.configure(sinks=[sink], level="DEBUG", trace_ids=True)
    log = kakashi.get_logger("app.orders")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        context = span.get_span_context()
        for i in range(300):
            log.info("order %d placed", i, seq=i, user={"id": 7, "plan": "pro"}, tags=["a", "b"])
    log.debug("debug line", seq=300)
    log.warning("warn line", seq=301)
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("failed", seq=302)
    log.critical("down", seq=303)
    kakashi.flush()
    assert sink.flush(10)
    records = receiver.records
    assert sorted(r["attributes"]["seq"] for r in records) == list(range(304))
    by_seq = {r["attributes"]["seq"]: r for r in records}
    first = by_seq[5]
    assert first["path"] == "/v1/logs" and first["scope"] == "app.orders"
    assert first["resource"]["service.name"] == "svc-test"
    assert (first["severity_number"], first["severity_text"], first["body"]) == (9, "INFO", "order 5 placed")
    assert first["attributes"] == {"seq": 5, "user.id": 7, "user.plan": "pro", "tags": ["a", "b"]}
    assert first["trace_id"] == format(context.trace_id, "032x") and first["span_id"] == format(context.span_id, "016x")
    assert first["time_unix_nano"] > 0
    assert [(by_seq[n]["severity_number"], by_seq[n]["severity_text"]) for n in (300, 301, 302, 303)] == [
        (5, "DEBUG"),
        (13, "WARNING"),
        (17, "ERROR"),
        (21, "CRITICAL"),
    ]
    assert by_seq[300]["trace_id"] == ""  # no span around it: no ids
    failed = by_seq[302]["attributes"]
    assert (failed["exception.type"], failed["exception.message"]) == ("KeyError", "'missing'")
    assert (
        "Traceback" in failed["exception.stacktrace"] and 'raise KeyError("missing")' in failed["exception.stacktrace"]
    )
    assert sink.stats() == {"emitted": 304, "exported": 304, "failed": 0, "pending": 0, "unsent": 0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(90)
def test_receiver_down_then_up_delivers_or_counts_each_record_never_both() -> None:
    port = free_port()
    sink = kakashi.OTLPSink(f"http://127.0.0.1:{port}/v1/logs", service_name="svc", timeout=1, schedule_delay=0.05)
    kakashi.configure(sinks=[sink])
    log = kakashi.get_logger("app")
    slowest = 0.0
    for i in range(400):
        start = time.monotonic()
        log.info("while down", seq=i)
        if i % 50 == 0:
            log.error("error while down", seq=f"e{i}")  # written before the call returns
        slowest = max(slowest, time.monotonic() - start)
    kakashi.flush()
    sink.flush(10)  # the exports fail (connection refused, retried within `timeout`)
    down = sink.stats()
    assert down["failed"] > 0 and down["exported"] == 0
    assert kakashi.stats()["delivery"] == {sink.name: down}  # the failures, in kakashi.stats() too
    server = Receiver(port)
    try:
        for i in range(400, 800):
            start = time.monotonic()
            log.info("while up", seq=i)
            slowest = max(slowest, time.monotonic() - start)
        kakashi.flush()
        assert sink.flush(10)
        kakashi.shutdown()  # closes the sink: nothing left queued
    finally:
        server.stop()
    stats = sink.stats()
    received = [r["attributes"]["seq"] for r in server.records]
    assert len(received) == len(set(received))  # no duplicates
    assert set(range(400, 800)) <= set(received)  # the receiver was up for these
    # Each record either arrived or is counted (failed, or unsent at close): never both.
    assert len(received) + stats["failed"] + stats["unsent"] == stats["emitted"] == 808
    assert stats["exported"] == len(received) and stats["pending"] == 0
    assert slowest < 1.0, f"a log call took {slowest:.2f}s"  # sanity only: the SDK exports in its thread


def test_writing_after_shutdown_reopens_the_sink(receiver: Receiver) -> None:
    sink = kakashi.OTLPSink(receiver.endpoint, schedule_delay=0.05)
    kakashi.configure(sinks=[sink])
    log = kakashi.get_logger("app")
    log.info("before", seq=0)
    kakashi.shutdown()  # exports and closes
    log.info("after", seq=1)  # written through to the reopened sink
    assert sink.flush(10)
    assert sorted(r["attributes"]["seq"] for r in receiver.records) == [0, 1]


def test_records_logged_at_exit_are_exported(receiver: Receiver) -> None:
    from conftest import run_python

    code = f"""
import kakashi
kakashi.configure(sinks=[kakashi.OTLPSink({receiver.endpoint!r}, schedule_delay=30)])
log = kakashi.get_logger("exit")
for i in range(5):
    log.info("bye", seq=i)
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["attributes"]["seq"] for r in receiver.records) == list(range(5))


def test_service_name_defaults_to_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    sink = kakashi.OTLPSink("http://127.0.0.1:9/v1/logs")
    sink.close()
    assert sink.service_name == "from-env"
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    sink = kakashi.OTLPSink("http://127.0.0.1:9/v1/logs")
    sink.close()
    assert sink.service_name not in ("", "from-env")
