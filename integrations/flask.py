"""Flask extension: request context, one access line per request, request ids, errors
logged once, and a flush at request end.

    from kakashi.integrations.flask import Kakashi
    Kakashi(app)            # or: ext = Kakashi(); ext.init_app(app) in a factory
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator, Mapping
from time import perf_counter_ns
from typing import Any

try:
    from flask import Flask, Response, g, got_request_exception, request
    from flask.logging import default_handler
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("kakashi.integrations.flask needs Flask: pip install 'kakashi[flask]'") from exc

import kakashi

from ._http import (
    Options,
    install_duplicate_filter,
    mark_logged,
    new_request_id,
    parse_request_id,
    quoted,
    refuse_unknown,
)

_STATE = "_kakashi_request"  # per-request state on flask.g
# (Hooks resolve the g proxy once with _get_current_object(): an attribute read through the
# proxy costs about five times as much, and this runs three times per request.)

# app.config keys (with their defaults) and the Options field each one sets.
CONFIG = {
    "KAKASHI_REQUEST_ID_HEADER": ("request_id_header", "X-Request-ID"),
    "KAKASHI_SKIP_PATHS": ("skip_paths", ()),
    "KAKASHI_LOG_QUERY": ("log_query", False),
    "KAKASHI_TRUSTED_PROXIES": ("trusted_proxies", ()),
    "KAKASHI_HEADERS": ("headers", ()),
    "KAKASHI_ACCESS_LOGGER": ("logger", "kakashi.access"),
    "KAKASHI_STATUS_LEVELS": ("status_levels", None),
    "KAKASHI_REQUEST_FIELDS": ("request_fields", None),
}
CAPTURE_STDLIB = "KAKASHI_CAPTURE_STDLIB"
# Every app.config key with this prefix is the extension's: an unknown one is refused.
PREFIX = "KAKASHI_"
_KEYS = frozenset({*CONFIG, CAPTURE_STDLIB})
_CONFIGURE_KEYS = frozenset(inspect.signature(kakashi.configure).parameters)


class _State:
    """Per-app state, in ``app.extensions["kakashi"]``. Its bound methods are the app's
    request hooks, so a hook finds its app's options without looking up ``current_app``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.access = kakashi.get_logger(options.logger)
        self.access_writer = options.access_writer(self.access)
        self.errors = kakashi.get_logger("kakashi.errors")
        # The WSGI environ keys of the headers read: a dict lookup each, no Headers object.
        self.id_key = _environ_key(options.request_id_header)
        self.header_keys = tuple((name, _environ_key(name)) for name in options.headers)
        self.skip_paths = options.skip_paths

    def before_request(self) -> None:
        try:
            req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
            environ = req.environ
            options = self.options
            incoming = environ.get(self.id_key)
            if incoming is None:
                request_id, replaced = new_request_id(), False
            else:
                request_id, replaced = parse_request_id(incoming)
            peer = environ.get("REMOTE_ADDR")
            if options.trusts_proxies:
                client = options.client(peer, environ.get("HTTP_X_FORWARDED_FOR"))
            else:
                client = peer or None
            path = req.path
            if options.log_query and req.query_string:
                path = f"{path}?{req.query_string.decode('latin-1')}"
            fields: dict[str, Any] = {"request_id": request_id, "method": req.method, "path": path}
            if client:
                fields["client"] = client
            if options.request_fields is not None:
                fields.update(options.extra_fields(req, self.errors))
            state = _Request(self, environ, fields, replaced)
            state.token = token = kakashi.push_context(fields)
            state.opened = token.var.get()  # the context as opened (see _access_line)
            setattr(g._get_current_object(), _STATE, state)
        except Exception:  # noqa: BLE001 - logging trouble never changes the response
            pass

    def after_request(self, response: Response) -> Response:
        # Only the header here; the line is written at teardown (or when a stream ends).
        state: _Request | None = getattr(g._get_current_object(), _STATE, None)
        if state is None:
            return response
        try:
            response.headers[self.options.request_id_header] = state.fields["request_id"]
            state.status = response.status_code
            body = response.response
            if isinstance(body, (list, tuple)):
                state.size = sum(map(len, body))
            elif response.content_length is not None:  # e.g. abort(): the size is known now
                state.size = response.content_length
            else:  # a generator: count while it streams, write the line when the server closes it
                response.response = _Counted(body, state)
                response.call_on_close(lambda: _streamed_line(state))
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass
        return response

    def teardown_request(self, exc: BaseException | None) -> None:
        state: _Request | None = getattr(g._get_current_object(), _STATE, None)
        if state is None:
            return
        try:
            if exc is not None and state.status is None:
                state.status, state.size = 500, 0
            if state.size is not None or state.status is None:
                _access_line(state)  # (a streamed response writes its line when the stream ends)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass
        try:
            kakashi.reset_context(state.token)
            kakashi.flush(include_async=False)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass

    def on_exception(self, sender: Flask, exception: BaseException, **extra: Any) -> None:
        try:
            self.errors.error("unhandled exception", exc_info=exception)
            mark_logged(exception)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass


