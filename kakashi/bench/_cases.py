"""One benchmark case in one fresh process: ``python _cases.py LIB CASE N OUT``.

Standalone on purpose (it imports nothing from kakashi's benchmark package), so the same
file can run under another interpreter, e.g. a virtual environment holding kakashi 0.2.2.
Prints one JSON object: the timed nanoseconds per call and how many lines the case must
have written to OUT. The caller counts the lines actually written.

Every case writes an equivalent line: UTC timestamp with milliseconds (or finer), level,
logger name, message, and in the ``fields`` case the three fields.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MSG = "user logged in"
WARMUP = 1000
STD_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STD_FIELDS_FORMAT = STD_FORMAT + " user_id=%(user_id)s ip=%(ip)s path=%(path)s"


class Setup:
    """What a library's set-up returns: ways to log, and the final flush."""

    def __init__(
        self,
        info: Callable[..., Any],
        debug: Callable[..., Any],
        info_fields: Callable[[int], Any],
        flush: Callable[[], Any],
        finish: Callable[[], Any] | None = None,
    ) -> None:
        self.info, self.debug, self.info_fields, self.flush = info, debug, info_fields, flush
        # The final flush, inside the timed region: everything is in the file after it.
        self.finish = finish or flush


def setup_stdlib(out: str, case: str, module: Any = None) -> Setup:
    import logging

    mod = module or logging
    handler = mod.FileHandler(out)
    formatter = mod.Formatter(STD_FIELDS_FORMAT if case == "fields" and module is None else STD_FORMAT)
    if hasattr(formatter, "converter"):  # picologging's Formatter has no converter
        formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log = mod.getLogger("bench")
    log.handlers[:] = [handler]
    log.setLevel(mod.INFO)
    log.propagate = False
    if case == "async" and module is None:
        import logging.handlers
        import queue

        q: queue.Queue[Any] = queue.Queue()  # unbounded, as the logging cookbook sets it up
        listener = logging.handlers.QueueListener(q, handler)
        log.handlers[:] = [logging.handlers.QueueHandler(q)]
        listener.start()

        def flush() -> None:
            q.join()  # the listener marks each record done once handled
            handler.flush()

        def finish() -> None:
            listener.stop()
            handler.flush()
    else:
        flush = finish = handler.flush
    if module is None:

        def info_fields(i: int) -> None:
            log.info(MSG, extra={"user_id": i, "ip": "10.0.0.1", "path": "/api/v1/users"})

    else:  # picologging's records take no extra= attributes: its fields go into the message

        def info_fields(i: int) -> None:
            log.info(MSG + " user_id=%s ip=%s path=%s", i, "10.0.0.1", "/api/v1/users")

    return Setup(log.info, log.debug, info_fields, flush, finish)


def setup_picologging(out: str, case: str) -> Setup:
    import picologging

    return setup_stdlib(out, case, picologging)


def setup_structlog(out: str, case: str) -> Setup:
    import logging

    import structlog

    stream = open(out, "a")  # noqa: SIM115 - closed at exit
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench")
    return Setup(
        log.info, log.debug, lambda i: log.info(MSG, user_id=i, ip="10.0.0.1", path="/api/v1/users"), stream.flush
    )


def setup_loguru(out: str, case: str) -> Setup:
    from loguru import logger

    logger.remove()
    logger.add(
        out,
        level="INFO",
        enqueue=(case == "async"),
        catch=False,
        format="{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z {level} {name}: {message} {extra}",
    )
    log = logger.bind()

    return Setup(
        log.info,
        log.debug,
        lambda i: log.info(MSG, user_id=i, ip="10.0.0.1", path="/api/v1/users"),
        logger.complete,
        logger.remove,
    )  # remove() closes (and so flushes) the file


def setup_kakashi(out: str, case: str) -> Setup:
    import kakashi

    kakashi.configure(sink=out, level="INFO", format="text")
    log = kakashi.get_async_logger("bench") if case == "async" else kakashi.get_logger("bench")
    return Setup(
        log.info, log.debug, lambda i: log.info(MSG, user_id=i, ip="10.0.0.1", path="/api/v1/users"), kakashi.flush
    )


