"""Pure ASGI middleware for Starlette and FastAPI: request context, one access line per
request, request ids, errors logged once, and a flush at request end and at shutdown.

    from kakashi.integrations.starlette import KakashiMiddleware
    app.add_middleware(KakashiMiddleware)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from time import perf_counter_ns
from typing import Any

try:
    import starlette  # noqa: F401 - only to fail early with the right advice
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("kakashi.integrations.starlette needs Starlette: pip install 'kakashi[starlette]'") from exc

import kakashi

from ._http import (
    ACCESS_LOGGER,
    Options,
    install_duplicate_filter,
    mark_logged,
    new_request_id,
    parse_request_id,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INTERNAL_ERROR = b"Internal Server Error"


class KakashiMiddleware:
    """ASGI middleware (a class taking the app and keyword options, with an async
    ``__call__``; it never buffers a response, so streaming and background tasks work
    unchanged).

    The options are keyword parameters, typed, so that ``app.add_middleware(KakashiMiddleware,
    skip_paths=[...])`` type-checks and a misspelt name is refused (by mypy, and by Python
    when Starlette builds the middleware: at the app's lifespan startup or first request).

    Args:
        app: the ASGI app to wrap.
        request_id_header: the header carrying the request id, in and out.
        skip_paths: paths that write no access line (e.g. ``["/health"]``).
        log_query: include the query string in ``path``.
        trusted_proxies: addresses or networks (``"10.0.0.0/8"``) whose ``X-Forwarded-For``
            is believed.
        headers: request headers to add to the access line (secret ones are redacted).
        logger: the name of the access logger.
        status_levels: a function from status code to level name.
        request_fields: a function from the ASGI scope to extra context fields; if it
            raises, the request goes on without them.
        debug: when the app runs in debug mode (Starlette's ``debug=True``; by default read
            from the app) the middleware lets Starlette's debug error page answer an
            unhandled exception instead of answering 500 itself.

    Raises:
        TypeError: an unknown option, or a value of the wrong type (a str for a list too).
        ValueError: a bad value (an empty header name, a trusted proxy that is no address).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = "X-Request-ID",
        skip_paths: Iterable[str] = (),
        log_query: bool = False,
        trusted_proxies: Iterable[str] = (),
        headers: Iterable[str] = (),
        logger: str = ACCESS_LOGGER,
        status_levels: Callable[[int], str] | None = None,
        request_fields: Callable[[Scope], Mapping[str, Any]] | None = None,
        debug: bool | None = None,
    ) -> None:
        if debug is not None and not isinstance(debug, bool):
            raise TypeError(f"debug must be True, False or None, not {type(debug).__name__} ({debug!r})")
        self.app = app
        self.options = Options(
            request_id_header=request_id_header,
            skip_paths=skip_paths,
            log_query=log_query,
            trusted_proxies=trusted_proxies,
            headers=headers,
            logger=logger,
            status_levels=status_levels,
            request_fields=request_fields,
        )
        self.debug = debug
        self.access = kakashi.get_logger(self.options.logger)
        self.access_writer = self.options.access_writer(self.access)
        self.errors = kakashi.get_logger("kakashi.errors")
        self._header = self.options.header_key.encode("latin-1")
        self._proxies = self.options.trusts_proxies
        self._skip_paths = self.options.skip_paths
        self._log_query = self.options.log_query
        # uvicorn logs every unhandled exception again; the middleware owns that record.
        install_duplicate_filter("uvicorn.error")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            elif kind == "lifespan":
                await self.app(scope, receive, _flush_before_shutdown_complete(send))
            else:
                await self.app(scope, receive, send)
            return
        # http, written out here rather than in a method: this runs for every request.
        try:
            exchange = _Exchange(self, scope, send)
        except Exception:  # noqa: BLE001 - a request we cannot describe still runs
            await self.app(scope, receive, send)
            return
        exchange.token = token = kakashi.push_context(exchange.fields)
        exchange.opened = token.var.get()  # the context as opened (see access_line)
        try:
            await self.app(scope, receive, exchange.send)
        except Exception as exc:
            await self._failed(exc, exchange, send)
            raise
        finally:
            if not exchange.logged:  # a response that never completed still gets its line
                exchange.access_line()
            try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
                # Thread batches (the event loop's and the threadpool's) are written now;
                # in async mode the records are with the worker already, and waiting for
                # it here would block the event loop.
                kakashi.flush(include_async=False)
            except Exception:  # noqa: BLE001 - a failure never changes the response
                pass
            kakashi.reset_context(token)

    def _debug(self, scope: Scope) -> bool:
        if self.debug is not None:
            return self.debug
        return bool(getattr(scope.get("app"), "debug", False))

    # ------------------------------------------------------------ http

    async def _failed(self, exc: Exception, exchange: _Exchange, send: Send) -> None:
        """The app raised: log it once, and answer 500 (with the request id) if no response
        started. The caller re-raises ``exc`` unchanged."""
        try:
            self.errors.error("unhandled exception", exc_info=exc)
            mark_logged(exc)
        except Exception:  # noqa: BLE001 - a failure never changes the response
            pass
        if not exchange.started:
            exchange.status = 500
            if not self._debug(exchange.scope) and not _handles_500(exchange.scope):
                # Starlette's default 500 goes out on the raw send, without our header: send
                # the same response here, with it (ServerErrorMiddleware then sees a started
                # response). An app with its own 500 handler answers itself, unchanged.
                await _quietly_async(self._send_500(send, exchange.id_header))
                exchange.size = len(_INTERNAL_ERROR)

    async def _send_500(self, send: Send, id_header: tuple[bytes, bytes]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
                    id_header,
                ],
            }
        )
        await send({"type": "http.response.body", "body": _INTERNAL_ERROR, "more_body": False})

    # ------------------------------------------------------------ websocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            fields = _Exchange(self, scope, send).fields
        except Exception:  # noqa: BLE001
            await self.app(scope, receive, send)
            return
        fields["method"] = "WEBSOCKET"
        start = time.perf_counter()
        closed = {"done": False}

        def closed_line(code: Any) -> None:
            if not closed["done"]:
                closed["done"] = True
                duration = round((time.perf_counter() - start) * 1000, 3)
                self.access.info(f"websocket closed {fields['path']}", code=code, duration_ms=duration)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "websocket.accept":
                _quietly(lambda: self.access.info(f"websocket connected {fields['path']}"))
            elif message["type"] == "websocket.close":
                _quietly(lambda: closed_line(message.get("code", 1000)))
            await send(message)

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                _quietly(lambda: closed_line(message.get("code", 1000)))
            return message

        with kakashi.context(**fields):
            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            finally:
                _quietly(lambda: kakashi.flush(include_async=False))