def _environ_key(header: str) -> str:
    """The WSGI environ key of a request header: ``X-Request-ID`` -> ``HTTP_X_REQUEST_ID``."""
    return "HTTP_" + header.upper().replace("-", "_")


class _Request:
    """What the extension keeps about the request in flight (on ``g``)."""

    __slots__ = ("app", "environ", "fields", "logged", "opened", "replaced", "size", "start", "status", "token")

    def __init__(self, app: _State, environ: dict[str, Any], fields: dict[str, Any], replaced: bool) -> None:
        self.start = perf_counter_ns()
        self.app = app  # kept: a streamed response ends outside the app context
        self.environ, self.fields, self.replaced = environ, fields, replaced
        self.token: Any = None
        self.opened: Any = None
        self.status: int | None = None
        self.size: int | None = None
        self.logged = False


class Kakashi:
    """The Flask extension. Holds no app: one instance can serve several apps.

    Options come from ``app.config`` when the extension is given the app
    (``KAKASHI_REQUEST_ID_HEADER``, ``KAKASHI_SKIP_PATHS``, ``KAKASHI_LOG_QUERY``,
    ``KAKASHI_TRUSTED_PROXIES``, ``KAKASHI_HEADERS``, ``KAKASHI_ACCESS_LOGGER``,
    ``KAKASHI_STATUS_LEVELS`` (status code to level name), ``KAKASHI_REQUEST_FIELDS`` (the
    request to extra context fields), and ``KAKASHI_CAPTURE_STDLIB``: ``"flask"``, the
    default, routes ``app.logger`` and werkzeug's logger into kakashi; ``"all"`` every stdlib
    logger, with :func:`kakashi.capture_stdlib`; ``False`` none). Every ``KAKASHI_*`` key is
    the extension's: an unknown one is refused.

    Raises:
        ValueError: an unknown ``KAKASHI_*`` key, or a bad value.
        TypeError: a value of the wrong type (a str where a list belongs included).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``KAKASHI_*`` settings and install the request hooks.

        Raises:
            ValueError, TypeError: a bad setting (the message names its key).
        """
        _refuse_unknown_keys(app.config)
        for key, (_, default) in CONFIG.items():
            app.config.setdefault(key, default)
        app.config.setdefault(CAPTURE_STDLIB, "flask")
        capture = _capture_choice(app.config[CAPTURE_STDLIB])
        options = Options(
            **{name: app.config[key] for key, (name, _) in CONFIG.items()},
            names={name: _config_key(key) for key, (name, _) in CONFIG.items()},
        )
        state = app.extensions["kakashi"] = _State(options)
        if capture == "all":
            kakashi.capture_stdlib("INFO")
        elif capture == "flask":
            _route_flask_loggers(app)
        # Flask logs unhandled errors again through app.logger (log_exception), and gunicorn
        # logs a streamed body's error ("Error handling request"): the extension owns that
        # record, so their copies are dropped.
        install_duplicate_filter(app.logger.name, "gunicorn.error")
        # First among the app's before_request hooks: a hook registered earlier that answers
        # (an auth check returning 401) or raises must still leave a request id, a context
        # and an access line. (Flask keeps app-wide hooks in before_request_funcs[None].)
        app.before_request_funcs.setdefault(None, []).insert(0, state.before_request)
        app.after_request(state.after_request)
        app.teardown_request(state.teardown_request)
        got_request_exception.connect(state.on_exception, app, weak=False)


def _config_key(key: object) -> str:
    return f"app.config[{quoted(key)}]"


def _refuse_unknown_keys(config: Mapping[str, Any]) -> None:
    """Every ``KAKASHI_*`` key must be one the extension reads: a misspelt one would be
    ignored without a word. ``KAKASHI_LEVEL`` and the like are kakashi.configure()'s."""
    ours = [key for key in config if isinstance(key, str) and key.startswith(PREFIX) and key not in _KEYS]
    for key in ours:
        option = key[len(PREFIX) :].lower()
        if option in _CONFIGURE_KEYS:
            raise ValueError(
                f"unknown setting {_config_key(key)}: Kakashi(app) does not configure kakashi; "
                f"call kakashi.configure({option}=...) before it"
            )
    refuse_unknown(ours, _KEYS, _config_key, "Kakashi(app) reads " + ", ".join(sorted(_KEYS)), PREFIX)


