"""Flask extension: request context, one access line per request, request ids, errors
logged once, and a flush at request end.

    from kakashi.integrations.flask import Kakashi
    Kakashi(app)            # or: ext = Kakashi(); ext.init_app(app) in a factory
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from flask import Flask, Response, g, got_request_exception, request
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("kakashi.integrations.flask needs Flask: pip install 'kakashi[flask]'") from exc

import kakashi

from ._http import Options, access_fields, install_duplicate_filter, mark_logged, parse_request_id

_STATE = "_kakashi_request"  # per-request state on flask.g

# app.config keys (with their defaults) and the Options field each one sets.
CONFIG = {
    "KAKASHI_REQUEST_ID_HEADER": ("request_id_header", "X-Request-ID"),
    "KAKASHI_SKIP_PATHS": ("skip_paths", ()),
    "KAKASHI_LOG_QUERY": ("log_query", False),
    "KAKASHI_TRUSTED_PROXIES": ("trusted_proxies", ()),
    "KAKASHI_HEADERS": ("headers", ()),
    "KAKASHI_ACCESS_LOGGER": ("logger", "kakashi.access"),
}


class _State:
    """Per-app state, in ``app.extensions["kakashi"]``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.access = kakashi.get_logger(options.logger)
        self.errors = kakashi.get_logger("kakashi.errors")


class _Request:
    """What the extension keeps about the request in flight (on ``g``)."""

    __slots__ = ("app", "context", "fields", "headers", "logged", "replaced", "size", "start", "status", "version")

    def __init__(self, app: _State, fields: dict[str, Any], headers: dict[str, str], replaced: bool) -> None:
        self.start = time.perf_counter()
        self.app = app  # kept: a streamed response ends outside the app context
        self.fields, self.headers, self.replaced = fields, headers, replaced
        self.version = request.environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/")
        self.context = kakashi.context(**fields)
        self.status: int | None = None
        self.size: int | None = None
        self.logged = False


class Kakashi:
    """The Flask extension. Holds no app: one instance can serve several apps.

    Options come from ``app.config`` (``KAKASHI_REQUEST_ID_HEADER``, ``KAKASHI_SKIP_PATHS``,
    ``KAKASHI_LOG_QUERY``, ``KAKASHI_TRUSTED_PROXIES``, ``KAKASHI_HEADERS``,
    ``KAKASHI_ACCESS_LOGGER``, and ``KAKASHI_CAPTURE_STDLIB``, default True: Flask's
    ``app.logger`` and werkzeug's logger come out through kakashi).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, (_, default) in CONFIG.items():
            app.config.setdefault(key, default)
        app.config.setdefault("KAKASHI_CAPTURE_STDLIB", True)
        options = Options(**{name: app.config[key] for key, (name, _) in CONFIG.items()})
        app.extensions["kakashi"] = _State(options)
        if app.config["KAKASHI_CAPTURE_STDLIB"]:
            kakashi.capture_stdlib("INFO")
        # Flask logs unhandled errors again through app.logger (log_exception): the
        # extension owns that record, so Flask's copy is dropped.
        install_duplicate_filter(app.logger.name)
        app.before_request(_before_request)
        app.after_request(_after_request)
        app.teardown_request(_teardown_request)
        got_request_exception.connect(_on_exception, app, weak=False)


def _state() -> _State:
    from flask import current_app

    return current_app.extensions["kakashi"]  # type: ignore[no-any-return]


def _before_request() -> None:
    try:
        app_state = _state()
        options = app_state.options
        wanted = {options.header_key, "user-agent", "x-forwarded-for", *options.headers}
        headers = {name: value for name in wanted if (value := request.headers.get(name)) is not None}
        request_id, replaced = parse_request_id(headers.get(options.header_key))
        client = options.client(request.remote_addr, headers.get("x-forwarded-for"))
        path = request.path
        if options.log_query and request.query_string:
            path = f"{path}?{request.query_string.decode('latin-1')}"
        fields: dict[str, Any] = {"request_id": request_id, "method": request.method, "path": path}
        if client is not None:
            fields["client"] = client
        state = _Request(app_state, fields, headers, replaced)
        state.context.__enter__()
        setattr(g, _STATE, state)
    except Exception:  # noqa: BLE001 - R23: logging trouble never changes the response
        pass


def _after_request(response: Response) -> Response:
    # Only the header here; the line is written at teardown (or when a stream ends).
    state: _Request | None = getattr(g, _STATE, None)
    if state is None:
        return response
    try:
        response.headers[state.app.options.request_id_header] = state.fields["request_id"]
        state.status = response.status_code
        body = response.response
        if isinstance(body, (list, tuple)):
            state.size = sum(len(chunk) for chunk in body)
        elif response.content_length is not None:  # e.g. abort(): the size is known now
            state.size = response.content_length
        else:  # a generator: count while it streams, write the line when the server closes it
            response.response = _Counted(body, state)
            response.call_on_close(lambda: (_access_line(state), kakashi.flush(include_async=False)))
    except Exception:  # noqa: BLE001 - R23
        pass
    return response


def _on_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
    try:
        _state().errors.error("unhandled exception", exc_info=exception)
        mark_logged(exception)
    except Exception:  # noqa: BLE001 - R23
        pass


def _teardown_request(exc: BaseException | None) -> None:
    state: _Request | None = getattr(g, _STATE, None)
    if state is None:
        return
    try:
        state.context.__exit__(None, None, None)
        if exc is not None and state.status is None:
            state.status, state.size = 500, 0
        if state.size is not None or state.status is None:
            _access_line(state)  # a streamed response writes its line when the stream ends
        kakashi.flush(include_async=False)
    except Exception:  # noqa: BLE001 - R23
        pass


def _access_line(state: _Request) -> None:
    if state.logged:
        return
    state.logged = True
    try:
        options = state.app.options
        if state.fields["path"] in options.skip_paths:
            return
        status = state.status or 500
        fields = {
            **state.fields,
            **access_fields(
                status=status,
                duration_ms=(time.perf_counter() - state.start) * 1000,
                size=state.size or 0,
                user_agent=state.headers.get("user-agent"),
                http_version=state.version,
                replaced_id=state.replaced,
            ),
            **options.header_fields(state.headers),
        }
        message = f"{state.fields['method']} {state.fields['path']} {status}"
        options.access_method(state.app.access, status)(message, **fields)
    except Exception:  # noqa: BLE001 - R23
        pass


class _Counted:
    """Wraps a streamed response body to count the bytes sent."""

    def __init__(self, body: Iterable[bytes], state: _Request) -> None:
        self._body, self._state = body, state
        state.size = None  # not known until the stream ends

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        # The request's fields again for lines logged while the body streams (the
        # request's own context was closed when the view returned).
        context = kakashi.context(**self._state.fields)
        context.__enter__()
        try:
            for chunk in self._body:
                total += len(chunk)
                yield chunk
        finally:
            context.__exit__(None, None, None)
            self._state.size = total

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
