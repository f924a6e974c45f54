"""Django middleware: request context, one access line per request, request ids, errors
logged once, and a flush when the response is closed.

    MIDDLEWARE = ["kakashi.integrations.django.KakashiMiddleware", ...]  # first
    KAKASHI = {"format": "json", "sink": "stdout", "skip_paths": ["/health"]}

Works under WSGI and ASGI (the middleware is sync and async capable, so neither path adds
a thread hop). ``INSTALLED_APPS = ["kakashi.integrations.django", ...]`` applies ``KAKASHI``
at ``django.setup()`` instead of when the first handler is built (see ``apps.py``).
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import fields as dataclass_fields
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
    from django.conf import settings
    from django.core.exceptions import BadRequest, ImproperlyConfigured, PermissionDenied, SuspiciousOperation
    from django.core.signals import request_finished
    from django.http import Http404
    from django.http.multipartparser import MultiPartParserError
    from django.utils.functional import LazyObject, empty
    from django.utils.log import log_response
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("kakashi.integrations.django needs Django: pip install 'kakashi[django]'") from exc

import kakashi
from kakashi.integrations._http import (
    Options,
    install_duplicate_filter,
    mark_logged,
    parse_request_id,
    quoted,
    refuse_unknown,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The keys of settings.KAKASHI: configure()'s arguments and the middleware's options.
CONFIGURE_KEYS = frozenset(inspect.signature(kakashi.configure).parameters)
OPTION_KEYS = frozenset(f.name for f in dataclass_fields(Options) if f.init)
_CALLABLE_OPTIONS = ("status_levels", "request_fields")  # may also be given as dotted paths

# Exceptions Django answers with a 4xx: the client's mistake, not an error of the service.
_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)
_LOGGED = "_kakashi_logged_exception"  # on the request, set by process_exception

# The configure() arguments this module last applied, so that the app config and every
# middleware instance apply KAKASHI once (and never undo a configure() made in between).
_applied: list[dict[str, Any]] = [{}]


def read_settings() -> tuple[dict[str, Any], Options]:
    """``settings.KAKASHI`` split into ``configure()`` arguments and middleware options.

    Raises:
        ImproperlyConfigured: not a dict, an unknown key, a dotted path that does not
            import, or an invalid option; the message names the key
            (``settings.KAKASHI["skip_paths"]``).
    """
    raw = getattr(settings, "KAKASHI", None) or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"settings.KAKASHI must be a dict, not {type(raw).__name__}")
    valid = CONFIGURE_KEYS | OPTION_KEYS
    try:
        refuse_unknown(raw, valid, _setting, "valid keys: " + ", ".join(sorted(valid)))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    config = {key: value for key, value in raw.items() if key in CONFIGURE_KEYS}
    chosen = {key: value for key, value in raw.items() if key in OPTION_KEYS}
    for name in _CALLABLE_OPTIONS:
        if isinstance(chosen.get(name), str):
            chosen[name] = _import_function(chosen[name], _setting(name))
    try:
        options = Options(**chosen, names={key: _setting(key) for key in chosen})
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    return config, options


def _setting(key: object) -> str:
    return f"settings.KAKASHI[{quoted(key)}]"


def _import_function(path: str, setting: str) -> Any:
    """What the dotted path ``module.function`` names.

    Raises:
        ImproperlyConfigured: naming the setting and the path (Python's own error says only
            ``No module named 'myapp'``).
    """
    module_name, _, attribute = path.rpartition(".")
    failed = f'{setting}: cannot import "{path}"'
    if not module_name or not attribute:
        raise ImproperlyConfigured(f"{failed}: give a function or its dotted path (module.function)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"{failed}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(f"{failed}: module {module_name!r} has no attribute {attribute!r}") from None


def apply_settings() -> Options:
    """Apply ``settings.KAKASHI``: ``configure()`` with its configuration keys (once; none
    given, kakashi keeps its configuration), the filter that drops Django's own copy of an
    error the middleware logged, and the flush when a response is closed. Returns the
    middleware options.

    Raises:
        ImproperlyConfigured: a bad ``KAKASHI`` setting (the message names it).
    """
    config, options = read_settings()
    if config and config != _applied[0]:
        try:
            kakashi.configure(**config)
        except (TypeError, ValueError, OSError) as exc:
            # (configure()'s messages name its argument, which is the key)
            raise ImproperlyConfigured(f"settings.KAKASHI: {exc}") from exc
        _applied[0] = config
    # Django logs an unhandled view error through django.request, servers log an error in a
    # streamed body again: the middleware owns those records.
    install_duplicate_filter("django.request", "uvicorn.error", "gunicorn.error")
    request_finished.connect(_flush_at_close, dispatch_uid="kakashi.integrations.django")
    return options


def _flush_at_close(sender: object, **kwargs: object) -> None:
    """``request_finished`` (sent when the server closes a response, streamed ones after
    their last chunk): every line of the request reaches the sink now. The async queue is
    left to its worker, so this never blocks on it."""
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
        kakashi.flush(include_async=False)
    except Exception:  # noqa: BLE001 - logging trouble never changes the response
        pass


class KakashiMiddleware:
    """Django middleware, sync and async capable: put it first in ``MIDDLEWARE``.

    Options come from ``settings.KAKASHI`` (the keys of
    :class:`kakashi.integrations._http.Options`: ``request_id_header``, ``skip_paths``,
    ``log_query``, ``trusted_proxies``, ``headers``, ``logger``, ``status_levels``,
    ``request_fields``; the last two as callables or dotted paths), read when Django builds
    its handler. ``KAKASHI``'s ``configure()`` keys are applied then too, unless the app
    config applied them already.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        # Django hands an async get_response under ASGI: then this instance is async too
        # (Django checks the marker), and a request never changes threads here.
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.options = options = apply_settings()
        self.access = kakashi.get_logger(options.logger)
        self.access_writer = options.access_writer(self.access)
        self.errors = kakashi.get_logger("kakashi.errors")
        names = dict.fromkeys((options.header_key, "user-agent", "x-forwarded-for", *options.headers))
        self.meta_keys = tuple((name, _meta_key(name)) for name in names)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        exchange = self._begin(request)
        if exchange is None:
            return self.get_response(request)
        with kakashi.context(**exchange.fields):
            try:
                response = self.get_response(request)
            except Exception as exc:  # only with DEBUG_PROPAGATE_EXCEPTIONS: Django answers the rest
                self._failed(exchange, request, exc)
                raise
            if response.status_code >= 400:
                _log_response(request, response)
            exchange.respond(response, _known_user(request))
        return response

    async def __acall__(self, request: Any) -> Any:
        exchange = self._begin(request)
        if exchange is None:
            return await self.get_response(request)
        with kakashi.context(**exchange.fields):
            try:
                response = await self.get_response(request)
            except Exception as exc:
                self._failed(exchange, request, exc)
                raise
            if response.status_code >= 400:  # off the event loop, as Django does (mail_admins)
                await sync_to_async(_log_response, thread_sensitive=False)(request, response)
            user_id = _known_user(request)
            if user_id is None and "_acached_user" in request.__dict__:
                user_id = await _async_user(request)  # cached by the view: no query
            exchange.respond(response, user_id)
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Log a view's exception once, with its traceback and the request's fields; Django
        then handles it as always (its own django.request copy is filtered out). Exceptions
        Django answers with a 4xx (``Http404``, ``PermissionDenied``, ...) are not errors."""
        if isinstance(exception, _CLIENT_ERRORS):
            return
        try:
            self.errors.error("unhandled exception", exc_info=exception)
            mark_logged(exception)
            setattr(request, _LOGGED, exception)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass

    # ------------------------------------------------------------ internals

    def _begin(self, request: Any) -> _Exchange | None:
        try:
            return _Exchange(self, request)
        except Exception:  # noqa: BLE001 - a request we cannot describe still runs
            return None

    def _failed(self, exchange: _Exchange, request: Any, exc: Exception) -> None:
        # An exception that escaped Django's own handling (DEBUG_PROPAGATE_EXCEPTIONS).
        try:
            if getattr(request, _LOGGED, None) is not exc and not isinstance(exc, _CLIENT_ERRORS):
                self.errors.error("unhandled exception", exc_info=exc)
                mark_logged(exc)
            exchange.status = 500
            exchange.access_line()
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass


class _Exchange:
    """One request going through the middleware."""

    __slots__ = ("fields", "headers", "logged", "mw", "replaced", "size", "start", "status", "user_id", "version")

    def __init__(self, mw: KakashiMiddleware, request: Any) -> None:
        self.start = time.perf_counter_ns()
        self.mw = mw
        options = mw.options
        meta = request.META
        self.headers = headers = {name: value for name, key in mw.meta_keys if (value := meta.get(key)) is not None}
        request_id, self.replaced = parse_request_id(headers.get(options.header_key))
        peer = meta.get("REMOTE_ADDR")
        client = options.client(peer, headers.get("x-forwarded-for")) if options.trusts_proxies else peer
        path = request.path
        self.logged = path in options.skip_paths
        if options.log_query and meta.get("QUERY_STRING"):
            path = f"{path}?{meta['QUERY_STRING']}"
        fields: dict[str, Any] = {"request_id": request_id, "method": request.method, "path": path}
        if client is not None:
            fields["client"] = client
        if options.request_fields is not None:
            fields.update(options.extra_fields(request, mw.errors))
        self.fields = fields
        scope = request.__dict__.get("scope")  # an ASGIRequest carries its scope
        if scope is not None:
            self.version = str(scope.get("http_version", "1.1"))
        else:
            self.version = meta.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/")
        self.status = 500
        self.size = 0
        self.user_id: Any = None

    def respond(self, response: Any, user_id: Any) -> None:
        """Put the id on the response; write the access line now, or, for a streamed
        response, when its body ends or the server closes it (with the bytes it sent)."""
        try:
            response[self.mw.options.request_id_header] = self.fields["request_id"]
            self.status, self.user_id = response.status_code, user_id
            if not response.streaming:
                self.size = len(response.content)
            elif getattr(response, "file_to_stream", None) is not None:
                # A FileResponse the server may send with sendfile (wrapping it would stop
                # that): its size is known now.
                self.size = int(response.get("Content-Length") or 0)
            elif response.is_async:
                response.streaming_content = _CountedAsync(response.streaming_content, self)
                return
            else:
                response.streaming_content = _Counted(response.streaming_content, self)
                return
        except Exception:  # noqa: BLE001 - logging trouble never changes the response
            pass
        self.access_line()

    def access_line(self) -> None:
        """The access line, once, in the request's context."""
        if self.logged:
            return
        self.logged = True
        try:
            fields = self.fields
            self.mw.options.write_access_line(
                self.mw.access_writer,
                fields,
                status=self.status,
                # Microseconds, as milliseconds: integer arithmetic is far cheaper than round().
                duration_ms=(time.perf_counter_ns() - self.start) // 1000 / 1000,
                size=self.size,
                user_agent=self.headers.get("user-agent"),
                http_version=self.version,
                replaced_id=self.replaced,
                headers=lambda: self.headers,
                user_id=self.user_id,
                # (the request's fields from the context, as the view left it)
                context_as_opened=False,
            )
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass

    def stream_failed(self, exc: Exception) -> None:
        try:
            with kakashi.context(**self.fields):
                self.mw.errors.error("unhandled exception in streamed body", exc_info=exc)
            mark_logged(exc)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass

    def stream_closed(self) -> None:
        try:
            with kakashi.context(**self.fields):
                self.access_line()
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass


class _Counted:
    """A streamed body, counted. Each chunk is produced in the request's context (the
    middleware's own has ended by then). The access line is written when the body ends, or
    at ``close()`` (Django calls it when the server closes the response: a client that went
    away, a body never started), whichever comes first."""

    __slots__ = ("_body", "_exchange")

    def __init__(self, body: Iterable[bytes], exchange: _Exchange) -> None:
        self._body, self._exchange = iter(body), exchange

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        exchange = self._exchange
        try:
            with kakashi.context(**exchange.fields):
                chunk = next(self._body)
        except StopIteration:
            exchange.stream_closed()  # the body is complete: the line need not wait for close()
            raise
        except Exception as exc:
            exchange.stream_failed(exc)
            raise
        exchange.size += len(chunk)
        return chunk

    def close(self) -> None:
        self._exchange.stream_closed()


class _CountedAsync:
    """:class:`_Counted` for an async streamed body (ASGI). Its ``close()`` is synchronous:
    Django calls it from ``response.close()``."""

    __slots__ = ("_body", "_exchange")

    def __init__(self, body: AsyncIterator[bytes], exchange: _Exchange) -> None:
        self._body, self._exchange = body.__aiter__(), exchange

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        try:
            with kakashi.context(**exchange.fields):
                chunk = await self._body.__anext__()
        except StopAsyncIteration:
            # The body is complete. (Django's ASGI handler may not call close() when the client
            # disconnects as the response ends: it cancels the request task instead.)
            exchange.stream_closed()
            raise
        except Exception as exc:
            exchange.stream_failed(exc)
            raise
        exchange.size += len(chunk)
        return chunk

    def close(self) -> None:
        self._exchange.stream_closed()