def setup_kakashi022(out: str, case: str) -> Setup:
    # kakashi 0.2.2 writes to sys.stderr only; point it at the file.
    sys.stderr = open(out, "a", buffering=1 << 16)  # noqa: SIM115
    import kakashi

    log = kakashi.get_async_logger("bench") if case == "async" else kakashi.get_logger("bench")

    def flush() -> None:  # 0.2.2 flushes the calling thread's batch (sync) or its queue (async)
        log.flush()  # type: ignore[attr-defined]
        sys.stderr.flush()

    def finish() -> None:
        flush()
        if case == "async":
            kakashi.shutdown_async_logging()
            sys.stderr.flush()

    return Setup(
        log.info, log.debug, lambda i: log.info(MSG, user_id=i, ip="10.0.0.1", path="/api/v1/users"), flush, finish
    )


def kakashi_queue_figures(out: str) -> dict[str, float]:
    """With the worker held inside the sink (so nothing drains): the caller-only cost of
    enqueueing 10,000 records, and the bytes the queue holds with 10,000 records waiting.
    Every record is written at the end (20,002 lines)."""
    import tracemalloc

    import kakashi

    gate, entered = threading.Event(), threading.Event()

    def gated_sink(data: str) -> None:
        entered.set()
        gate.wait(60)
        with open(out, "a") as f:
            f.write(data)

    kakashi.configure(sink=gated_sink, mode="async", queue_size=20_000, batch_size=100)
    log = kakashi.get_logger("bench")
    figures: dict[str, float] = {}
    for measure_memory in (False, True):
        gate.clear()
        entered.clear()
        log.info(MSG)
        entered.wait(10)  # the worker is now stuck in the sink with that one record
        if measure_memory:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter_ns()
        for _ in range(10_000):
            log.info(MSG)
        took = time.perf_counter_ns() - start
        if measure_memory:
            figures["queue_mb_at_10k"] = (tracemalloc.get_traced_memory()[0] - base) / 2**20
            tracemalloc.stop()
        else:
            figures["caller_only_ns"] = took / 10_000
        gate.set()
        kakashi.flush()
    return figures


def stdlib_access_logger(out: str, id_filter: Any, id_attribute: str) -> Any:
    """A stdlib logger writing access lines with the request id a peer library's filter
    adds to each record."""
    import logging

    handler = logging.FileHandler(out)
    handler.addFilter(id_filter)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [%({id_attribute})s] %(message)s"))
    access = logging.getLogger("access")
    access.handlers[:] = [handler]
    access.setLevel(logging.INFO)
    access.propagate = False
    return access


