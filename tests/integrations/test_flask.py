"""The Flask extension, with Flask's test client and a real gunicorn: request ids, concurrency,
failures that never change the response, redaction, SIGTERM under load."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")

from flask import Flask, Response, abort, jsonify, stream_with_context  # noqa: E402
from helpers import access, free_port, records, start_server, stop_server, wait_until_up  # noqa: E402, F401

import kakashi  # noqa: E402
from kakashi.integrations.flask import Kakashi  # noqa: E402

from conftest import read_lines, run_python  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
log = kakashi.get_logger("app")


pytestmark = pytest.mark.usefixtures("restore_logging")


def make_app(**config: Any) -> Flask:
    app = Flask("shop")
    app.config.update(config)
    Kakashi(app)

    @app.get("/hello")
    def hello() -> Response:
        log.info("in view")
        return jsonify(request_id=kakashi.get_context().get("request_id"))

    @app.get("/stream")
    def stream() -> Response:
        @stream_with_context
        def body() -> Iterator[bytes]:
            for i in range(3):
                log.info("chunk", n=i)
                yield b"12345"

        return Response(body())

    @app.get("/forbidden")
    def forbidden() -> Response:
        abort(403)

    @app.get("/boom")
    def boom() -> Response:
        raise RuntimeError("view failed")

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app


def test_access_line_request_id_and_context(records: Any) -> None:
    client = make_app().test_client()
    response = client.get("/hello", headers={"User-Agent": "probe"})
    rid = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid) and response.json == {"request_id": rid}
    log.info("after the request")
    recs = records()
    view = next(r for r in recs if r["message"] == "in view")
    assert view["request_id"] == rid and view["method"] == "GET" and view["path"] == "/hello"
    (line,) = access(recs)
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
    assert (line["status"], line["bytes"], line["user_agent"]) == (200, len(response.data), "probe")
    assert "request_id" not in recs[-1]


def test_404_and_abort_keep_their_status(records: Any) -> None:
    client = make_app().test_client()
    assert client.get("/nowhere").status_code == 404
    assert client.get("/forbidden").status_code == 403
    lines = access(records())
    assert [(r["status"], r["level"]) for r in lines] == [(404, "WARNING"), (403, "WARNING")]
    assert not [r for r in records() if "exception" in r]


def test_failing_view_logged_once_and_flask_still_answers_500(records: Any) -> None:
    kakashi.capture_stdlib()
    client = make_app().test_client()
    response = client.get("/boom", headers={"X-Request-ID": "keep-me"})
    assert response.status_code == 500 and response.headers["X-Request-ID"] == "keep-me"
    recs = records()
    errors = [r for r in recs if "exception" in r]
    assert len(errors) == 1 and errors[0]["logger"] == "kakashi.errors"  # Flask's own copy dropped
    assert errors[0]["exception"]["type"] == "RuntimeError" and errors[0]["request_id"] == "keep-me"
    assert access(recs)[0]["status"] == 500


def test_exceptions_propagate_unchanged_in_testing_mode(records: Any) -> None:
    client = make_app(TESTING=True).test_client()
    with pytest.raises(RuntimeError, match="view failed"):
        client.get("/boom")
    assert len([r for r in records() if "exception" in r]) == 1


def test_streamed_response_line_after_the_stream_with_bytes(records: Any) -> None:
    client = make_app().test_client()
    response = client.get("/stream")
    assert response.data == b"12345" * 3
    response.close()  # what a WSGI server does once the body is sent
    recs = records()
    messages = [r["message"] for r in recs]
    assert messages.index("GET /stream 200") > max(i for i, m in enumerate(messages) if m == "chunk")
    assert access(recs)[0]["bytes"] == 15
    assert all(r.get("request_id") == access(recs)[0]["request_id"] for r in recs if r["message"] == "chunk")


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [("abc-123._:X", True), ("a" * 129, False), ("", False), ("has space", False), ("x" * 10_000, False)],
)
def test_request_id_rules(records: Any, incoming: str, kept: bool) -> None:
    response = make_app().test_client().get("/hello", headers={"X-Request-ID": incoming})
    rid = response.headers["X-Request-ID"]
    assert (rid == incoming) is kept
    assert access(records())[0].get("request_id_replaced", False) is (not kept)


def test_hostile_ids_through_the_wsgi_environ(records: Any) -> None:
    client = make_app().test_client()
    for hostile in ["a\r\nb", "\x1b[31m", "ünï", "a\u2028b"]:
        response = client.get("/hello", environ_overrides={"HTTP_X_REQUEST_ID": hostile})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert all(r["request_id_replaced"] for r in access(records()))


def test_headers_redacted(records: Any) -> None:
    client = make_app(KAKASHI_HEADERS=["authorization", "cookie", "accept"]).test_client()
    client.set_cookie("session", "s3cr3t")
    client.get("/hello", headers={"Authorization": "Bearer s3cr3t", "Accept": "text/html"})
    line = access(records())[0]
    assert line["header_authorization"] == "[REDACTED]" and line["header_cookie"] == "[REDACTED]"
    assert line["header_accept"] == "text/html" and "s3cr3t" not in json.dumps(records())


def test_skip_paths_and_two_apps_from_one_extension(records: Any) -> None:
    ext = Kakashi()
    first, second = Flask("first"), Flask("second")
    first.config["KAKASHI_SKIP_PATHS"] = ["/health"]
    second.config["KAKASHI_REQUEST_ID_HEADER"] = "X-Correlation-ID"
    for app in (first, second):
        ext.init_app(app)
        app.add_url_rule("/health", "health", lambda: "ok")
    assert first.test_client().get("/health").headers["X-Request-ID"]
    assert (
        second.test_client().get("/health", headers={"X-Correlation-ID": "corr-1"}).headers["X-Correlation-ID"]
        == "corr-1"
    )
    lines = access(records())
    assert len(lines) == 1 and lines[0]["request_id"] == "corr-1"


def test_broken_sink_never_changes_the_response() -> None:
    def broken(data: str) -> None:
        raise OSError(5, "down")

    kakashi.configure(sink=broken, batch_size=1)
    client = make_app().test_client()
    assert client.get("/hello").status_code == 200
    assert client.get("/forbidden").status_code == 403


def test_a_hook_registered_before_the_extension_cannot_hide_a_request(records: Any) -> None:
    app = Flask("guarded")

    @app.before_request
    def auth() -> Any:  # registered before Kakashi(app): answers some requests itself
        if flask.request.path == "/denied":
            return "no", 401
        if flask.request.path == "/hookfail":
            raise RuntimeError("auth backend down")
        return None

    Kakashi(app)
    app.add_url_rule("/ok", "ok", lambda: "ok")
    client = app.test_client()
    responses = [
        client.get(path, headers={"X-Request-ID": f"id-{i}"}) for i, path in enumerate(["/denied", "/hookfail"])
    ]
    assert [(r.status_code, r.headers.get("X-Request-ID")) for r in responses] == [(401, "id-0"), (500, "id-1")]
    recs = records()
    assert [(r["path"], r["status"], r["request_id"]) for r in access(recs)] == [
        ("/denied", 401, "id-0"),
        ("/hookfail", 500, "id-1"),
    ]
    (error,) = [r for r in recs if "exception" in r]
    assert error["request_id"] == "id-1" and error["exception"]["message"] == "auth backend down"


def test_a_streamed_body_that_fails_is_logged_once_with_the_request(records: Any) -> None:
    app = Flask("streams")
    Kakashi(app)

    @app.get("/stream_fail")
    def stream_fail() -> Response:
        def body() -> Iterator[bytes]:
            yield b"a"
            raise ValueError("stream broke")

        return Response(body())

    response = app.test_client().get("/stream_fail", headers={"X-Request-ID": "s-1"})
    with pytest.raises(ValueError, match="stream broke"):
        response.get_data()  # the body streams here, as a server would send it
    response.close()
    recs = records()
    (error,) = [r for r in recs if "exception" in r]
    assert error["message"] == "unhandled exception in streamed body" and error["request_id"] == "s-1"
    assert error["exception"]["type"] == "ValueError"


def error_records(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of errors among ``recs``: with a traceback, or at ERROR and above (access
    lines aside)."""
    return [
        r for r in recs if "exception" in r or (r["level"] in ("ERROR", "CRITICAL") and r["logger"] != "kakashi.access")
    ]


