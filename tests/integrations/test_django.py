"""The Django middleware, with Django's test Client and AsyncClient, direct WSGI and ASGI
calls, and the example project under real gunicorn, uvicorn and runserver: request ids, concurrency,
failures that never change the response, redaction, SIGTERM under load."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import wsgiref.util
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")
httpx = pytest.importorskip("httpx")

from django.conf import settings  # noqa: E402
from django.core.exceptions import BadRequest, ImproperlyConfigured, PermissionDenied  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from helpers import access, free_port, records, wait_until_up  # noqa: E402, F401

import kakashi  # noqa: E402
from kakashi.integrations.django import KakashiMiddleware, with_lifespan  # noqa: E402

from conftest import read_lines, run_python  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_apps" / "django_app"
ACCESS_KEYS = ["request_id", "method", "path", "client", "status", "duration_ms", "bytes", "user_agent", "http_version"]
HEX_ID = re.compile(r"[0-9a-f]{32}")
log = kakashi.get_logger("app")
raised: list[BaseException] = []  # what the failing views raised, to compare with what Django saw
threads_seen: list[int] = []


# ---------------------------------------------------------------- the project under test


def hello(request: HttpRequest) -> JsonResponse:
    log.info("in view")
    return JsonResponse({"request_id": kakashi.get_context().get("request_id")})


async def hello_async(request: HttpRequest) -> JsonResponse:
    threads_seen.append(threading.get_ident())
    log.info("in async view")
    await asyncio.sleep(0)
    return JsonResponse({"request_id": kakashi.get_context().get("request_id")})


def sync_view(request: HttpRequest) -> HttpResponse:
    log.info("sync view")
    return HttpResponse("sync")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        for i in range(3):
            log.info("chunk", n=i)
            yield b"12345"

    return StreamingHttpResponse(body())


async def stream_broken(request: HttpRequest) -> StreamingHttpResponse:
    def body() -> Iterator[bytes]:
        yield b"12345"
        raised.append(RuntimeError("stream failed"))
        raise raised[-1]

    return StreamingHttpResponse(body())


async def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    async def body() -> AsyncIterator[bytes]:
        for i in range(3):
            log.info("chunk", n=i)
            await asyncio.sleep(0)
            yield b"12345"

    return StreamingHttpResponse(body())


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(b"x" * 1000))


def boom(request: HttpRequest) -> HttpResponse:
    log.warning("before the failure")
    raised.append(RuntimeError("view failed"))
    raise raised[-1]


async def boom_async(request: HttpRequest) -> HttpResponse:
    raised.append(RuntimeError("async view failed"))
    raise raised[-1]


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


def forbidden(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def bad_request(request: HttpRequest) -> HttpResponse:
    raise BadRequest("bad input")


def unavailable(request: HttpRequest) -> HttpResponse:
    return HttpResponse("down", status=503)


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username())


async def whoami_async(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(user.get_username())


def login_form(request: HttpRequest) -> HttpResponse:
    log.info("login attempt", password="s3cr3t", api_token="s3cr3t")
    response = HttpResponse("ok")
    response.set_cookie("session", "s3cr3t")
    return response


urlpatterns = [
    path("hello", hello),
    path("ahello", hello_async),
    path("sync", sync_view),
    path("stream", stream),
    path("astream", stream_async),
    path("broken-stream", stream_broken),
    path("download", download),
    path("boom", boom),
    path("aboom", boom_async),
    path("missing", missing),
    path("forbidden", forbidden),
    path("bad", bad_request),
    path("unavailable", unavailable),
    path("health", health),
    path("whoami", whoami),
    path("awhoami", whoami_async),
    path("login", login_form),
]

SETTINGS: dict[str, Any] = {
    "DEBUG": False,
    "SECRET_KEY": "kakashi-tests",
    "ALLOWED_HOSTS": ["testserver"],
    "ROOT_URLCONF": __name__,
    "MIDDLEWARE": [
        "kakashi.integrations.django.KakashiMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    "INSTALLED_APPS": [
        "kakashi.integrations.django",
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
    ],
    # No database server: SQLite in memory, one database shared by every thread's connection.
    "DATABASES": {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:kakashi-tests?mode=memory&cache=shared"}
    },
    "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
    "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
    "USE_TZ": True,
    # Django's logging setup is process-global: leave the other test modules' logging alone.
    "LOGGING_CONFIG": None,
}


@pytest.fixture(scope="module", autouse=True)
def django_settings() -> None:
    """Configure Django once per process (``django.setup()`` cannot be undone); every
    test then picks its middleware options with ``override_settings(KAKASHI=...)``."""
    if not settings.configured:
        settings.configure(**SETTINGS)
        django.setup()
    if __name__ != settings.ROOT_URLCONF:
        pytest.skip("Django was configured by someone else in this process")


pytestmark = pytest.mark.usefixtures("restore_logging")


def client(raise_errors: bool = True, **options: Any) -> Client:
    """A test Client whose middleware was built with ``KAKASHI = options``."""
    made = Client(raise_request_exception=raise_errors)
    with override_settings(KAKASHI=options):
        made.handler.load_middleware()
    return made


def async_client(raise_errors: bool = True, **options: Any) -> AsyncClient:
    made = AsyncClient(raise_request_exception=raise_errors)
    with override_settings(KAKASHI=options):
        made.handler.load_middleware(is_async=True)
    return made


def call_wsgi(handler: Any, path: str, **environ: Any) -> tuple[int, dict[str, str], bytes]:
    """One GET through a WSGI handler the way a server makes it: iterate, then close."""
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
    }
    started: list[Any] = []
    result = handler({**base, **environ}, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        body = b"".join(result)
    finally:
        result.close()
    return int(started[0][0].split()[0]), dict(started[0][1]), body


def call_django_asgi(app: Any, headers: list[tuple[bytes, bytes]], peer: str) -> list[Any]:
    """One GET /hello through Django's ASGI handler as raw ASGI (headers no HTTP client would
    send); the messages it sent back. (Django listens for a disconnect once it has read the
    body: the second receive() waits until the response is complete.)"""
    sent: list[Any] = []

    async def run() -> None:
        complete = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await complete.wait()
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete.set()

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/hello",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *headers],
            "client": (peer, 1234),
            "server": ("testserver", 80),
            "http_version": "1.1",
        }
        await app(scope, receive, send)

    asyncio.run(run())
    return sent


# ---------------------------------------------------------------- what every request gets


def test_one_access_line_with_the_documented_fields(records: Any) -> None:
    response = client().get("/hello", headers={"User-Agent": "probe/1.0"})
    rid = response.headers["X-Request-ID"]
    assert HEX_ID.fullmatch(rid) and response.json() == {"request_id": rid}
    log.info("after the request")
    recs = records()
    assert [(r["logger"], r["message"]) for r in recs] == [
        ("app", "in view"),
        ("kakashi.access", "GET /hello 200"),
        ("app", "after the request"),
    ]
    view, line, after = recs
    assert {k: view[k] for k in ACCESS_KEYS[:4]} == {
        "request_id": rid,
        "method": "GET",
        "path": "/hello",
        "client": "127.0.0.1",
    }
    # the request context first (as on every line of the request), then the access fields
    assert list(line)[4:] == ACCESS_KEYS
    del line["timestamp"], line["duration_ms"]
    assert line == {
        "level": "INFO",
        "logger": "kakashi.access",
        "message": "GET /hello 200",
        "request_id": rid,
        "method": "GET",
        "path": "/hello",
        "client": "127.0.0.1",
        "status": 200,
        "bytes": len(response.content),
        "user_agent": "probe/1.0",
        "http_version": "1.1",
    }
    assert "request_id" not in after  # nothing leaks out of the request


def test_async_view_gets_the_same_line_and_no_thread_hop(records: Any) -> None:
    seen: list[int] = []

    def note_thread(request: HttpRequest) -> dict[str, Any]:
        seen.append(threading.get_ident())  # runs inside the middleware, before the view
        return {"tenant": "acme"}

    async def run() -> Any:
        threads_seen.clear()
        return await async_client(request_fields=note_thread).get("/ahello")

    response = asyncio.run(run())
    rid = response.headers["X-Request-ID"]
    # The middleware and the async view ran on the event loop's thread (this one): Django
    # put no sync_to_async adapter around the middleware.
    assert seen == threads_seen == [threading.get_ident()]
    view, line = records()
    assert (view["message"], view["request_id"], view["tenant"]) == ("in async view", rid, "acme")
    assert list(line)[4:] == ["request_id", "method", "path", "client", "tenant", *ACCESS_KEYS[4:]]
    assert (line["message"], line["status"], line["bytes"], line["http_version"]) == (
        "GET /ahello 200",
        200,
        len(response.content),
        "1.1",
    )


def test_the_middleware_is_sync_or_async_like_the_handler_it_wraps() -> None:
    from asgiref.sync import iscoroutinefunction

    async def async_next(request: Any) -> HttpResponse:
        return HttpResponse()

    assert iscoroutinefunction(KakashiMiddleware(async_next))
    assert not iscoroutinefunction(KakashiMiddleware(lambda request: HttpResponse()))
    assert KakashiMiddleware.sync_capable and KakashiMiddleware.async_capable


def test_levels_follow_the_status_skip_paths_and_query(records: Any) -> None:
    c = client(raise_errors=False, skip_paths=["/health"], log_query=True)
    for url in ["/missing", "/forbidden", "/bad", "/unavailable", "/boom", "/health", "/hello?q=kakashi&page=2"]:
        c.get(url)
    lines = access(records())
    assert [(r["path"], r["status"], r["level"]) for r in lines] == [
        ("/missing", 404, "WARNING"),
        ("/forbidden", 403, "WARNING"),
        ("/bad", 400, "WARNING"),
        ("/unavailable", 503, "ERROR"),
        ("/boom", 500, "ERROR"),
        ("/hello?q=kakashi&page=2", 200, "INFO"),
    ]


def everything_critical(status: int) -> str:
    return "CRITICAL"


def test_status_levels_as_a_function_or_a_dotted_path(records: Any) -> None:
    client(status_levels=everything_critical).get("/missing")
    client(status_levels=f"{__name__}.everything_critical").get("/hello")
    assert [(r["message"], r["level"]) for r in access(records())] == [
        ("GET /missing 404", "CRITICAL"),
        ("GET /hello 200", "CRITICAL"),
    ]


def test_client_errors_are_not_logged_as_errors_and_djangos_lines_carry_the_id(records: Any) -> None:
    kakashi.capture_stdlib("INFO")  # django.request comes out through kakashi
    c = client()
    ids = [c.get(url).headers["X-Request-ID"] for url in ("/missing", "/forbidden", "/bad", "/unavailable")]
    recs = records()
    assert [r for r in recs if "exception" in r and r["logger"] == "kakashi.errors"] == []
    django_lines = [(r["logger"], r["message"], r["request_id"]) for r in recs if r["logger"].startswith("django")]
    assert django_lines == [
        ("django.request", "Not Found: /missing", ids[0]),
        ("django.request", "Forbidden (Permission denied): /forbidden", ids[1]),
        ("django.request", "bad input: /bad", ids[2]),
        ("django.request", "Service Unavailable: /unavailable", ids[3]),
    ]


# ---------------------------------------------------------------- errors (a failure never changes the response)


def test_view_error_reaches_django_unchanged_and_is_logged_once(records: Any) -> None:
    kakashi.capture_stdlib("INFO")  # Django's own django.request copy would come out too
    with pytest.raises(RuntimeError, match="view failed") as caught:
        client().get("/boom", headers={"X-Request-ID": "keep-me"})
    assert caught.value is raised[-1]  # the very exception the view raised
    recs = records()
    errors = [r for r in recs if "exception" in r]
    assert len(errors) == 1  # django.request's "Internal Server Error: /boom" was filtered
    (error,) = errors
    assert (error["logger"], error["message"], error["request_id"], error["path"]) == (
        "kakashi.errors",
        "unhandled exception",
        "keep-me",
        "/boom",
    )
    assert error["exception"]["type"] == "RuntimeError"
    assert "raise raised[-1]" in error["exception"]["traceback"]
    assert [(r["message"], r["status"]) for r in access(recs)] == [("GET /boom 500", 500)]
    assert [r["message"] for r in recs if r["logger"] == "app"] == ["before the failure"]


def test_djangos_own_500_page_still_answers_with_the_id(records: Any) -> None:
    from django.test import RequestFactory
    from django.views.defaults import server_error

    response = client(raise_errors=False).get("/boom", headers={"X-Request-ID": "keep-me"})
    assert response.status_code == 500
    assert response.content == server_error(RequestFactory().get("/boom")).content  # Django's own page
    assert response.headers["X-Request-ID"] == "keep-me"
    assert access(records())[0]["bytes"] == len(response.content)


def test_async_view_error_logged_once(records: Any) -> None:
    kakashi.capture_stdlib("INFO")

    async def run() -> Any:
        return await async_client(raise_errors=False).get("/aboom")

    response = asyncio.run(run())
    assert response.status_code == 500
    recs = records()
    (error,) = [r for r in recs if "exception" in r]
    assert error["logger"] == "kakashi.errors" and error["exception"]["message"] == "async view failed"
    assert error["request_id"] == response.headers["X-Request-ID"] == access(recs)[0]["request_id"]


def test_exception_escaping_django_is_logged_once_with_an_access_line(records: Any) -> None:
    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True), pytest.raises(RuntimeError) as caught:
        client(raise_errors=False).get("/boom")
    assert caught.value is raised[-1]
    recs = records()
    assert len([r for r in recs if "exception" in r]) == 1
    assert [(r["message"], r["level"]) for r in access(recs)] == [("GET /boom 500", "ERROR")]


def test_a_failing_sink_or_field_hook_never_changes_the_response() -> None:
    def broken_sink(data: str) -> None:
        raise OSError(5, "sink down")

    def broken_fields(request: HttpRequest) -> dict[str, Any]:
        raise KeyError("no such thing")

    kakashi.configure(sink=broken_sink, batch_size=1)
    c = client(raise_errors=False, request_fields=broken_fields)
    ok = c.get("/hello")
    assert ok.status_code == 200 and ok.json()["request_id"] == ok.headers["X-Request-ID"]
    assert c.get("/missing").status_code == 404
    assert c.get("/boom").status_code == 500
    assert b"".join(c.get("/stream").streaming_content) == b"12345" * 3


# ---------------------------------------------------------------- streaming, files, flush


def test_streamed_response_is_counted_and_logged_when_it_ends(records: Any) -> None:
    response = client().get("/stream")
    assert access(records()) == []  # nothing sent yet: no access line
    assert b"".join(response.streaming_content) == b"12345" * 3  # the test client closes it at the end
    recs = records()
    assert [r["message"] for r in recs] == ["chunk", "chunk", "chunk", "GET /stream 200"]
    rid = response.headers["X-Request-ID"]
    assert all(r["request_id"] == rid for r in recs)  # the request's fields while it streams
    assert recs[-1]["bytes"] == 15


def test_async_streamed_response_is_counted(records: Any) -> None:
    async def run() -> tuple[Any, bytes]:
        response = await async_client().get("/astream")
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, body = asyncio.run(run())
    assert body == b"12345" * 3
    recs = records()
    assert [r["message"] for r in recs] == ["chunk", "chunk", "chunk", "GET /astream 200"]
    assert {r["request_id"] for r in recs} == {response.headers["X-Request-ID"]}
    assert recs[-1]["bytes"] == 15


def test_a_stream_that_fails_is_logged_once_and_its_line_counts_what_was_sent(records: Any) -> None:
    response = client().get("/broken-stream")
    with pytest.raises(RuntimeError, match="stream failed") as caught:
        b"".join(response.streaming_content)  # the server sees the exception, unchanged
    assert caught.value is raised[-1]
    (error, line) = records()
    assert (error["message"], error["request_id"], error["exception"]["type"]) == (
        "unhandled exception in streamed body",
        response.headers["X-Request-ID"],
        "RuntimeError",
    )
    assert (line["message"], line["bytes"]) == ("GET /broken-stream 200", 5)


def test_a_stream_closed_before_it_started_still_gets_its_line(records: Any) -> None:
    response = client().get("/stream")
    response.close()  # a client that went away before the first chunk
    (line,) = records()
    assert (line["message"], line["bytes"]) == ("GET /stream 200", 0)


def test_a_stream_that_ends_gets_its_line_without_close(records: Any) -> None:
    # Django's ASGI handler cancels the request task instead of closing the response when
    # the client disconnects as the response ends: the end of the body writes the line.
    from django.test import AsyncRequestFactory, RequestFactory

    async def run() -> bytes:
        async def view(request: HttpRequest) -> StreamingHttpResponse:
            return await stream_async(request)

        with override_settings(KAKASHI={}):
            middleware = KakashiMiddleware(view)
        response = await middleware(AsyncRequestFactory().get("/astream"))
        return b"".join([chunk async for chunk in response.streaming_content])

    with override_settings(KAKASHI={}):
        response = KakashiMiddleware(stream)(RequestFactory().get("/stream"))
    assert b"".join(response.streaming_content) == asyncio.run(run()) == b"12345" * 3
    assert [(r["message"], r["bytes"]) for r in access(records())] == [
        ("GET /stream 200", 15),
        ("GET /astream 200", 15),
    ]


def test_file_response_keeps_sendfile_and_logs_its_size(records: Any) -> None:
    wrapped: list[Any] = []

    class FileWrapper(wsgiref.util.FileWrapper):  # what a server's sendfile support looks like
        def __init__(self, filelike: Any, blksize: int = 8192) -> None:
            wrapped.append(filelike)
            super().__init__(filelike, blksize)

    with override_settings(KAKASHI={}):
        handler = WSGIHandler()
    status, headers, body = call_wsgi(handler, "/download", **{"wsgi.file_wrapper": FileWrapper})
    assert (status, body, len(wrapped)) == (200, b"x" * 1000, 1)  # the file went to the server's wrapper
    assert [(r["message"], r["bytes"], r["request_id"]) for r in records()] == [
        ("GET /download 200", 1000, headers["X-Request-ID"])
    ]


def test_lines_reach_the_sink_when_the_response_is_closed(log_path: Path) -> None:
    # A batch that would otherwise wait a minute: the request end is what writes it.
    kakashi.configure(sink=log_path, format="json", batch_size=10_000, flush_interval=60)
    c = client()
    c.get("/hello")
    assert [json.loads(line)["message"] for line in read_lines(log_path)] == ["in view", "GET /hello 200"]
    response = c.get("/stream")
    assert len(read_lines(log_path)) == 2  # streaming: not closed yet
    b"".join(response.streaming_content)
    assert [json.loads(line)["message"] for line in read_lines(log_path)][2:] == ["chunk"] * 3 + ["GET /stream 200"]


# ---------------------------------------------------------------- the user id


@pytest.fixture(scope="module")
def user() -> Any:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return User.objects.create_user("ada", password="pw")


def test_user_id_from_a_view_that_used_request_user(records: Any, user: Any) -> None:
    c = client()
    c.force_login(user)
    assert c.get("/whoami").content == b"ada"
    (line,) = access(records())
    assert list(line)[-1] == "user_id" and line["user_id"] == user.pk


def test_user_id_never_costs_a_query(records: Any, user: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = client()
    c.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        c.get("/hello")  # the view never touched request.user
    assert len(queries) == 0
    assert "user_id" not in access(records())[0]


def test_user_id_of_an_async_view_through_auser(records: Any, user: Any) -> None:
    async def run() -> Any:
        c = async_client()
        await c.aforce_login(user)
        return await c.get("/awhoami")

    assert asyncio.run(run()).content == b"ada"
    assert access(records())[0]["user_id"] == user.pk


def test_anonymous_user_has_no_user_id(records: Any, user: Any) -> None:
    assert client().get("/whoami").content == b""
    assert "user_id" not in access(records())[0]


# ---------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123._:XYZ", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("x" * 10_000, False),
    ],
)
def test_request_id_rules(records: Any, incoming: str, kept: bool) -> None:
    rid = client().get("/hello", headers={"X-Request-ID": incoming}).headers["X-Request-ID"]
    line = access(records())[0]
    if kept:
        assert rid == incoming and "request_id_replaced" not in line
    else:
        assert HEX_ID.fullmatch(rid) and line["request_id_replaced"] is True
    assert line["request_id"] == rid


def test_hostile_ids_through_the_wsgi_environ(records: Any) -> None:
    c = client()
    for hostile in ["a\r\nb", "\x1b[31mred", "id\x00zero", "Ã¼nÃ¯", "a\u2028b"]:
        assert HEX_ID.fullmatch(c.get("/hello", HTTP_X_REQUEST_ID=hostile).headers["X-Request-ID"])
    lines = access(records())
    assert len(lines) == 5 and all(r["request_id_replaced"] for r in lines)


@pytest.mark.parametrize("hostile", [b"abc\r\nX-Injected: 1", b"\x1b[31mred", b"\xff\xfe", "ünïcode".encode()])
def test_hostile_ids_in_raw_asgi(records: Any, hostile: bytes) -> None:
    with override_settings(KAKASHI={}):
        app = ASGIHandler()
    sent = call_django_asgi(app, [(b"x-request-id", hostile)], "10.0.0.9")
    headers = {name.lower(): value for name, value in sent[0]["headers"]}
    assert sent[0]["status"] == 200
    assert HEX_ID.fullmatch(headers[b"x-request-id"].decode())
    (line,) = access(records())
    assert line["request_id_replaced"] is True and line["client"] == "10.0.0.9"


def test_custom_request_id_header(records: Any) -> None:
    response = client(request_id_header="X-Correlation-ID").get("/hello", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["X-Correlation-ID"] == "corr-1" and "X-Request-ID" not in response.headers
    assert access(records())[0]["request_id"] == "corr-1"


# ---------------------------------------------------------------- concurrency


@pytest.mark.timeout(60)
def test_two_hundred_concurrent_asgi_requests_keep_their_ids(records: Any) -> None:
    with override_settings(KAKASHI={}):
        app = ASGIHandler()
    expected = {"/ahello": ["in async view"], "/sync": ["sync view"], "/astream": ["chunk", "chunk", "chunk"]}
    paths = list(expected) * 67

    async def run() -> list[tuple[str, str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            responses = await asyncio.gather(
                *(c.get(p, headers={"X-Request-ID": f"req-{i}"}) for i, p in enumerate(paths[:200]))
            )
        return [(r.headers["x-request-id"], r.request.url.path) for r in responses]

    sent = asyncio.run(run())
    assert [rid for rid, _ in sent] == [f"req-{i}" for i in range(200)]
    log.info("after the requests")
    recs = records()
    by_id: dict[str | None, list[str]] = {}
    for r in recs:
        if r["logger"] == "app":
            by_id.setdefault(r.get("request_id"), []).append(r["message"])
    assert by_id == {**{rid: expected[p] for rid, p in sent}, None: ["after the requests"]}
    assert sorted(r["request_id"] for r in access(recs)) == sorted(rid for rid, _ in sent)


@pytest.mark.timeout(60)
def test_wsgi_threads_keep_their_ids(records: Any) -> None:
    with override_settings(KAKASHI={}):
        handler = WSGIHandler()
    expected = {"/hello": ["in view"], "/stream": ["chunk", "chunk", "chunk"], "/ahello": ["in async view"]}
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                url = list(expected)[i % 3]
                status, headers, _ = call_wsgi(handler, url, HTTP_X_REQUEST_ID=f"t{t}-{i}")
                assert (status, headers["X-Request-ID"]) == (200, f"t{t}-{i}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert failures == []
    recs = records()
    by_id: dict[str, list[str]] = {}
    for r in recs:
        if r["logger"] == "app":
            by_id.setdefault(r["request_id"], []).append(r["message"])
    assert by_id == {f"t{t}-{i}": expected[list(expected)[i % 3]] for t in range(8) for i in range(25)}
    assert len(access(recs)) == 200


# ---------------------------------------------------------------- secrets and proxies


def test_secrets_are_never_written_in_clear(records: Any) -> None:
    c = client(headers=["authorization", "cookie", "x-api-key", "accept"])
    c.cookies["session"] = "s3cr3t"
    response = c.get(
        "/login", headers={"Authorization": "Bearer s3cr3t", "X-Api-Key": "s3cr3t", "Accept": "text/plain"}
    )
    assert response.cookies["session"].value == "s3cr3t"  # Set-Cookie went out, and is never logged
    recs = records()
    line = access(recs)[0]
    assert (line["header_authorization"], line["header_cookie"], line["header_x_api_key"], line["header_accept"]) == (
        "[REDACTED]",
        "[REDACTED]",
        "[REDACTED]",
        "text/plain",
    )
    view = next(r for r in recs if r["message"] == "login attempt")
    assert (view["password"], view["api_token"]) == ("[REDACTED]", "[REDACTED]")
    assert "s3cr3t" not in json.dumps(recs)


def test_forwarded_for_is_believed_only_from_trusted_proxies(records: Any) -> None:
    c = client(trusted_proxies=["10.0.0.0/8"])
    c.get("/hello", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="203.0.113.7, 10.2.2.2")
    c.get("/hello", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.7")  # not a proxy
    c.get("/hello", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="not-an-ip, 203.0.113.9")
    assert [r["client"] for r in access(records())] == ["203.0.113.7", "198.51.100.1", "203.0.113.9"]


# ---------------------------------------------------------------- settings


def test_kakashi_setting_configures_kakashi_once(tmp_path: Path) -> None:
    out = tmp_path / "configured.log"
    c = client(format="logfmt", sink=str(out), level="WARNING")
    c.get("/missing")
    c.get("/hello")  # INFO: below the configured level
    (line,) = read_lines(out)
    assert line.split(" ")[1:4] == ["level=WARNING", "logger=kakashi.access", 'message="GET']
    kakashi.configure(sink=str(out), format="json")  # the application's own later change ...
    client(format="logfmt", sink=str(out), level="WARNING").get("/hello")  # ... is not undone
    assert json.loads(read_lines(out)[-1])["message"] == "GET /hello 200"


def test_the_app_config_applies_the_setting_at_setup(tmp_path: Path) -> None:
    from django.apps import apps

    out = tmp_path / "ready.log"
    with override_settings(KAKASHI={"sink": str(out), "format": "logfmt"}):
        apps.get_app_config("kakashi").ready()
    log.warning("configured by ready()")
    kakashi.flush()
    assert read_lines(out)[0].endswith(' level=WARNING logger=app message="configured by ready()"')


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            {"sinkk": "stdout"},
            'unknown setting settings.KAKASHI["sinkk"] (did you mean settings.KAKASHI["sink"]?); valid keys: ',
        ),
        (
            {"skip_path": ["/health"], "trusted_proxy": ["10.0.0.1"]},
            'unknown settings settings.KAKASHI["skip_path"] (did you mean settings.KAKASHI["skip_paths"]?), '
            'settings.KAKASHI["trusted_proxy"] (did you mean settings.KAKASHI["trusted_proxies"]?); valid keys: ',
        ),
        ({"nonsense": 1}, 'unknown setting settings.KAKASHI["nonsense"]; valid keys: batch_size, '),
        ({"level": "LOUD"}, "settings.KAKASHI: unknown level 'LOUD'"),
        (
            {"trusted_proxies": ["nonsense"]},
            "settings.KAKASHI[\"trusted_proxies\"]: invalid trusted proxy 'nonsense'",
        ),
        # A str where a list belongs would be read character by character.
        (
            {"skip_paths": "/health"},
            "settings.KAKASHI[\"skip_paths\"] must be a list of str (paths), not str ('/health')",
        ),
        (
            {"headers": "user-agent"},
            "settings.KAKASHI[\"headers\"] must be a list of str (header names), not str ('user-agent')",
        ),
        (
            {"trusted_proxies": "10.0.0.1"},
            "settings.KAKASHI[\"trusted_proxies\"] must be a list of str (addresses or networks), not str ('10.0.0.1')",
        ),
        ({"log_query": "yes"}, "settings.KAKASHI[\"log_query\"] must be True or False, not str ('yes')"),
        (
            {"request_fields": "myapp.no.such.func"},
            'settings.KAKASHI["request_fields"]: cannot import "myapp.no.such.func": No module named \'myapp\'',
        ),
        (
            {"status_levels": "kakashi.no_such_function"},
            'settings.KAKASHI["status_levels"]: cannot import "kakashi.no_such_function": '
            "module 'kakashi' has no attribute 'no_such_function'",
        ),
        (
            {"status_levels": "levels"},
            'settings.KAKASHI["status_levels"]: cannot import "levels": give a function or its dotted path '
            "(module.function)",
        ),
        (
            {"request_fields": "kakashi.DEFAULT_REDACT"},
            'settings.KAKASHI["request_fields"] must be a function from request to fields, not tuple',
        ),
    ],
)
def test_bad_settings_fail_when_the_handler_is_built(setting: dict[str, Any], message: str) -> None:
    with override_settings(KAKASHI=setting), pytest.raises(ImproperlyConfigured) as caught:
        Client().handler.load_middleware()
    assert str(caught.value).startswith(message)


def test_missing_django_names_the_extra() -> None:
    proc = run_python(
        """
        import sys
        sys.modules["django"] = None
        try:
            import kakashi.integrations.django
        except ImportError as exc:
            print(exc)
        """
    )
    assert proc.stdout.strip() == "kakashi.integrations.django needs Django: pip install 'kakashi[django]'"


def test_lifespan_shutdown_writes_everything_and_writes_through(log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json", mode="async", max_latency=10)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        message = next(messages)
        if message["type"] == "lifespan.shutdown":
            log.info("last request line")
        return message

    async def send(message: Any) -> None:
        sent.append(message["type"])

    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("Django refuses lifespan scopes")

    asyncio.run(with_lifespan(never_called)({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert [json.loads(line)["message"] for line in read_lines(log_path)] == ["last request line"]
    log.info("Finished server process")  # what uvicorn logs next, right before its SIGTERM
    assert json.loads(read_lines(log_path)[-1])["message"] == "Finished server process"


# ---------------------------------------------------------------- the example under real servers: SIGTERM loses nothing


def start_server(command: list[str], log_file: Path, **env: str) -> subprocess.Popen[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KAKASHI_", "DJANGO_"))}
    full_env.update(KAKASHI_EXAMPLE_LOG=str(log_file), **env)
    return subprocess.Popen(command, cwd=EXAMPLE, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def load(base: str, paths: list[str], count: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            return list(
                await asyncio.gather(
                    *(c.get(paths[i % len(paths)], headers={"X-Request-ID": f"req-{i}"}) for i in range(count))
                )
            )

    return asyncio.run(run())


def stop(server: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    server.send_signal(sig)
    try:
        return server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()


def wait_for_message(path: Path, message: str, seconds: float = 10) -> None:
    """Poll a JSON log another process writes until a line has ``message``, or fail."""
    deadline = time.monotonic() + seconds
    while True:
        whole_lines = path.read_text().split("\n")[:-1] if path.exists() else []
        if any(json.loads(line)["message"] == message for line in whole_lines):
            return
        assert time.monotonic() < deadline, f"{message!r} never reached {path}"
        time.sleep(0.05)


def check_requests(recs: list[dict[str, Any]], paths: list[str], count: int, statuses: dict[str, int]) -> None:
    """Every request's access line exactly once with its status, the view's lines with its id,
    each failure's traceback once, and Django's own 404 line with the request id."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_id.setdefault(r.get("request_id", ""), []).append(r)
    for i in range(count):
        url, mine = paths[i % len(paths)], by_id[f"req-{i}"]
        (line,) = [r for r in mine if r["logger"] == "kakashi.access"]
        assert (line["message"], line["status"]) == (f"GET {url} {statuses[url]}", statuses[url]), i
        if url == "/fail":
            (error,) = [r for r in mine if "exception" in r]
            assert error["logger"] == "kakashi.errors" and error["exception"]["type"] == "RuntimeError"
        elif url == "/items/0":
            assert [r["message"] for r in mine if r["logger"] == "django.request"] == ["Not Found: /items/0"]
        elif url in ("/stream", "/astream"):
            assert [r["message"] for r in mine if r["logger"] == "shop"] == ["chunk"] * 3 and line["bytes"] == 24
        else:
            assert next(r["message"] for r in mine if r["logger"] == "shop").startswith("item requested")
    assert len([r for r in recs if "exception" in r]) == paths.count("/fail") * count // len(paths)
    assert not [r for r in recs if r.get("path") == "/health" and r["logger"] == "kakashi.access"]


