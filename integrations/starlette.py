"""Pure ASGI middleware for Starlette and FastAPI: request context, one access line per
request, request ids, errors logged once, and a flush at request end and at shutdown.

    from kakashi.integrations.starlette import KakashiMiddleware
    app.add_middleware(KakashiMiddleware)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

try:
    import starlette  # noqa: F401 - only to fail early with the right advice
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("kakashi.integrations.starlette needs Starlette: pip install 'kakashi[starlette]'") from exc

import kakashi

from ._http import Options, access_fields, install_duplicate_filter, mark_logged, parse_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_INTERNAL_ERROR = b"Internal Server Error"


class KakashiMiddleware:
    """ASGI middleware (a class with ``__init__(app, **options)`` and ``__call__``; it never
    buffers a response, so streaming and background tasks work unchanged).

    Options are those of :class:`kakashi.integrations._http.Options` (``request_id_header``,
    ``skip_paths``, ``log_query``, ``trusted_proxies``, ``headers``, ``logger``,
    ``status_levels``, ``request_fields``), plus ``debug``: when the app runs in debug mode
    (Starlette's ``debug=True``; by default read from the app) the middleware lets
    Starlette's debug error page answer an unhandled exception instead of answering 500
    itself.
    """

    def __init__(self, app: ASGIApp, *, debug: bool | None = None, **options: Any) -> None:
        self.app = app
        self.options = Options(**options)
        self.debug = debug
        self.access = kakashi.get_logger(self.options.logger)
        self.errors = kakashi.get_logger("kakashi.errors")
        self._header_str = self.options.header_key
        self._header = self._header_str.encode("latin-1")
        self._wanted = frozenset(
            {self._header, b"user-agent", b"x-forwarded-for", *(h.encode("latin-1") for h in self.options.headers)}
        )
        # uvicorn logs every unhandled exception again; the middleware owns that record.
        install_duplicate_filter("uvicorn.error")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.app(scope, receive, _flush_before_shutdown_complete(send))
        else:
            await self.app(scope, receive, send)

    # ------------------------------------------------------------ request facts

    def _facts(self, scope: Scope) -> tuple[dict[str, str], dict[str, Any], bool]:
        """(headers we read, context fields, whether the client's id was replaced)."""
        wanted = self._wanted
        headers: dict[str, str] = {}
        for name, value in scope.get("headers") or ():
            if name in wanted:
                key = name.decode("latin-1")
                if key not in headers:  # the first of repeated headers counts
                    headers[key] = value.decode("latin-1")
        request_id, replaced = parse_request_id(headers.get(self._header_str))
        peer = scope.get("client")
        client = self.options.client(peer[0] if peer else None, headers.get("x-forwarded-for"))
        path = scope.get("path", "")
        if self.options.log_query and scope.get("query_string"):
            path = f"{path}?{scope['query_string'].decode('latin-1')}"
        fields: dict[str, Any] = {"request_id": request_id, "method": scope.get("method", "GET"), "path": path}
        if client is not None:
            fields["client"] = client
        if self.options.request_fields is not None:
            try:
                extra = self.options.request_fields(scope)
                fields.update({key: value for key, value in extra.items() if isinstance(key, str)})
            except Exception as exc:  # noqa: BLE001 - R23: never changes the response
                self.errors.warning("request_fields failed", error=f"{type(exc).__name__}: {exc}")
        return headers, fields, replaced

    def _debug(self, scope: Scope) -> bool:
        if self.debug is not None:
            return self.debug
        return bool(getattr(scope.get("app"), "debug", False))

    # ------------------------------------------------------------ http

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            exchange = _Exchange(self, scope, send)
        except Exception:  # noqa: BLE001 - R23: a request we cannot describe still runs
            await self.app(scope, receive, send)
            return
        with kakashi.context(**exchange.fields):
            try:
                await self.app(scope, receive, exchange.send)
            except Exception as exc:
                try:
                    self.errors.error("unhandled exception", exc_info=exc)
                    mark_logged(exc)
                except Exception:  # noqa: BLE001 - R23
                    pass
                if not exchange.started:
                    exchange.status = 500
                    if not self._debug(scope):
                        # Starlette's own 500 goes out on the raw send, without our header:
                        # answer it here (ServerErrorMiddleware then sees a started response).
                        await _quietly_async(self._send_500(send, exchange.id_header))
                        exchange.size = len(_INTERNAL_ERROR)
                raise
            finally:
                exchange.access_line()  # once; also for a response that never completed
                _flush_request()  # every line of this request reaches the sink now

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
            _, fields, _ = self._facts(scope)
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
                _quietly(_flush_request)


class _Exchange:
    """One HTTP request/response going through the middleware."""

    __slots__ = (
        "fields",
        "headers",
        "id_header",
        "logged",
        "mw",
        "raw_send",
        "replaced",
        "scope",
        "size",
        "start",
        "started",
        "status",
    )

    def __init__(self, mw: KakashiMiddleware, scope: Scope, send: Send) -> None:
        self.start = time.perf_counter()
        self.mw, self.scope, self.raw_send = mw, scope, send
        self.headers, self.fields, self.replaced = mw._facts(scope)
        self.id_header = (mw._header, self.fields["request_id"].encode("latin-1"))
        self.status = self.size = 0
        self.started = False
        self.logged = scope.get("path") in mw.options.skip_paths  # type: ignore[operator]

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = message["status"]
            key = self.id_header[0]
            headers = message.get("headers") or []
            message["headers"] = [h for h in headers if h[0].lower() != key]
            message["headers"].append(self.id_header)
        elif kind == "http.response.body":
            self.size += len(message.get("body", b""))
            if not message.get("more_body", False):
                await self.raw_send(message)
                self.access_line()  # the response is complete (also when streamed)
                return
        await self.raw_send(message)

    def access_line(self) -> None:
        if self.logged:
            return
        self.logged = True
        try:
            mw, status, fields = self.mw, self.status, self.fields
            write = mw.options.access_method(mw.access, status)
            message = f"{fields['method']} {fields['path']} {status}"
            duration = round((time.perf_counter() - self.start) * 1000, 3)
            agent, version = self.headers.get("user-agent"), self.scope.get("http_version", "1.1")
            if self.replaced or mw.options.headers:
                extra = access_fields(
                    status=status,
                    duration_ms=duration,
                    size=self.size,
                    user_agent=agent,
                    http_version=version,
                    replaced_id=self.replaced,
                )
                extra.update(mw.options.header_fields(self.headers))
                write(message, **extra)
            else:  # the common case, without building a dict first
                write(
                    message,
                    status=status,
                    duration_ms=duration,
                    bytes=self.size,
                    user_agent=agent,
                    http_version=version,
                )
        except Exception:  # noqa: BLE001 - R23: logging trouble never changes the response
            pass


def _flush_before_shutdown_complete(send: Send) -> Send:
    """uvicorn re-raises SIGTERM after its graceful shutdown, so atexit never runs: write
    everything (and stop the async worker) before telling the server shutdown is done."""

    async def lifespan_send(message: Message) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            _quietly(kakashi.shutdown)
        await send(message)

    return lifespan_send


def _quietly(action: Callable[[], Any]) -> None:
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
        action()
    except Exception:  # noqa: BLE001 - R23: logging trouble never changes the response
        pass


async def _quietly_async(action: Awaitable[None]) -> None:
    try:  # noqa: SIM105
        await action
    except Exception:  # noqa: BLE001
        pass


def _flush_request() -> None:
    # Thread batches (the event loop's and the threadpool's) are written now; in async mode
    # the records are already with the worker, and waiting for it would block the loop.
    try:  # noqa: SIM105 - cheaper than contextlib.suppress on every request
        kakashi.flush(include_async=False)
    except Exception:  # noqa: BLE001 - R23
        pass