class _Exchange:
    """One HTTP request/response going through the middleware."""

    __slots__ = (
        "fields",
        "headers",
        "id_header",
        "logged",
        "mw",
        "opened",
        "raw_send",
        "replaced",
        "scope",
        "size",
        "start",
        "status",
        "token",
    )

    def __init__(self, mw: KakashiMiddleware, scope: Scope, send: Send) -> None:
        self.start = perf_counter_ns()
        self.mw, self.scope, self.raw_send = mw, scope, send
        raw = scope.get("headers") or ()
        if raw.__class__ is not list:  # any iterable of pairs: read it once
            raw = list(raw)
        # The request's headers by name; the first of repeated ones counts (dict() keeps
        # the last, hence reversed: one C call rather than a loop over every header).
        headers: dict[bytes, bytes] = dict(reversed(raw))
        incoming = headers.get(mw._header)
        if incoming is None:
            request_id, self.replaced = new_request_id(), False
        else:
            request_id, self.replaced = parse_request_id(incoming.decode("latin-1"))
        peer = scope.get("client")
        options = mw.options
        if mw._proxies:
            # Repeated X-Forwarded-For headers are one list (RFC 9110), the proxy's own
            # entry last: join them, or a client could put a forged address in a header of
            # its own first.
            forwarded = b", ".join([value for name, value in raw if name == b"x-forwarded-for"])
            client = options.client(peer[0] if peer else None, forwarded.decode("latin-1") or None)
        else:
            client = peer[0] if peer else None
        path = scope["path"]
        self.logged = path in mw._skip_paths
        if mw._log_query and scope.get("query_string"):
            path = f"{path}?{scope['query_string'].decode('latin-1')}"
        fields: dict[str, Any] = {"request_id": request_id, "method": scope.get("method", "GET"), "path": path}
        if client:
            fields["client"] = client
        if options.request_fields is not None:
            fields.update(options.extra_fields(scope, mw.errors))
        self.headers, self.fields = headers, fields
        self.id_header = (mw._header, request_id.encode("latin-1"))
        self.status = self.size = 0  # status 0: no response started yet
        self.token: Any = None  # set once the request context is opened
        self.opened: Any = None

    @property
    def started(self) -> bool:
        return self.status != 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.size += len(message.get("body", b""))
            if not message.get("more_body", False):
                await self.raw_send(message)
                self.access_line()  # the response is complete (also when streamed)
                return
        elif kind == "http.response.start":
            self.status = message["status"]
            key = self.id_header[0]
            size = len(key)
            headers = []
            # The app's own request-id header, in any case, gives way to ours. (Names are
            # lowered only when their length matches; a loop, as a comprehension is a call.)
            for header in message.get("headers") or ():
                if len(header[0]) != size or header[0].lower() != key:
                    headers.append(header)
            headers.append(self.id_header)
            message["headers"] = headers
        await self.raw_send(message)

    def _header_values(self) -> dict[str, str]:
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.headers.items()}

    def access_line(self) -> None:
        if self.logged:
            return
        self.logged = True
        try:
            fields, headers = self.fields, self.headers
            agent = headers.get(b"user-agent")
            mw = self.mw
            mw.options.write_access_line(  # (by position: this runs for every request)
                mw.access_writer,
                fields,
                self.status,
                # Microseconds, as milliseconds: integer arithmetic is far cheaper than round().
                (perf_counter_ns() - self.start) // 1000 / 1000,
                self.size,
                agent.decode("latin-1") if agent is not None else None,
                self.scope.get("http_version", "1.1"),
                self.replaced,
                self._header_values if mw.options.headers else None,
                None,
                # The request's fields go with the line unless the app changed the context
                # (say, bound another request_id): then the line takes them from it.
                self.token is not None and self.token.var.get() is self.opened,
            )
        except Exception:  # noqa: BLE001 - logging trouble never changes the response
            pass


def _flush_before_shutdown_complete(send: Send) -> Send:
    """uvicorn re-raises SIGTERM after its graceful shutdown, so atexit never runs: write
    everything (and stop the async worker) before telling the server shutdown is done."""

    async def lifespan_send(message: Message) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            _quietly(kakashi.shutdown)
        await send(message)

    return lifespan_send


def _handles_500(scope: Scope) -> bool:
    """Whether the Starlette/FastAPI app has its own handler for a 500 (``Exception`` or
    500 in ``exception_handlers``): then its response must go out, not the default one."""
    handlers = getattr(scope.get("app"), "exception_handlers", None)
    try:
        return bool(handlers) and (500 in handlers or Exception in handlers)  # type: ignore[operator]
    except Exception:  # noqa: BLE001 - an app object we do not know: assume the default
        return False


def _quietly(action: Callable[[], Any]) -> None:
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
        action()
    except Exception:  # noqa: BLE001 - logging trouble never changes the response
        pass


async def _quietly_async(action: Awaitable[None]) -> None:
    try:  # noqa: SIM105
        await action
    except Exception:  # noqa: BLE001
        pass