def _capture_choice(value: object) -> str | None:
    """``KAKASHI_CAPTURE_STDLIB``: ``"flask"`` (also True), ``"all"``, or None for False."""
    if value is True or value == "flask":
        return "flask"
    if value == "all":
        return "all"
    if value is False:
        return None
    described = repr(value) if isinstance(value, str) else f"{type(value).__name__} ({value!r})"
    error = ValueError if isinstance(value, str) else TypeError
    raise error(f'{_config_key(CAPTURE_STDLIB)} must be "flask", "all" or False, not {described}')


def _route_flask_loggers(app: Flask) -> None:
    """``app.logger`` and werkzeug's logger (the development server's request lines) into
    kakashi: one :class:`kakashi.StdlibHandler` on each, and INFO as their level when they
    have none of their own and would otherwise drop INFO lines. Only the handlers that
    would write the same lines again are removed: Flask's default handler and werkzeug's
    (werkzeug adds it at its first line, unless a handler is found, as ours now is). Other
    loggers, and the root logger, keep theirs."""
    for logger in (app.logger, logging.getLogger("werkzeug")):
        for handler in list(logger.handlers):
            if handler is default_handler or _is_werkzeugs(handler):
                logger.removeHandler(handler)
        if not any(isinstance(handler, kakashi.StdlibHandler) for handler in logger.handlers):
            logger.addHandler(kakashi.StdlibHandler())
        if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)


def _is_werkzeugs(handler: logging.Handler) -> bool:
    """werkzeug's own stderr handler (``werkzeug._internal._ColorStreamHandler``)."""
    return isinstance(handler, logging.StreamHandler) and type(handler).__module__.startswith("werkzeug.")


def _access_line(state: _Request) -> None:
    """The request's access line (written in the request's context)."""
    if state.logged:
        return
    state.logged = True
    app = state.app
    if state.fields["path"] in app.skip_paths:
        return
    environ = state.environ
    app.options.write_access_line(  # (by position: this runs for every request)
        app.access_writer,
        state.fields,
        state.status or 500,
        # Microseconds, as milliseconds: integer arithmetic is far cheaper than round().
        (perf_counter_ns() - state.start) // 1000 / 1000,
        state.size or 0,
        environ.get("HTTP_USER_AGENT"),
        environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/"),
        state.replaced,
        (lambda: {name: environ[key] for name, key in app.header_keys if key in environ}) if app.header_keys else None,
        None,
        # The request's fields go with the line unless the context is no longer the one
        # opened for the request (the app bound another request_id, or a streamed body).
        state.token is not None and state.token.var.get() is state.opened,
    )


def _streamed_line(state: _Request) -> None:
    """A streamed response is closed by the server: its line, in the request's fields again
    (the request's own context ended at teardown), then a flush."""
    try:
        with kakashi.context(**state.fields):
            _access_line(state)
        kakashi.flush(include_async=False)
    except Exception:  # noqa: BLE001 - a failure never changes the response
        pass


class _Counted:
    """Wraps a streamed response body to count the bytes sent."""

    def __init__(self, body: Iterable[bytes], state: _Request) -> None:
        self._body, self._state = body, state
        state.size = None  # not known until the stream ends

    def __iter__(self) -> Iterator[bytes]:
        state = self._state
        total = 0
        sent = False
        # The request's fields again for lines logged while the body streams (the
        # request's own context was closed when the view returned).
        context = kakashi.context(**state.fields)
        context.__enter__()
        try:
            for chunk in self._body:
                total += len(chunk)
                sent = True
                yield chunk
        except Exception as exc:
            # The view returned long ago: got_request_exception never sees this one. The
            # server logs it too (gunicorn's "Error handling request"): the mark drops that.
            state.size = total
            try:
                state.app.errors.error("unhandled exception in streamed body", exc_info=exc)
                mark_logged(exc)
                if not sent:
                    # Nothing went out yet, the status line neither: the server answers 500.
                    state.status = 500
                # The stream has ended: its line now, as the server may never close it (a
                # WSGI server must, but werkzeug's test client does not when the first
                # chunk fails). Closing it later writes nothing more.
                _streamed_line(state)
            except Exception:  # noqa: BLE001 - a failure never changes the response
                pass
            raise
        finally:
            context.__exit__(None, None, None)
            state.size = total

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