def run_middleware(lib: str, n: int, out: str) -> dict[str, Any]:
    """Per-request cost of a Starlette app driven by direct ASGI calls (no sockets): bare,
    with kakashi's middleware, or with asgi-correlation-id plus a stdlib access-log
    middleware. Both logging setups write one access line per request to ``out``."""
    import asyncio
    import logging

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items", endpoint)])
    if lib == "kakashi":
        import kakashi
        from kakashi.integrations.starlette import KakashiMiddleware

        kakashi.configure(sink=out, format="text")
        app.add_middleware(KakashiMiddleware)
        lines_per_request = 1
    elif lib == "correlation-id+stdlib":
        from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware

        access = stdlib_access_logger(out, CorrelationIdFilter(), "correlation_id")

        class AccessLog:  # a pure ASGI access-log middleware on stdlib logging
            """The same facts as kakashi's access line, in uvicorn's access-log style."""

            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    await self.app(scope, receive, send)
                    return
                start, response = time.perf_counter(), [0, 0]

                async def wrapped(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        response[0] = message["status"]
                    elif message["type"] == "http.response.body":
                        response[1] += len(message.get("body", b""))
                    await send(message)

                await self.app(scope, receive, wrapped)
                agent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"user-agent"), "-")
                access.info(
                    '%s - "%s %s HTTP/%s" %d %d %.3fms "%s"',
                    scope["client"][0],
                    scope["method"],
                    scope["path"],
                    scope["http_version"],
                    response[0],
                    response[1],
                    (time.perf_counter() - start) * 1000,
                    agent,
                )

        app.add_middleware(AccessLog)
        app.add_middleware(CorrelationIdMiddleware)
        lines_per_request = 1
    else:
        lines_per_request = 0

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "headers": [(b"host", b"test"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def requests(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    asyncio.run(requests(WARMUP))
    start = time.perf_counter_ns()
    asyncio.run(requests(n))
    if lib == "kakashi":
        import kakashi

        kakashi.flush()
    elif lib != "bare":
        logging.getLogger("access").handlers[0].flush()
    elapsed = time.perf_counter_ns() - start
    return {"ns_per_call": elapsed / n, "expected": (n + WARMUP) * lines_per_request}


def run_flask(lib: str, n: int, out: str) -> dict[str, Any]:
    """Per-request cost of a Flask app driven by its test client: bare, with kakashi's
    extension, or with flask-log-request-id plus a stdlib access-log hook (after_request).
    Both logging setups write one access line per request to ``out``."""
    import logging

    from flask import Flask

    app = Flask("bench")

    @app.get("/items")
    def items() -> str:
        return "ok"

    lines_per_request = 1
    if lib == "flask+kakashi":
        import kakashi
        from kakashi.integrations.flask import Kakashi

        kakashi.configure(sink=out, format="text")
        Kakashi(app)
    elif lib == "flask+log-request-id+stdlib":
        import flask
        from flask import g, request

        if not hasattr(flask, "_app_ctx_stack"):
            # flask-log-request-id reads the current app context from flask._app_ctx_stack,
            # which Flask 2.3 removed; this stand-in gives it the same answer on Flask 3.
            class AppContextStack:
                @property
                def top(self) -> Any:
                    return flask.globals._cv_app.get(None)

            flask._app_ctx_stack = AppContextStack()  # type: ignore[attr-defined]
        from flask_log_request_id import RequestID, RequestIDLogFilter

        RequestID(app)
        access = stdlib_access_logger(out, RequestIDLogFilter(), "request_id")

        @app.before_request
        def start_timer() -> None:
            g.access_start = time.perf_counter()

        @app.after_request
        def access_log(response: Any) -> Any:
            # The same facts as kakashi's access line, in the style of werkzeug's access log.
            access.info(
                '%s - "%s %s %s" %d %s %.3fms "%s"',
                request.remote_addr,
                request.method,
                request.path,
                request.environ.get("SERVER_PROTOCOL"),
                response.status_code,
                response.content_length,
                (time.perf_counter() - g.access_start) * 1000,
                request.user_agent.string,
            )
            return response
    else:
        lines_per_request = 0
    client = app.test_client()
    for _ in range(WARMUP):
        client.get("/items")
    start = time.perf_counter_ns()
    for _ in range(n):
        client.get("/items")
    if lib == "flask+kakashi":
        import kakashi

        kakashi.flush()
    elif lines_per_request:
        logging.getLogger("access").handlers[0].flush()
    elapsed = time.perf_counter_ns() - start
    return {"ns_per_call": elapsed / n, "expected": (n + WARMUP) * lines_per_request}


def run_django(lib: str, n: int, out: str) -> dict[str, Any]:
    """Per-request cost of a Django project driven by direct WSGI calls (no sockets; each
    response iterated and closed, as a server does): bare, with kakashi's middleware, or with
    django-structlog's RequestMiddleware set up as its documentation shows (structlog through
    stdlib logging, a JSON file handler). kakashi writes one access line per request to
    ``out``; django-structlog writes two (``request_started``, ``request_finished``)."""
    import io
    import logging
    import types

    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path

    def items(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    urls = types.ModuleType("bench_django_urls")
    urls.urlpatterns = [path("items", items)]  # type: ignore[attr-defined]
    sys.modules[urls.__name__] = urls
    config: dict[str, Any] = {
        "DEBUG": False,
        "SECRET_KEY": "bench",
        "ALLOWED_HOSTS": ["*"],
        "ROOT_URLCONF": urls.__name__,
        "INSTALLED_APPS": [],
        "MIDDLEWARE": [],
        "DATABASES": {},
    }
    lines_per_request = 1
    if lib == "django+kakashi":
        config["MIDDLEWARE"] = ["kakashi.integrations.django.KakashiMiddleware"]
        config["KAKASHI"] = {"sink": out, "format": "json"}
    elif lib == "django+structlog":
        import structlog

        config["INSTALLED_APPS"] = ["django_structlog"]
        config["MIDDLEWARE"] = ["django_structlog.middlewares.RequestMiddleware"]
        config["LOGGING"] = {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json_formatter": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processor": structlog.processors.JSONRenderer(),
                }
            },
            "handlers": {
                "json_file": {
                    "class": "logging.handlers.WatchedFileHandler",
                    "filename": out,
                    "formatter": "json_formatter",
                }
            },
            "loggers": {"django_structlog": {"handlers": ["json_file"], "level": "INFO"}},
        }
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.filter_by_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                structlog.stdlib.PositionalArgumentsFormatter(),
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                structlog.processors.UnicodeDecoder(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        lines_per_request = 2
    else:
        lines_per_request = 0
    settings.configure(**config)
    from django.core.wsgi import get_wsgi_application

    handler = get_wsgi_application()  # django.setup(), then the handler a WSGI server gets
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/items",
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "test",
        "HTTP_USER_AGENT": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        pass

    def requests(count: int) -> None:
        for _ in range(count):
            result = handler({**environ, "wsgi.input": io.BytesIO(b"")}, start_response)
            for _chunk in result:
                pass
            result.close()

    requests(WARMUP)
    start = time.perf_counter_ns()
    requests(n)
    if lib == "django+kakashi":
        import kakashi

        kakashi.flush()
    elif lines_per_request:
        logging.getLogger("django_structlog").handlers[0].flush()
    elapsed = time.perf_counter_ns() - start
    return {"ns_per_call": elapsed / n, "expected": (n + WARMUP) * lines_per_request}


SETUPS = {
    "stdlib": setup_stdlib,
    "picologging": setup_picologging,
    "structlog": setup_structlog,
    "loguru": setup_loguru,
    "kakashi": setup_kakashi,
    "kakashi-0.2.2": setup_kakashi022,
}


# A receiver in its own process: one line per record it received goes to the output file,
# so the runner counts delivery at the receiver. argv: transport, port, output file.
RECEIVER = r"""
import socket, sys, threading
transport, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sink = open(out, "ab", buffering=1 << 20)
lock = threading.Lock()

def record(count):
    with lock:
        sink.write(b"r\n" * count)
        sink.flush()

if transport == "udp":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        sock.recv(65536)
        record(1)
elif transport == "tcp":
    server = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    def serve(conn):
        buf = b""
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return
            buf += chunk
            count = 0
            while True:  # octet-counted frames: "LEN SP MSG"
                space = buf.find(b" ")
                if space < 0:
                    break
                length = int(buf[:space])
                if len(buf) < space + 1 + length:
                    break
                buf = buf[space + 1 + length:]
                count += 1
            record(count)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
else:  # otlp: OTLP/HTTP protobuf
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportLogsServiceRequest.FromString(body)
            record(sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()
"""


def run_remote(lib: str, n: int, out: str) -> dict[str, Any]:
    """The caller's cost per record in async mode with a sink that ships records off the
    process (syslog over UDP or TCP, OTLP over HTTP), next to the file sink. Delivery is
    counted at the receiver, a separate process that writes one line per record received."""
    import socket
    import subprocess

    import kakashi

    receiver = None
    if lib == "file":
        sink: Any = out
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        transport = {"syslog-udp": "udp", "syslog-tcp": "tcp", "otlp": "otlp"}[lib]
        receiver = subprocess.Popen(
            [sys.executable, "-c", RECEIVER, transport, str(port), out], stdout=subprocess.PIPE, text=True
        )
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        if lib == "otlp":
            sink = kakashi.OTLPSink(f"http://127.0.0.1:{port}/v1/logs", max_queue_size=n + WARMUP, schedule_delay=0.2)
        else:
            sink = kakashi.SyslogSink(f"{transport}://127.0.0.1:{port}")
    kakashi.configure(sinks=[sink], mode="async", queue_size=n + WARMUP)
    log = kakashi.get_logger("bench")
    try:
        for _ in range(WARMUP):
            log.info(MSG)
        start = time.perf_counter_ns()
        for _ in range(n):
            log.info(MSG)
        elapsed = time.perf_counter_ns() - start  # the caller's share only; delivery below
        kakashi.flush(60)
        if lib == "otlp":
            sink.flush(60)
        if receiver is not None:  # until the receiver has stopped receiving
            last, deadline = -1, time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.3)
                with open(out, "rb") as f:
                    now = f.read().count(b"\n")
                if now == last or now >= n + WARMUP:
                    break
                last = now
        kakashi.shutdown()
    finally:
        if receiver is not None:
            receiver.kill()
            receiver.wait()
    return {"ns_per_call": elapsed / n, "expected": n + WARMUP}


def run(lib: str, case: str, n: int, out: str) -> dict[str, Any]:
    if case == "remote":
        return run_remote(lib, n, out)
    if case == "middleware":
        return run_middleware(lib, n, out)
    if case == "flask":
        return run_flask(lib, n, out)
    if case == "django":
        return run_django(lib, n, out)
    s = SETUPS[lib](out, case)
    info, debug, info_fields = s.info, s.debug, s.info_fields
    for i in range(WARMUP):
        info_fields(i) if case == "fields" else info(MSG)
    s.flush()
    expected = WARMUP
    if case == "plain" or case == "async":
        start = time.perf_counter_ns()
        for _ in range(n):
            info(MSG)
        s.finish()
        elapsed = time.perf_counter_ns() - start
        expected += n
        if case == "async" and lib == "kakashi":
            figures = kakashi_queue_figures(out)
            expected += 20_002
            return {"ns_per_call": elapsed / n, "expected": expected, **figures}
    elif case == "fields":
        start = time.perf_counter_ns()
        for i in range(n):
            info_fields(i)
        s.finish()
        elapsed = time.perf_counter_ns() - start
        expected += n
    elif case == "filtered":
        start = time.perf_counter_ns()
        for _ in range(n):
            debug(MSG)
        elapsed = time.perf_counter_ns() - start
    elif case == "threads4":
        per_thread = n // 4
        barrier = threading.Barrier(5)

        def work() -> None:
            barrier.wait()
            for _ in range(per_thread):
                info(MSG)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter_ns()
        for t in threads:
            t.join()
        s.finish()
        elapsed = time.perf_counter_ns() - start
        n = per_thread * 4
        expected += n
    elif case == "memory":
        import tracemalloc

        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        start = time.perf_counter_ns()
        for _ in range(n):
            info(MSG)
        s.finish()
        elapsed = time.perf_counter_ns() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        expected += n
        return {"ns_per_call": elapsed / n, "expected": expected, "peak_growth_mb": (peak - base) / 2**20}
    else:
        raise SystemExit(f"unknown case {case!r}")
    return {"ns_per_call": elapsed / n, "expected": expected}


if __name__ == "__main__":
    lib_arg, case_arg, n_arg, out_arg = sys.argv[1:5]
    result = run(lib_arg, case_arg, int(n_arg), out_arg)
    sys.__stdout__.write(json.dumps(result) + "\n")  # type: ignore[union-attr]
    sys.__stdout__.flush()  # type: ignore[union-attr]