def _log_response(request: Any, response: Any) -> None:
    """Django's own "Not Found: /x" line for a 4xx/5xx response, written now, in the request's
    context (Django writes it once the middleware chain has returned, without the request id;
    it then sees the response was logged and does not log it again)."""
    try:  # noqa: SIM105 - cheaper than contextlib.suppress
        log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
    except Exception:  # noqa: BLE001 - a failure never changes the response
        pass


def _meta_key(header: str) -> str:
    """The ``request.META`` key of a header (as WSGI names it; Django's ASGI request too)."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def _user_id(user: Any) -> Any:
    return user.pk if user is not None and user.is_authenticated else None


def _known_user(request: Any) -> Any:
    """The user's id if the request already knows its user, else None. Never evaluates a
    lazy ``request.user``: that would cost a session and a user query per request."""
    try:
        user = request.__dict__.get("user")  # set by AuthenticationMiddleware (or DRF & co)
        if isinstance(user, LazyObject):
            user = user._wrapped  # `empty` until something used request.user
            if user is empty:
                return None
        return _user_id(user)
    except Exception:  # noqa: BLE001 - a failure never changes the response
        return None


async def _async_user(request: Any) -> Any:
    try:
        return _user_id(await request.auser())  # returns what the view's auser() cached
    except Exception:  # noqa: BLE001 - a failure never changes the response
        return None


def with_lifespan(application: ASGIApp) -> ASGIApp:
    """Django's ASGI application, answering the lifespan protocol itself (Django refuses it).

    uvicorn re-raises SIGTERM after its graceful shutdown, so ``atexit`` never runs: at
    lifespan shutdown this writes everything, stops the async worker and makes kakashi write
    each later line at once (the server's last lines), before telling the server it is done.

        application = with_lifespan(get_asgi_application())
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await application(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:  # noqa: SIM105
                    kakashi.shutdown()
                except Exception:  # noqa: BLE001 - the server must still shut down
                    pass
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


from .apps import KakashiConfig  # noqa: E402 - the INSTALLED_APPS entry, also importable from here

__all__ = ["KakashiConfig", "KakashiMiddleware", "apply_settings", "read_settings", "with_lifespan"]