STATUSES = {"/items/1": 200, "/async/2": 200, "/stream": 200, "/astream": 200, "/fail": 500, "/items/0": 404}


@pytest.mark.timeout(120)
def test_gunicorn_two_workers_then_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    log_file, port = tmp_path / "app.log", free_port()
    server = start_server(
        [sys.executable, "-m", "gunicorn", "-c", "../gunicorn.conf.py", "shop.wsgi"],
        log_file,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
    )
    paths = ["/items/1", "/async/2", "/stream", "/fail", "/items/0"]
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        responses = load(f"http://127.0.0.1:{port}", paths, 100)
    finally:
        assert stop(server) == 0
    assert [r.status_code for r in responses[:5]] == [STATUSES[p] for p in paths]
    assert all(r.headers["x-request-id"] == f"req-{i}" for i, r in enumerate(responses))
    recs = [json.loads(line) for line in read_lines(log_file)]
    check_requests(recs, paths, 100, STATUSES)
    messages = [r["message"] for r in recs]
    assert messages.count("worker exiting") == 2  # the workers' last lines (gunicorn.conf.py)
    assert len([m for m in messages if m.startswith("Worker exiting (pid: ")]) == 2  # gunicorn's own


@pytest.mark.timeout(120)
def test_uvicorn_under_load_then_sigterm(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    log_file, port = tmp_path / "app.log", free_port()
    server = start_server(
        [sys.executable, "-m", "uvicorn", "shop.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        log_file,
    )
    paths = ["/items/1", "/async/2", "/astream", "/fail", "/items/0"]
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        responses = load(f"http://127.0.0.1:{port}", paths, 150)
        hostile = httpx.get(f"http://127.0.0.1:{port}/items/1", headers={"X-Request-ID": "evil\u2028id".encode()})
    finally:
        stop(server)
    assert [r.status_code for r in responses[:5]] == [STATUSES[p] for p in paths]
    assert HEX_ID.fullmatch(hostile.headers["x-request-id"])
    recs = [json.loads(line) for line in read_lines(log_file)]
    check_requests(recs, paths, 150, STATUSES)
    assert "\u2028" not in json.dumps(recs)
    messages = [r["message"] for r in recs]
    # uvicorn's last lines come after the lifespan shutdown: written through, not lost to SIGTERM
    assert messages[-2:] == ["Application shutdown complete.", f"Finished server process [{server.pid}]"]


@pytest.mark.timeout(60)
def test_runserver_serves_the_example(tmp_path: Path) -> None:
    log_file, port = tmp_path / "app.log", free_port()
    server = start_server([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], log_file)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health")
        response = httpx.get(f"http://127.0.0.1:{port}/items/1", headers={"X-Request-ID": "dev-1"})
        # runserver logs its own line once the response is out (the client may have it
        # first), from the request's thread: Ctrl-C only once that line exists.
        wait_for_message(log_file, '"GET /items/1 HTTP/1.1" 200 32')
    finally:
        stop(server, signal.SIGINT)  # Ctrl-C
    assert response.json() == {"id": 1, "request_id": "dev-1"}
    recs = [json.loads(line) for line in read_lines(log_file)]
    mine = [(r["logger"], r["message"]) for r in recs if r.get("request_id") == "dev-1"]
    assert mine == [("shop", "item requested"), ("kakashi.access", "GET /items/1 200")]
    served = [r["message"] for r in recs if r["logger"] == "django.server"]
    assert '"GET /items/1 HTTP/1.1" 200 32' in served  # Django's own line, through kakashi
