"""Framework-neutral HTTP logic shared by the adapters: request ids, client addresses,
access-line fields, status levels, header redaction, and the error-once filter.

Adapters stay thin: they read the request the way their framework allows and call these.
Only kakashi's public API is used here.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import logging
import os
import random
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

import kakashi

# A request id we accept from a client: 1 to 128 characters of A-Za-z0-9._:-
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
ACCESS_LOGGER = "kakashi.access"
# The request's fields (also the request context's) and the access line's own, in order.
REQUEST_FIELDS = ("request_id", "method", "path", "client")
ACCESS_FIELDS = ("status", "duration_ms", "bytes", "user_agent", "http_version")
random_bits = random.getrandbits
# uuid4 layout: version nibble 4 (bits 76-79), variant 10 (bits 62-63); the rest random.
UUID4_KEEP = ((1 << 128) - 1) & ~((0xF << 76) | (0x3 << 62))
UUID4_SET = (0x4 << 76) | (0x2 << 62)
# Request ids are made _ID_BLOCK at a time: one random number of _ID_BLOCK * 128 bits, the
# uuid4 bits of every id set with one mask, and one hex() (bit 128 * _ID_BLOCK set, so it
# gives "0x1" and then exactly 32 digits per id). That costs a quarter of making each id
# on its own, and this runs for every request.
_ID_BLOCK = 256
_BLOCK_KEEP = sum(UUID4_KEEP << (128 * i) for i in range(_ID_BLOCK))
_BLOCK_SET = sum(UUID4_SET << (128 * i) for i in range(_ID_BLOCK)) | 1 << (128 * _ID_BLOCK)
# An address with a port: "[v6]:port" (or "[v6]"), "v4:port". Anything else must be a bare address.
_WITH_PORT = re.compile(r"\[([^\]]*)\](?::[0-9]{1,5})?|([0-9.]+):[0-9]{1,5}")
# An IPv6 scope id we keep (fe80::1%eth0): an interface name or number.
_SCOPE_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
_METHOD_NAMES = frozenset({"debug", "info", "warning", "error", "critical"})
_EXCEPTION_MARK = "__kakashi_logged__"
# The options that take a list of str, and what the entries are.
_LISTS = {"skip_paths": "paths", "trusted_proxies": "addresses or networks", "headers": "header names"}
_FUNCTIONS = {"status_levels": "status code to level name", "request_fields": "request to fields"}


def parse_request_id(value: str | None) -> tuple[str, bool]:
    """The request id to use and whether the client's value was replaced.

    A valid incoming id is kept; a missing one gets a fresh uuid4 hex (not a replacement);
    anything else (too long, CR/LF, escapes, non-ASCII, empty) is replaced by a fresh one.
    """
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value, False
    return new_request_id(), value is not None


def new_request_id() -> str:
    """A random UUID version 4, as 32 hex digits (the form of ``uuid.uuid4().hex``). Made
    from the ``random`` module (reseeded in every forked child): ids must be unique, not
    secret, and this costs a fraction of a system call."""
    request_id = next(_ids, None)  # (next() on a list iterator: atomic, one id per caller)
    return request_id if request_id is not None else _new_block()


def _new_block() -> str:
    """Make the next block of ids; returns one of them."""
    global _ids
    digits = hex(random_bits(128 * _ID_BLOCK) & _BLOCK_KEEP | _BLOCK_SET)[3:]
    ids = iter([digits[i : i + 32] for i in range(0, 32 * _ID_BLOCK, 32)])
    first = next(ids)
    _ids = ids
    return first


def _forget_ids() -> None:
    """In a forked child: the parent's unused ids are the parent's (never reused)."""
    global _ids
    _ids = iter(())


_ids: Iterator[str] = iter(())
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_ids)


def _valid_ip(text: str) -> str | None:
    """``text`` (an ``X-Forwarded-For`` entry, or the peer) as a normalised address, or None
    when it is not exactly an address, with an optional port, and nothing else."""
    text = text.strip(" \t")  # the list's own spaces (RFC 9110 OWS); nothing else is stripped
    with_port = _WITH_PORT.fullmatch(text)
    if with_port is not None:
        text = with_port.group(1) or with_port.group(2)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ipaddress takes any text after an IPv6 "%" as the scope id (newlines, escapes, any
    # length): it would come out in the client field as it came in.
    scope = getattr(address, "scope_id", None)
    if scope is not None and not _SCOPE_ID.fullmatch(scope):
        return None
    return str(address)


def _in_networks(ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in networks)


@dataclass(frozen=True)
class AccessWriter:
    """An access logger and its prepared methods for the usual access line (the request's
    fields, with and without a client address, then the access fields)."""

    logger: kakashi.Logger
    with_client: kakashi.Prepared
    without_client: kakashi.Prepared


@dataclass(frozen=True)
class Options:
    """What every adapter accepts (each maps its framework's settings onto these).

    Args:
        request_id_header: the header carrying the request id, in and out.
        skip_paths: paths that write no access line (e.g. ``/health``).
        log_query: include the query string in ``path``.
        trusted_proxies: addresses or networks whose ``X-Forwarded-For`` is believed.
        headers: request headers to add to the access line (secret ones are redacted).
        logger: the name of the access logger.
        status_levels: a function from status code to level name.
        request_fields: a function from the framework's request (or ASGI scope) to extra
            context fields; if it raises, the request goes on without them.
        names: how the user wrote each option (``app.config["KAKASHI_SKIP_PATHS"]``), by
            field name, for the error messages; by default the field name itself.

    Raises:
        TypeError: a value of the wrong type (a str where a list belongs included: it
            would be read character by character), named as the user wrote it.
        ValueError: a bad value (an empty header name, an address that is none).
    """

    request_id_header: str = "X-Request-ID"
    skip_paths: Iterable[str] = ()
    log_query: bool = False
    trusted_proxies: Iterable[str] = ()
    headers: Iterable[str] = ()
    logger: str = ACCESS_LOGGER
    status_levels: Callable[[int], str] | None = None
    request_fields: Callable[[Any], Mapping[str, Any]] | None = None
    _networks: tuple[Any, ...] = field(default=(), init=False, repr=False)
    _plain: bool = field(default=True, init=False, repr=False)
    names: InitVar[Mapping[str, str] | None] = None

    def __post_init__(self, names: Mapping[str, str] | None) -> None:
        def name(option: str) -> str:
            return names.get(option, option) if names else option

        lists = {option: _strings(name(option), getattr(self, option), what) for option, what in _LISTS.items()}
        object.__setattr__(self, "skip_paths", frozenset(lists["skip_paths"]))
        object.__setattr__(self, "headers", tuple(h.lower() for h in lists["headers"]))
        header = self.request_id_header
        if not isinstance(header, str):
            raise TypeError(f"{name('request_id_header')} must be a header name (a str), not {_described(header)}")
        if not header.strip():
            raise ValueError(f"{name('request_id_header')} must be a header name, got {header!r}")
        if not isinstance(self.log_query, bool):
            raise TypeError(f"{name('log_query')} must be True or False, not {_described(self.log_query)}")
        if not isinstance(self.logger, str):
            raise TypeError(f"{name('logger')} must be a logger name (a str), not {_described(self.logger)}")
        for option, what in _FUNCTIONS.items():
            value = getattr(self, option)
            if value is not None and not callable(value):
                raise TypeError(f"{name(option)} must be a function from {what}, not {type(value).__name__}")
        networks = []
        for proxy in lists["trusted_proxies"]:
            try:
                networks.append(ipaddress.ip_network(proxy, strict=False))
            except ValueError as exc:
                raise ValueError(f"{name('trusted_proxies')}: invalid trusted proxy {proxy!r}: {exc}") from None
        object.__setattr__(self, "_networks", tuple(networks))
        # Default levels and no extra headers: the access line takes the short path.
        object.__setattr__(self, "_plain", self.status_levels is None and not self.headers)

    @property
    def trusts_proxies(self) -> bool:
        """Whether any ``X-Forwarded-For`` is believed (else the peer is the client)."""
        return bool(self._networks)

    @property
    def header_key(self) -> str:
        return self.request_id_header.lower()

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client address: the peer, or, when the peer is a trusted proxy, the nearest
        address in ``X-Forwarded-For`` that is not itself a trusted proxy."""
        if not peer or not forwarded_for or not self._networks:
            return peer or None  # the server's word (an address, a socket path, a test name)
        client = _valid_ip(peer)
        if client is None or not _in_networks(client, self._networks):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            address = _valid_ip(hop)
            if address is None:
                return client  # a forged or broken entry: stop believing the chain
            if not _in_networks(address, self._networks):
                return address
            client = address
        return client

    def extra_fields(self, request: Any, errors: kakashi.Logger) -> dict[str, Any]:
        """What ``request_fields`` gives for ``request`` (the framework's request, or the
        ASGI scope), its str keys only. If it raises (or gives no mapping), a warning on
        ``errors`` says so and there are no extra fields: the request goes on, unchanged."""
        if self.request_fields is None:
            return {}
        try:
            extra = self.request_fields(request)
            return {key: value for key, value in extra.items() if isinstance(key, str)}
        except Exception as exc:  # noqa: BLE001 - never changes the response
            errors.warning("request_fields failed", error=f"{type(exc).__name__}: {exc}")
            return {}

    def level_for(self, status: int) -> str:
        """The level name of the access line for ``status``."""
        if self.status_levels is not None:
            return self.status_levels(status)
        return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"

    def access_method(self, logger: kakashi.Logger, status: int) -> Any:
        """The logger method for ``status`` (``info``, ``warning``, ...), looked up now so
        a level changed at run time applies."""
        if self.status_levels is None:  # the default levels: no parsing per request
            return logger.error if status >= 500 else logger.warning if status >= 400 else logger.info
        name = self.level_for(status).lower()
        method = getattr(logger, name, None) if name in _METHOD_NAMES else None
        return method if method is not None else lambda msg, **fields: logger.log(name.upper(), msg, **fields)

    def access_writer(self, logger: kakashi.Logger) -> AccessWriter:
        """What :meth:`write_access_line` writes with, for ``logger``."""
        return AccessWriter(
            logger,
            logger.prepare(*REQUEST_FIELDS, *ACCESS_FIELDS),
            logger.prepare(*REQUEST_FIELDS[:3], *ACCESS_FIELDS),
        )

    def write_access_line(
        self,
        access: AccessWriter,
        request: Mapping[str, Any],
        status: int,
        duration_ms: float,
        size: int,
        user_agent: str | None,
        http_version: str,
        replaced_id: bool,
        headers: Callable[[], Mapping[str, str]] | None = None,
        user_id: Any = None,
        context_as_opened: bool = True,
    ) -> None:
        """Write the access line (``"GET /path 200"`` with the access fields) at the level
        for ``status``. ``request`` holds the request's fields (``request_id``, ``method``,
        ``path``, ``client`` if known, and any others), the ones in the request context.
        ``headers`` gives the request's headers by lower-case name, asked for only when
        extra headers are configured; ``user_id`` is added when not None.
        ``context_as_opened``: the current context is still the one the adapter opened
        with ``request`` (the app bound nothing since), so the line may give the request's
        fields itself; otherwise they come from the context, as the app left it."""
        method, path = request["method"], request["path"]
        message = f"{method} {path} {status}"
        if self._plain and not replaced_id and user_id is None and context_as_opened:
            # The usual case: the request's own fields given with the line, so the request
            # context (which has nothing else) is not rendered for it, and no dict is built.
            client = request.get("client")
            fields = len(request)
            if client is not None and fields == 4:
                writer = access.with_client
                write = writer.info if status < 400 else writer.warning if status < 500 else writer.error
                write(
                    message,
                    request["request_id"],
                    method,
                    path,
                    client,
                    status,
                    duration_ms,
                    size,
                    user_agent,
                    http_version,
                )
                return
            if client is None and fields == 3:
                writer = access.without_client
                write = writer.info if status < 400 else writer.warning if status < 500 else writer.error
                write(message, request["request_id"], method, path, status, duration_ms, size, user_agent, http_version)
                return
        extra = access_fields(
            status=status,
            duration_ms=duration_ms,
            size=size,
            user_agent=user_agent,
            http_version=http_version,
            replaced_id=replaced_id,
        )
        if self.headers and headers is not None:
            extra.update(self.header_fields(headers()))
        if user_id is not None:
            extra["user_id"] = user_id
        self.access_method(access.logger, status)(message, **extra)

    def header_fields(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The configured request headers as fields ``header_<name>``, secrets redacted."""
        found = {}
        for name in self.headers:
            value = headers.get(name)
            if value is not None:
                key = "header_" + name.replace("-", "_")
                found[key] = "[REDACTED]" if kakashi.is_redacted(name) else value
        return found


def _described(value: object) -> str:
    return f"{type(value).__name__} ({value!r})"


def _strings(name: str, value: object, what: str) -> tuple[str, ...]:
    """``value``, a list (or any iterable) of str, as a tuple. A str itself is refused: it
    would be read character by character (``"/health"`` as the paths ``/``, ``h``, ...)."""
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str ({what}), not {_described(value)}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} entries must be str, got {_described(item)}")
    return items


def quoted(key: object) -> str:
    """A settings key as it is written in code: ``"skip_paths"`` (a str), ``7`` (others)."""
    return json.dumps(key, ensure_ascii=False) if isinstance(key, str) else repr(key)


def refuse_unknown(
    keys: Iterable[Any], valid: Collection[str], name: Callable[[Any], str], listing: str, prefix: str = ""
) -> None:
    """Refuse the keys that are not in ``valid``, each named as the user wrote it (``name``
    gives that) with the closest valid key, if one is close. Keys are compared without
    ``prefix`` (common to all, it would make every key look close) and ignoring case.

    Raises:
        ValueError: ``unknown setting <name> (did you mean <name>?); <listing>``.
    """
    unknown = sorted((key for key in keys if key not in valid), key=str)
    if not unknown:
        return
    stems = {key.removeprefix(prefix).lower(): key for key in valid}
    named = []
    for key in unknown:
        stem = key.removeprefix(prefix).lower() if isinstance(key, str) else None
        close = difflib.get_close_matches(stem, stems, n=1) if stem is not None else []
        named.append(name(key) + (f" (did you mean {name(stems[close[0]])}?)" if close else ""))
    plural = "s" if len(named) > 1 else ""
    raise ValueError(f"unknown setting{plural} {', '.join(named)}; {listing}")


def access_fields(
    *,
    status: int,
    duration_ms: float,
    size: int,
    user_agent: str | None,
    http_version: str,
    replaced_id: bool,
) -> dict[str, Any]:
    """The access line's own fields. ``request_id``, ``method``, ``path`` and ``client`` are
    in the request context already, so the line carries them too (context fields first)."""
    fields: dict[str, Any] = {
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "bytes": size,
        "user_agent": user_agent,
        "http_version": http_version,
    }
    if replaced_id:
        fields["request_id_replaced"] = True
    return fields


def mark_logged(exc: BaseException) -> None:
    """Remember that the adapter logged ``exc`` (with its traceback)."""
    with contextlib.suppress(Exception):  # exceptions with __slots__ cannot be marked
        setattr(exc, _EXCEPTION_MARK, True)


class DuplicateErrorFilter(logging.Filter):
    """Drops a framework's own record of an exception the adapter already logged
    (uvicorn's "Exception in ASGI application", Flask's log_exception, django.request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        return not (exc_info and exc_info[1] is not None and getattr(exc_info[1], _EXCEPTION_MARK, False))


def install_duplicate_filter(*logger_names: str) -> None:
    """Put one :class:`DuplicateErrorFilter` on each named stdlib logger (idempotent)."""
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(f, DuplicateErrorFilter) for f in target.filters):
            target.addFilter(DuplicateErrorFilter())