def cut_stream_app() -> Flask:
    """An app whose streamed bodies fail: after two chunks (8 bytes), or before the first."""
    app = Flask("cut")
    Kakashi(app)

    def body(chunks: list[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            log.info("sending", size=len(chunk))
            yield chunk
        raise ValueError("stream broke")

    @app.get("/cut")
    def cut() -> Response:
        return Response(body([b"12345", b"678"]))

    @app.get("/cut_in_context")
    def cut_in_context() -> Response:
        return Response(stream_with_context(body([b"12345", b"678"])))

    @app.get("/cut_at_once")
    def cut_at_once() -> Response:
        return Response(stream_with_context(body([])))

    return app


@pytest.mark.parametrize(
    ("path", "status", "size"),
    [("/cut", 200, 8), ("/cut_in_context", 200, 8), ("/cut_at_once", 500, 0)],
)
def test_a_streamed_body_that_fails_gets_one_error_and_one_access_line(
    records: Any, path: str, status: int, size: int
) -> None:
    # A body that fails after its first chunk: the client got the status and those bytes.
    # One that fails before it: the server answers 500 itself, with no body of the app's.
    kakashi.capture_stdlib()
    client = cut_stream_app().test_client()
    response = None
    with pytest.raises(ValueError, match="stream broke"):
        response = client.get(path, headers={"X-Request-ID": "cut-1"})  # (up to the first chunk)
        response.get_data()  # the rest streams here, as a server would send it
    if response is not None:
        response.close()  # what a WSGI server does (the test client does not, when get() raised)
    recs = records()
    errors = error_records(recs)
    assert len(errors) == 1, errors
    (error,) = errors
    assert (error["logger"], error["message"], error["request_id"]) == (
        "kakashi.errors",
        "unhandled exception in streamed body",
        "cut-1",
    )
    assert error["exception"]["type"] == "ValueError"
    assert 'raise ValueError("stream broke")' in error["exception"]["traceback"]
    (line,) = access(recs)
    assert (line["request_id"], line["status"], line["bytes"]) == ("cut-1", status, size)
    assert all(r["request_id"] == "cut-1" for r in recs if r["message"] == "sending")


def test_werkzeug_and_app_logger_come_out_once(records: Any) -> None:
    app = make_app()
    app.logger.warning("from app.logger")
    logging.getLogger("werkzeug").info("from werkzeug")
    recs = records()
    assert [r["message"] for r in recs] == ["from app.logger", "from werkzeug"]
    assert recs[0]["logger"] == "shop"


def test_the_extension_leaves_other_loggers_their_handlers(tmp_path: Path) -> None:
    # In a process of its own: Flask and werkzeug add their default handlers only where no
    # handler is found up the logger tree, and pytest puts handlers on the root logger.
    path = tmp_path / "app.log"
    proc = run_python(
        f"""
        import logging, sys
        import flask.logging, werkzeug._internal
        from flask import Flask
        import kakashi
        from kakashi.integrations.flask import Kakashi

        kakashi.configure(sink={str(path)!r}, format="json")
        mine = logging.StreamHandler(sys.stdout)
        logging.getLogger("mylib").addHandler(mine)
        app = Flask("shop")
        assert app.logger.handlers == [flask.logging.default_handler]
        werkzeug._internal._log("info", "werkzeug before")  # werkzeug adds its handler at its first line
        assert len(logging.getLogger("werkzeug").handlers) == 1

        Kakashi(app)
        Kakashi(Flask("shop"))  # a second app: still one handler each
        assert logging.getLogger("mylib").handlers == [mine]
        assert logging.getLogger().handlers == []
        assert len(app.logger.handlers) == len(logging.getLogger("werkzeug").handlers) == 1
        app.logger.info("from app.logger")
        logging.getLogger("shop.views").info("from a module of the app")
        werkzeug._internal._log("info", "from werkzeug")
        logging.getLogger("mylib").warning("from mylib")
        kakashi.capture_stdlib(take_over=False)  # the root logger routes to kakashi too
        app.logger.warning("app.logger again")
        werkzeug._internal._log("warning", "werkzeug again")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from mylib\n"  # by its own handler, not taken over
    assert proc.stderr == "werkzeug before\n"  # nothing else by Flask's or werkzeug's default handler
    recs = [json.loads(line) for line in read_lines(path)]
    assert [(r["logger"], r["message"]) for r in recs] == [
        ("shop", "from app.logger"),
        ("shop.views", "from a module of the app"),
        ("werkzeug", "from werkzeug"),
        ("shop", "app.logger again"),
        ("werkzeug", "werkzeug again"),
    ]


def test_capture_stdlib_all_takes_over_every_logger(records: Any) -> None:
    mylib = logging.getLogger("mylib.all")
    mine = logging.StreamHandler()
    mylib.addHandler(mine)
    try:
        make_app(KAKASHI_CAPTURE_STDLIB="all")
        assert mylib.handlers == [] and mylib.propagate
        mylib.warning("from mylib")
        assert [r["message"] for r in records()] == ["from mylib"]
    finally:
        mylib.removeHandler(mine)


def test_capture_stdlib_false_leaves_the_loggers_alone() -> None:
    app = make_app(KAKASHI_CAPTURE_STDLIB=False)
    assert not any(isinstance(h, kakashi.StdlibHandler) for h in app.logger.handlers)


# ---------------------------------------------------------------- real gunicorn

# The streamed bodies of cut_stream_app(), served by gunicorn from a module of their own.
CUT_APP = """
import os

from flask import Flask, Response, stream_with_context

import kakashi
from kakashi.integrations.flask import Kakashi

kakashi.configure(format="json", sink=os.environ["CUT_LOG"])
app = Flask("cut")
app.config["KAKASHI_SKIP_PATHS"] = ["/health"]
Kakashi(app)


def body(chunks):
    for chunk in chunks:
        yield chunk
    raise ValueError("stream broke")


@app.get("/cut")
def cut():
    return Response(stream_with_context(body([b"12345", b"678"])))


@app.get("/cut_at_once")
def cut_at_once():
    return Response(stream_with_context(body([])))


@app.get("/health")
def health():
    return "ok"
"""


@pytest.mark.timeout(120)
def test_a_streamed_body_that_fails_under_gunicorn(tmp_path: Path) -> None:
    # gunicorn cuts the response (or answers 500 when nothing was sent yet) and logs the
    # exception itself ("Error handling request"): that copy is the extension's, dropped.
    pytest.importorskip("gunicorn")
    (tmp_path / "cut_app.py").write_text(CUT_APP)
    log_file = tmp_path / "app.log"
    port = free_port()
    env = {**os.environ, "CUT_LOG": str(log_file), "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "10"]
    base = f"http://127.0.0.1:{port}"
    server = start_server([*command, "cut_app:app"], cwd=tmp_path, env=env, url=f"{base}/health")
    received = b""
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            with client.stream("GET", "/cut", headers={"X-Request-ID": "cut-1"}) as response:
                status = response.status_code
                with pytest.raises(httpx.RemoteProtocolError):  # the client sees a cut response
                    for chunk in response.iter_raw():
                        received += chunk
            at_once = client.get("/cut_at_once", headers={"X-Request-ID": "cut-2"})
    finally:
        out, err = stop_server(server)
    assert (status, received, at_once.status_code) == (200, b"12345678", 500)
    recs = [json.loads(line) for line in read_lines(log_file)]
    errors = error_records(recs)
    assert [(r["logger"], r["message"], r.get("request_id")) for r in errors] == [
        ("kakashi.errors", "unhandled exception in streamed body", "cut-1"),
        ("kakashi.errors", "unhandled exception in streamed body", "cut-2"),
    ]
    assert all('raise ValueError("stream broke")' in r["exception"]["traceback"] for r in errors)
    assert [(r["request_id"], r["status"], r["bytes"]) for r in access(recs)] == [("cut-1", 200, 8), ("cut-2", 500, 0)]
    assert "stream broke" not in out + err and "Error handling request" not in out + err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preload", [False, True])
def test_gunicorn_two_workers_then_sigterm(tmp_path: Path, preload: bool) -> None:
    pytest.importorskip("gunicorn")
    log_file = tmp_path / "app.log"
    port = free_port()
    env = {
        **os.environ,
        "KAKASHI_EXAMPLE_LOG": str(log_file),
        "PYTHONPATH": str(ROOT),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "example_apps/gunicorn.conf.py"]
    command += ["--preload"] if preload else []
    server = subprocess.Popen(
        [*command, "example_apps.flask_app:app"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/health")

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                paths = ["/items/1", "/stream", "/fail", "/admin/forbidden"]
                return list(
                    await asyncio.gather(
                        *(client.get(paths[i % 4], headers={"X-Request-ID": f"req-{i}"}) for i in range(80))
                    )
                )

        responses = asyncio.run(load())
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
    assert [r.status_code for r in responses[:4]] == [200, 200, 500, 403]
    recs = [json.loads(line) for line in read_lines(log_file)]
    for i in range(80):
        mine = [r for r in recs if r.get("request_id") == f"req-{i}"]
        assert sum(r["logger"] == "kakashi.access" for r in mine) == 1, i
    assert len([r for r in recs if "exception" in r]) == 20
    imported = [r for r in recs if r["message"] == "shop module imported"]
    assert len(imported) == (1 if preload else 2)  # the master's import-time line exactly once
    exiting = [r for r in recs if r["message"] == "worker exiting"]
    assert len(exiting) == 2


def test_status_levels_and_request_fields_from_the_config(records: Any) -> None:
    def fields(req: Any) -> dict[str, Any]:
        if req.path == "/forbidden":
            raise LookupError("no tenant")
        return {"tenant": req.headers.get("X-Tenant", "-"), 7: "not a name"}

    app = make_app(
        KAKASHI_STATUS_LEVELS=lambda status: "CRITICAL" if status == 403 else "DEBUG",
        KAKASHI_REQUEST_FIELDS=fields,
    )
    client = app.test_client()
    assert client.get("/hello", headers={"X-Tenant": "acme"}).status_code == 200
    assert client.get("/forbidden").status_code == 403  # request_fields failed: the request goes on
    recs = records()
    view = next(r for r in recs if r["message"] == "in view")
    assert view["tenant"] == "acme" and 7 not in view
    first, second = access(recs)
    assert (first["level"], first["tenant"], first["status"]) == ("DEBUG", "acme", 200)
    assert (second["level"], second["status"]) == ("CRITICAL", 403) and "tenant" not in second
    (warning,) = [r for r in recs if r["message"] == "request_fields failed"]
    assert warning["error"] == "LookupError: no tenant" and warning["level"] == "WARNING"


def test_a_request_id_the_app_binds_is_the_access_lines_too(records: Any) -> None:
    app = make_app()

    @app.get("/adopt")
    def adopt() -> str:
        kakashi.bind_context(request_id="upstream-trace-7")
        return "ok"

    client = app.test_client()
    client.get("/adopt")
    plain = client.get("/hello").headers["X-Request-ID"]
    adopted, other = access(records())
    assert adopted["request_id"] == "upstream-trace-7" and other["request_id"] == plain


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        (
            {"KAKASHI_STATUS_LEVELS": "myapp.levels"},
            'app.config["KAKASHI_STATUS_LEVELS"] must be a function from status code to level name, not str',
        ),
        (
            {"KAKASHI_REQUEST_FIELDS": {"tenant": "x"}},
            'app.config["KAKASHI_REQUEST_FIELDS"] must be a function from request to fields, not dict',
        ),
        # A str where a list belongs would be read character by character.
        (
            {"KAKASHI_SKIP_PATHS": "/health"},
            "app.config[\"KAKASHI_SKIP_PATHS\"] must be a list of str (paths), not str ('/health')",
        ),
        (
            {"KAKASHI_HEADERS": "user-agent"},
            "app.config[\"KAKASHI_HEADERS\"] must be a list of str (header names), not str ('user-agent')",
        ),
        (
            {"KAKASHI_TRUSTED_PROXIES": "10.0.0.1"},
            'app.config["KAKASHI_TRUSTED_PROXIES"] must be a list of str (addresses or networks), '
            "not str ('10.0.0.1')",
        ),
        ({"KAKASHI_SKIP_PATHS": ["/health", 7]}, 'app.config["KAKASHI_SKIP_PATHS"] entries must be str, got int (7)'),
        ({"KAKASHI_LOG_QUERY": "yes"}, "app.config[\"KAKASHI_LOG_QUERY\"] must be True or False, not str ('yes')"),
        (
            {"KAKASHI_ACCESS_LOGGER": None},
            'app.config["KAKASHI_ACCESS_LOGGER"] must be a logger name (a str), not NoneType (None)',
        ),
        (
            {"KAKASHI_CAPTURE_STDLIB": 1},
            'app.config["KAKASHI_CAPTURE_STDLIB"] must be "flask", "all" or False, not int (1)',
        ),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_at_init_naming_its_key(config: dict[str, Any], wanted: str) -> None:
    with pytest.raises(TypeError) as caught:
        make_app(**config)
    assert str(caught.value) == wanted


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        (
            {"KAKASHI_SKIP_PATH": ["/health"]},
            'unknown setting app.config["KAKASHI_SKIP_PATH"] (did you mean app.config["KAKASHI_SKIP_PATHS"]?); '
            "Kakashi(app) reads KAKASHI_ACCESS_LOGGER, KAKASHI_CAPTURE_STDLIB, KAKASHI_HEADERS, KAKASHI_LOG_QUERY, "
            "KAKASHI_REQUEST_FIELDS, KAKASHI_REQUEST_ID_HEADER, KAKASHI_SKIP_PATHS, KAKASHI_STATUS_LEVELS, "
            "KAKASHI_TRUSTED_PROXIES",
        ),
        (
            {"KAKASHI_TRUSTED_PROXY": ["10.0.0.1"], "KAKASHI_HEADER": ["accept"]},
            'unknown settings app.config["KAKASHI_HEADER"] (did you mean app.config["KAKASHI_HEADERS"]?), '
            'app.config["KAKASHI_TRUSTED_PROXY"] (did you mean app.config["KAKASHI_TRUSTED_PROXIES"]?); '
            "Kakashi(app) reads ",
        ),
        ({"KAKASHI_NONSENSE": 1}, 'unknown setting app.config["KAKASHI_NONSENSE"]; Kakashi(app) reads '),
        (
            {"KAKASHI_LEVEL": "DEBUG"},
            'unknown setting app.config["KAKASHI_LEVEL"]: Kakashi(app) does not configure kakashi; '
            "call kakashi.configure(level=...) before it",
        ),
        (
            {"KAKASHI_CAPTURE_STDLIB": "everything"},
            'app.config["KAKASHI_CAPTURE_STDLIB"] must be "flask", "all" or False, not \'everything\'',
        ),
    ],
)
def test_an_unknown_setting_is_refused_at_init_naming_its_key(config: dict[str, Any], wanted: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_app(**config)
    assert str(caught.value).startswith(wanted)


def test_config_keys_of_other_extensions_are_left_alone(records: Any) -> None:
    make_app(KAKASHIX_OTHER=1, KAKASHI=2, SQLALCHEMY_ECHO=True).test_client().get("/hello")
    assert len(access(records())) == 1
