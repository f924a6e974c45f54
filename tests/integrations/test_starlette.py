"""The Starlette/FastAPI middleware, with the framework's TestClient, raw ASGI calls, and a
real uvicorn process: request ids, concurrency, failures that never change the response,
redaction, SIGTERM under load."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

starlette = pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from helpers import (  # noqa: E402, F401
    access,
    call_asgi,
    free_port,
    records,
    start_server,
    stop_server,
    wait_for_records,
    wait_until_up,
)
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocket  # noqa: E402

import kakashi  # noqa: E402
from kakashi.integrations.starlette import KakashiMiddleware  # noqa: E402

from conftest import read_lines  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
log = kakashi.get_logger("app")


async def hello(request: Request) -> JSONResponse:
    log.info("in view", n=1)
    return JSONResponse({"request_id": kakashi.get_context().get("request_id")})


def sync_view(request: Request) -> PlainTextResponse:
    log.info("sync view")
    return PlainTextResponse("sync")


async def stream(request: Request) -> StreamingResponse:
    async def body() -> Any:
        for i in range(3):
            log.info("chunk", n=i)
            yield b"12345"

    return StreamingResponse(body())


async def missing(request: Request) -> PlainTextResponse:
    return PlainTextResponse("nope", status_code=404)


async def boom(request: Request) -> PlainTextResponse:
    log.warning("before the failure")
    raise RuntimeError("view failed")


async def with_task(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok", background=BackgroundTask(lambda: log.info("background task")))


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def make_app(debug: bool = False, **options: Any) -> Starlette:
    app = Starlette(
        debug=debug,
        routes=[
            Route("/hello", hello),
            Route("/sync", sync_view),
            Route("/stream", stream),
            Route("/missing", missing),
            Route("/boom", boom),
            Route("/task", with_task),
            Route("/health", health),
            WebSocketRoute("/ws", ws),
        ],
    )
    app.add_middleware(KakashiMiddleware, **options)
    return app


def test_one_access_line_with_the_documented_fields(records: Any) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/hello?x=1", headers={"User-Agent": "probe/1.0"})
    rid = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and response.json() == {"request_id": rid}
    recs = records()
    view = next(r for r in recs if r["message"] == "in view")
    assert (view["request_id"], view["method"], view["path"], view["client"]) == (rid, "GET", "/hello", "testclient")
    (line,) = access(recs)
    # the request context first (as on every line of the request), then the access fields
    assert list(line)[4:] == [
        "request_id",
        "method",
        "path",
        "client",
        "status",
        "duration_ms",
        "bytes",
        "user_agent",
        "http_version",
    ]
    assert line["message"] == "GET /hello 200" and line["level"] == "INFO"
    assert (line["status"], line["user_agent"], line["request_id"]) == (200, "probe/1.0", rid)
    assert line["bytes"] == len(response.content) == 49
    assert isinstance(line["duration_ms"], float) and line["http_version"] == "1.1"


def test_levels_follow_the_status_and_skip_paths_write_nothing(records: Any) -> None:
    with TestClient(make_app(skip_paths=["/health"]), raise_server_exceptions=False) as client:
        client.get("/missing")
        client.get("/boom")
        client.get("/health")
    lines = access(records())
    assert [(r["status"], r["level"]) for r in lines] == [(404, "WARNING"), (500, "ERROR")]


def test_query_string_only_when_enabled(records: Any) -> None:
    with TestClient(make_app(log_query=True)) as client:
        client.get("/hello?q=kakashi&page=2")
    assert access(records())[0]["path"] == "/hello?q=kakashi&page=2"


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("abc-123._:XYZ", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("x" * 10_000, False),
    ],
)
def test_request_id_rules(records: Any, incoming: str, kept: bool) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/hello", headers={"X-Request-ID": incoming})
    rid = response.headers["x-request-id"]
    line = access(records())[0]
    if kept:
        assert rid == incoming and "request_id_replaced" not in line
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", rid) and line["request_id_replaced"] is True
    assert line["request_id"] == rid


@pytest.mark.parametrize(
    "hostile",
    [b"abc\r\nX-Injected: 1", b"\x1b[31mred", b"id\x00zero", b"\xff\xfe", "ünïcode".encode(), b"a\xe2\x80\xa8b"],
)
def test_hostile_request_ids_in_raw_asgi(records: Any, hostile: bytes) -> None:
    sent = call_asgi(make_app(), [(b"x-request-id", hostile)], "10.0.0.9")
    headers = dict(sent[0]["headers"])
    assert re.fullmatch(rb"[0-9a-f]{32}", headers[b"x-request-id"])
    line = access(records())[0]
    assert line["request_id_replaced"] is True and line["client"] == "10.0.0.9"


def test_context_reaches_sync_views_background_tasks_and_does_not_leak(records: Any) -> None:
    with TestClient(make_app()) as client:
        sync_id = client.get("/sync").headers["x-request-id"]
        task_id = client.get("/task").headers["x-request-id"]
    log.info("after the requests")
    recs = records()
    by_message = {r["message"]: r.get("request_id") for r in recs if r["logger"] == "app"}
    assert by_message == {"sync view": sync_id, "background task": task_id, "after the requests": None}


def test_streaming_response_is_counted_and_logged_when_complete(records: Any) -> None:
    with TestClient(make_app()) as client:
        response = client.get("/stream")
    assert response.text == "12345" * 3
    recs = records()
    messages = [r["message"] for r in recs]
    assert messages.index("GET /stream 200") > messages.index("chunk")  # after the last chunk
    assert access(recs)[0]["bytes"] == 15


def test_view_error_logged_once_with_traceback_and_reraised(records: Any) -> None:
    with TestClient(make_app()) as client, pytest.raises(RuntimeError, match="view failed"):
        client.get("/boom")
    recs = records()
    errors = [r for r in recs if "exception" in r]
    assert len(errors) == 1 and errors[0]["logger"] == "kakashi.errors"
    assert (
        errors[0]["exception"]["type"] == "RuntimeError" and "raise RuntimeError" in errors[0]["exception"]["traceback"]
    )
    assert errors[0]["path"] == "/boom" and errors[0]["request_id"]


def test_unhandled_500_carries_the_request_id(records: Any) -> None:
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500 and response.text == "Internal Server Error"
    assert response.headers["x-request-id"] == "trace-me"
    assert access(records())[0]["status"] == 500


def test_an_apps_own_500_handler_answers_unchanged(records: Any) -> None:
    app = make_app()

    async def custom_500(request: Any, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "custom"}, status_code=500)

    app.add_exception_handler(Exception, custom_500)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert (response.status_code, response.json()) == (500, {"error": "custom"})
    recs = records()
    assert access(recs)[0]["status"] == 500 and len([r for r in recs if "exception" in r]) == 1


def test_debug_mode_keeps_starlettes_debug_page(records: Any) -> None:
    with TestClient(make_app(debug=True), raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"Accept": "text/html"})
    assert response.status_code == 500 and "RuntimeError" in response.text and "Traceback" in response.text


def test_a_failing_sink_or_field_hook_never_changes_the_response(tmp_path: Path) -> None:
    def broken_sink(data: str) -> None:
        raise OSError(5, "sink down")

    kakashi.configure(sink=broken_sink, batch_size=1)

    def broken_fields(scope: Any) -> dict[str, Any]:
        raise KeyError("no such thing")

    class Weird:
        def __str__(self) -> str:
            raise RuntimeError("unprintable")

    with TestClient(make_app(request_fields=broken_fields)) as client:
        ok = client.get("/hello")
        missing_response = client.get("/missing")
    assert ok.status_code == 200 and ok.json()["request_id"] == ok.headers["x-request-id"]
    assert missing_response.status_code == 404 and missing_response.text == "nope"
    log.info("weird value", v=Weird())  # the formatter never raises either


def test_headers_are_redacted_and_never_logged_raw(records: Any) -> None:
    with TestClient(make_app(headers=["authorization", "cookie", "accept", "x-api-key"])) as client:
        client.get(
            "/hello",
            headers={
                "Authorization": "Bearer s3cr3t",
                "Cookie": "session=s3cr3t",
                "Accept": "text/plain",
                "X-Api-Key": "s3cr3t",
            },
        )
    line = access(records())[0]
    assert line["header_authorization"] == "[REDACTED]" and line["header_cookie"] == "[REDACTED]"
    assert line["header_x_api_key"] == "[REDACTED]" and line["header_accept"] == "text/plain"
    assert "s3cr3t" not in json.dumps(records())


def test_forwarded_for_is_believed_only_from_trusted_proxies(records: Any) -> None:
    app = make_app(trusted_proxies=["10.0.0.0/8"])
    call_asgi(app, [(b"x-forwarded-for", b"203.0.113.7, 10.2.2.2")], "10.1.1.1")  # trusted proxy chain
    call_asgi(app, [(b"x-forwarded-for", b"203.0.113.7")], "198.51.100.1")  # not a proxy: ignored
    call_asgi(app, [(b"x-forwarded-for", b"not-an-ip, 203.0.113.9")], "10.1.1.1")
    # The client's own forged header first, the proxy's appended one second (HAProxy): one
    # list, so the proxy's entry decides.
    call_asgi(app, [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.8")], "10.0.0.1")
    assert [r["client"] for r in access(records())] == ["203.0.113.7", "198.51.100.1", "203.0.113.9", "203.0.113.8"]


def test_bad_options_fail_when_the_middleware_is_built() -> None:
    with pytest.raises(ValueError, match="invalid trusted proxy 'nonsense'"):
        KakashiMiddleware(make_app(), trusted_proxies=["nonsense"])
    with pytest.raises(TypeError, match=f"^{MISSPELT}"):
        KakashiMiddleware(make_app(), skip_pathz=["/health"])


MISSPELT = re.escape("KakashiMiddleware.__init__() got an unexpected keyword argument 'skip_pathz'")


def test_a_misspelt_option_given_to_add_middleware_fails_at_startup_before_any_request() -> None:
    # add_middleware only records the class and its options: Starlette builds the middleware
    # when the app gets its first ASGI call, the lifespan startup (uvicorn, TestClient as a
    # context manager). The misspelt name fails there, named, and no request is served.
    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(KakashiMiddleware, skip_pathz=["/health"])
    client = TestClient(app)
    with pytest.raises(TypeError, match=MISSPELT), client:
        pytest.fail("the app started")


@pytest.mark.parametrize(
    ("option", "value", "wanted"),
    [
        ("skip_paths", "/health", "skip_paths must be a list of str (paths), not str ('/health')"),
        ("headers", "user-agent", "headers must be a list of str (header names), not str ('user-agent')"),
        (
            "trusted_proxies",
            "10.0.0.1",
            "trusted_proxies must be a list of str (addresses or networks), not str ('10.0.0.1')",
        ),
        ("skip_paths", b"/health", "skip_paths must be a list of str (paths), not bytes (b'/health')"),
        ("skip_paths", None, "skip_paths must be a list of str (paths), not NoneType (None)"),
        ("skip_paths", ["/health", 7], "skip_paths entries must be str, got int (7)"),
        ("headers", [b"accept"], "headers entries must be str, got bytes (b'accept')"),
        ("log_query", "yes", "log_query must be True or False, not str ('yes')"),
        ("request_id_header", 5, "request_id_header must be a header name (a str), not int (5)"),
        ("logger", None, "logger must be a logger name (a str), not NoneType (None)"),
        ("debug", "no", "debug must be True, False or None, not str ('no')"),
    ],
)
def test_an_option_of_the_wrong_type_is_refused_naming_it(option: str, value: Any, wanted: str) -> None:
    # A str where a list belongs would be read character by character: "/health" would skip
    # the paths "/", "h", "e", ...
    with pytest.raises(TypeError) as caught:
        KakashiMiddleware(make_app(), **{option: value})
    assert str(caught.value) == wanted


def test_list_options_take_any_collection_of_str(records: Any) -> None:
    app = make_app(skip_paths=("/health",), headers={"x-tenant"}, trusted_proxies=frozenset({"10.0.0.0/8"}))
    call_asgi(app, [(b"x-tenant", b"acme"), (b"x-forwarded-for", b"203.0.113.7")], "10.1.1.1")
    call_asgi(app, [], "10.1.1.1", path="/health")
    (line,) = access(records())
    assert (line["header_x_tenant"], line["client"]) == ("acme", "203.0.113.7")


def test_websocket_connect_and_close_lines(records: Any) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hi"
    lines = access(records())
    assert [r["message"] for r in lines] == ["websocket connected /ws", "websocket closed /ws"]
    assert lines[0]["request_id"] == lines[1]["request_id"] and lines[1]["code"] == 1000


def test_lifespan_shutdown_flushes_and_writes_through(records: Any, log_path: Path) -> None:
    kakashi.configure(sink=log_path, format="json", mode="async", max_latency=10)
    with TestClient(make_app()) as client:
        client.get("/hello")
    # shutdown.complete has gone out: everything is in the file without any flush call
    assert any(json.loads(line)["message"] == "GET /hello 200" for line in read_lines(log_path))
    log.info("after shutdown")  # written at once: a server may die by a signal now
    assert json.loads(read_lines(log_path)[-1])["message"] == "after shutdown"


@pytest.mark.timeout(60)
def test_two_hundred_concurrent_requests_keep_their_ids(records: Any) -> None:
    app = make_app()

    async def run() -> list[tuple[str, str]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            paths = ["/hello", "/sync", "/stream"] * 67
            responses = await asyncio.gather(
                *(client.get(p, headers={"X-Request-ID": f"req-{i}"}) for i, p in enumerate(paths[:200]))
            )
        return [(r.headers["x-request-id"], r.request.url.path) for r in responses]

    sent = asyncio.run(run())
    assert all(rid == f"req-{i}" for i, (rid, _) in enumerate(sent))
    recs = records()
    by_id: dict[str, list[str]] = {}
    for r in recs:
        if r["logger"] == "app":
            by_id.setdefault(r["request_id"], []).append(r["message"])
    expected = {"/hello": ["in view"], "/sync": ["sync view"], "/stream": ["chunk", "chunk", "chunk"]}
    assert {rid: by_id[rid] for rid, _ in sent} == {rid: expected[path] for rid, path in sent}
    assert sorted(r["request_id"] for r in access(recs)) == sorted(rid for rid, _ in sent)


# ---------------------------------------------------------------- a real uvicorn process


@pytest.mark.timeout(120)
def test_uvicorn_under_load_then_sigterm_loses_nothing(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    log_file = tmp_path / "app.log"
    port = free_port()
    env = {**os.environ, "KAKASHI_EXAMPLE_LOG": str(log_file), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "example_apps.fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health")

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                calls = []
                for i in range(150):
                    path = ["/items/1", "/sync", "/stream", "/fail"][i % 4]
                    calls.append(client.get(path, headers={"X-Request-ID": f"load-{i}"}))
                calls.append(client.get("/items/2", headers={"X-Request-ID": "evil\u2028id".encode()}))
                return list(await asyncio.gather(*calls))

        responses = asyncio.run(load())
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
    assert [r.status_code for r in responses[:4]] == [200, 200, 200, 500]
    recs = [json.loads(line) for line in read_lines(log_file)]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        if "request_id" in r:
            by_id.setdefault(r["request_id"], []).append(r)
    for i in range(150):
        lines = by_id[f"load-{i}"]
        assert sum(r["logger"] == "kakashi.access" for r in lines) == 1, i
    failures = [r for r in recs if r.get("exception")]
    assert len(failures) == 150 // 4 + (1 if 150 % 4 > 3 else 0)  # once each: uvicorn's copy filtered
    replaced = [r for r in recs if r["logger"] == "kakashi.access" and r.get("request_id_replaced")]
    assert len(replaced) == 1 and "\u2028" not in json.dumps(recs)
    messages = [r["message"] for r in recs]
    assert "shop starting" in messages and "shop stopping" in messages
    assert any(m.startswith("Finished server process") for m in messages)  # uvicorn's last line


# A line gunicorn's own handler wrote: "[2024-05-01 10:00:00 +0000] [123] [INFO] ...".
GUNICORN_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[[A-Z]+\] (\S.*)")
# uvicorn's lines logged after the lifespan startup called capture_stdlib() (and then
# "Finished server process [<pid>]").
UVICORN_AFTER_STARTUP = frozenset(
    {
        "Application startup complete.",
        "Invalid HTTP request received.",
        "Shutting down",
        "Waiting for application shutdown.",
        "Application shutdown complete.",
    }
)


def uvicorn_worker_class() -> str:
    """uvicorn's gunicorn worker: the ``uvicorn-worker`` package's, else the one uvicorn
    itself still ships (deprecated since uvicorn 0.30)."""
    if importlib.util.find_spec("uvicorn_worker") is not None:
        return "uvicorn_worker.UvicornWorker"
    if importlib.util.find_spec("uvicorn.workers") is not None:
        return "uvicorn.workers.UvicornWorker"
    pytest.skip("no uvicorn worker for gunicorn: pip install uvicorn-worker")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("access_logfile", [False, True])
def test_gunicorn_with_uvicorn_workers_keeps_uvicorns_own_lines(tmp_path: Path, access_logfile: bool) -> None:
    # gunicorn -k UvicornWorker gives uvicorn.error (and uvicorn.access) the very handler
    # list of gunicorn.error (gunicorn.access); capture_stdlib() in the lifespan must still
    # make every one of them propagate into kakashi.
    for module in ("gunicorn", "uvicorn", "fastapi"):
        pytest.importorskip(module)
    log_file = tmp_path / "app.log"
    port = free_port()
    env = {**os.environ, "KAKASHI_EXAMPLE_LOG": str(log_file), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gunicorn", "-k", uvicorn_worker_class(), "-w", "2"]
    command += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "10"]
    command += ["--access-logfile", "-"] if access_logfile else []
    base = f"http://127.0.0.1:{port}"
    server = start_server([*command, "example_apps.fastapi_app:app"], cwd=ROOT, env=env, url=f"{base}/health")
    try:
        wait_for_records(log_file, lambda r: r["message"] == "shop starting", 2)  # both workers' lifespans
        with httpx.Client(base_url=base, timeout=30) as client:
            statuses = [client.get(f"/items/{i}", headers={"X-Request-ID": f"g-{i}"}).status_code for i in range(8)]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # uvicorn warns about this one
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            while raw.recv(4096):
                pass
    finally:
        out, err = stop_server(server)
    assert statuses == [200] * 8
    recs = [json.loads(line) for line in read_lines(log_file)]
    uvicorn = [(r["level"], r["message"]) for r in recs if r["logger"] == "uvicorn.error"]
    assert uvicorn.count(("INFO", "Application startup complete.")) == 2  # each worker's
    assert uvicorn.count(("WARNING", "Invalid HTTP request received.")) == 1
    assert sum(m.startswith("Finished server process") for _, m in uvicorn) == 2  # each worker's last line
    uvicorn_access = [r["message"] for r in recs if r["logger"] == "uvicorn.access"]
    if access_logfile:  # uvicorn's access lines go through gunicorn's access log: now kakashi's
        for i in range(8):
            assert sum(m.endswith(f'"GET /items/{i} HTTP/1.1" 200') for m in uvicorn_access) == 1, i
        assert len([m for m in uvicorn_access if "/items/" in m]) == 8
    else:  # gunicorn's default: no access log, and the take-over does not make one
        assert uvicorn_access == []
    assert sorted(r["request_id"] for r in recs if r["logger"] == "kakashi.access") == [f"g-{i}" for i in range(8)]
    # Nothing of uvicorn's on stdout or bare on stderr (logging.lastResort): stderr holds only
    # gunicorn's formatted lines (the master's, and the workers' before the take-over).
    assert out == ""
    gunicorns = [GUNICORN_LINE.fullmatch(line) for line in err.splitlines()]
    assert [line for line, match in zip(err.splitlines(), gunicorns) if match is None] == []
    messages = [match.group(1) for match in gunicorns if match is not None]
    assert "Waiting for application startup." in messages  # (before the take-over: gunicorn's)
    assert [m for m in messages if m in UVICORN_AFTER_STARTUP or m.startswith("Finished server process")] == []


def test_an_apps_own_request_id_header_gives_way_to_the_middlewares(records: Any) -> None:
    async def own(request: Request) -> PlainTextResponse:
        return PlainTextResponse("own", headers={"X-Request-ID": "set-by-the-app", "X-Other": "kept"})

    app = Starlette(routes=[Route("/own", own)])
    app.add_middleware(KakashiMiddleware)
    with TestClient(app) as client:
        response = client.get("/own", headers={"X-Request-ID": "from-client"})
    assert response.headers.get_list("x-request-id") == ["from-client"]
    assert response.headers["x-other"] == "kept"
    (line,) = access(records())
    assert line["request_id"] == "from-client"


def test_a_request_id_the_app_binds_is_the_access_lines_too(records: Any) -> None:
    async def adopt(request: Request) -> PlainTextResponse:
        kakashi.bind_context(request_id="upstream-trace-7", user="bob")
        log.info("adopted")
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/adopt", adopt), Route("/hello", hello)])
    app.add_middleware(KakashiMiddleware)
    with TestClient(app) as client:
        client.get("/adopt")
        plain = client.get("/hello").headers["x-request-id"]
    recs = records()
    adopted, other = access(recs)
    assert next(r for r in recs if r["message"] == "adopted")["request_id"] == "upstream-trace-7"
    assert (adopted["request_id"], adopted["user"]) == ("upstream-trace-7", "bob")
    assert other["request_id"] == plain and "user" not in other


def test_unusual_header_containers_and_header_case() -> None:
    got: list[str] = []
    kakashi.configure(sink=got.append, format="json")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Request-ID", b"app-id")]})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = KakashiMiddleware(app, trusted_proxies=["10.0.0.0/8"])
    scope = {"type": "http", "method": "GET", "path": "/p", "client": ("10.0.0.1", 1), "http_version": "1.1"}
    hops = [(b"x-forwarded-for", b"203.0.113.7"), (b"user-agent", b"ua")]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(mw(scope, receive, send))  # no "headers" key at all
    asyncio.run(mw({**scope, "headers": (pair for pair in hops)}, receive, send))  # a one-shot iterable
    kakashi.flush()
    first, second = (json.loads(line) for line in "".join(got).splitlines())
    assert first["client"] == "10.0.0.1" and first["user_agent"] is None
    assert second["client"] == "203.0.113.7" and second["user_agent"] == "ua"
    # The app's own X-Request-ID (not lower-case, against the ASGI rule) gives way to ours.
    for start in (sent[0], sent[2]):
        ids = [value for name, value in start["headers"] if name.lower() == b"x-request-id"]
        assert len(ids) == 1 and ids[0] != b"app-id"
