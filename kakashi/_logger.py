"""Loggers: per-level methods decided once, when the configuration or level changes.

A logger's ``debug`` / ``info`` / ... are instance attributes, rebuilt whenever the
configuration or the logger's level changes. A level that is filtered out gets
``_DISABLED``, a C-level callable that accepts any arguments and does nothing, so a
filtered call costs one attribute lookup and one C call: no Python frame at all. An
enabled level gets a closure that holds everything it needs in cells (renderer, batch
size, thread-local storage), so the hot path reads no globals.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _config, _engine
from ._async import async_queue, make_async_emitter
from ._levels import CRITICAL, DEBUG, ERROR, INFO, WARNING, level_name, parse_level
from ._render import arity_error, by_name, make_emitter
from ._stats import counters, report

# str.format of an empty string: accepts any positional and keyword arguments, formats
# nothing, allocates nothing new (returns the interned ''). The cheapest no-op in CPython.
_DISABLED: Callable[..., Any] = "".format

_METHODS = (("debug", DEBUG), ("info", INFO), ("warning", WARNING), ("error", ERROR), ("critical", CRITICAL))

# What ``exc_info=`` takes, as in stdlib logging: True (the exception being handled), an
# exception, a sys.exc_info() triple, or a false value (none).
ExcInfo = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)


class _Core:
    """What loggers of one name share: the name and the level set on it, if any."""

    __slots__ = ("__weakref__", "level", "name", "views")

    def __init__(self, name: str, level: int | None) -> None:
        self.name = name
        self.level = level
        self.views: weakref.WeakSet[Logger] = weakref.WeakSet()


class Logger:
    """A named logger, possibly carrying bound fields. Get one with :func:`get_logger`.

    Every method takes ``(msg, *args, exc_info=None, **fields)``: ``msg % args`` is applied
    only when the record is enabled; keyword arguments become structured fields.
    """

    __slots__ = (
        "__weakref__",
        "_async",
        "_bound",
        "_core",
        "_prepared",
        "critical",
        "debug",
        "error",
        "exception",
        "info",
        "warn",
        "warning",
    )

    if TYPE_CHECKING:
        # The signatures type checkers see. At run time each of these is an instance
        # attribute set by _build(): a closure for an enabled level, a C no-op otherwise.
        def debug(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """Log at DEBUG: ``msg % args`` when enabled; keyword arguments are fields."""

        def info(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """Log at INFO: ``msg % args`` when enabled; keyword arguments are fields."""

        def warning(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """Log at WARNING: ``msg % args`` when enabled; keyword arguments are fields."""

        def warn(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """The same as :meth:`warning`."""

        def error(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """Log at ERROR, written before the call returns."""

        def critical(self, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
            """Log at CRITICAL, written before the call returns."""

        def exception(self, msg: object, /, *args: object, exc_info: ExcInfo = True, **fields: object) -> None:
            """Log at ERROR with the exception being handled (call it in an ``except``)."""

    def __init__(self, core: _Core, bound: dict[str, Any], use_async: bool = False) -> None:
        self._core = core
        self._bound = bound
        self._async = use_async
        self._prepared: weakref.WeakSet[Prepared] = weakref.WeakSet()
        core.views.add(self)
        _all_views.add(self)
        self._build(_config.current())

    def _build(self, config: _config.Config) -> None:
        level = self.level_for(config)
        for attr, num in _METHODS:
            setattr(self, attr, _DISABLED if num < level else self._method(config, num))
        # (Typed as methods for type checkers, set as attributes here.)
        self.warn = self.warning  # type: ignore[method-assign]
        error = self.error
        if error is _DISABLED:
            self.exception = _DISABLED  # type: ignore[method-assign]
        else:

            def exception(msg: object, /, *args: Any, exc_info: ExcInfo = True, **fields: Any) -> None:
                error(msg, *args, exc_info=exc_info, **fields)

            self.exception = exception  # type: ignore[method-assign]
        with _prepared_lock:
            prepared_now = list(self._prepared)
        for prepared in prepared_now:
            prepared._build(config)

    # ------------------------------------------------------------ public API

    @property
    def is_async(self) -> bool:
        """Whether records go through the async worker (``get_async_logger`` or mode="async")."""
        return self._async or _config.current().mode == "async"

    @property
    def name(self) -> str:
        """The logger's name."""
        return self._core.name

    @property
    def level(self) -> int:
        """The effective minimum level (the logger's own, else the configured one)."""
        return self.level_for(_config.current())

    def level_for(self, config: _config.Config) -> int:
        own = self._core.level
        return config.level if own is None else own

    def set_level(self, level: int | str | None) -> None:
        """Change this logger's minimum level now, for it and every logger bound from it.
        ``None`` makes it follow the configured level again.

        Raises:
            ValueError, TypeError: an unknown level.
        """
        self._core.level = None if level is None else parse_level(level)
        config = _config.current()
        for view in list(self._core.views):
            view._build(config)

    setLevel = set_level  # noqa: N815 - stdlib spelling, for code moving from logging

    def is_enabled_for(self, level: int | str) -> bool:
        """Whether a record at ``level`` would be written."""
        return parse_level(level) >= self.level

    isEnabledFor = is_enabled_for  # noqa: N815

    def log(self, level: int | str, msg: object, /, *args: object, exc_info: ExcInfo = None, **fields: object) -> None:
        """Log at ``level`` (a name or a number). An unknown level does not raise (a log
        call never does): the record is dropped, counted, and reported on stderr as the
        caller's mistake, naming the level."""
        try:
            num = parse_level(level)
        except (TypeError, ValueError) as exc:
            counters.add(dropped=1)
            report("level", f"log() called with a bad level, the record was dropped: {exc}")
            return
        for attr, method_level in reversed(_METHODS):
            if num == method_level:
                getattr(self, attr)(msg, *args, exc_info=exc_info, **fields)
                return
        config = _config.current()
        if num >= self.level_for(config):
            self._method(config, num)(msg, *args, exc_info=exc_info, **fields)

    def _method(self, config: _config.Config, num: int, fixed: tuple[str, ...] | None = None) -> Callable[..., None]:
        """The method that logs at level ``num`` (enabled), for the routes it reaches
        (with ``fixed`` field names: called as ``(msg, *values)``, see :meth:`prepare`)."""
        routes = [r for r in _engine.routes() if r.level is None or r.level <= num]
        if not routes:
            return _DISABLED
        exiting = _config.exiting()
        name, bound, limit = self._core.name, self._bound, config.max_value_length
        if (self._async or config.mode == "async") and not exiting:
            renders = [
                make_emitter(r.format, level_name(num), name, bound, limit, 1, tls=r.worker, clock=async_queue.clock)
                for r in routes
            ]
            method = make_async_emitter(_fan_out(renders), num, limit)
            return method if fixed is None else by_name(method, fixed)
        # Written before returning at ERROR and above, and for everything while writing
        # through (after shutdown(), and at interpreter exit).
        threshold = 1 if num >= ERROR or exiting else config.batch_size
        if fixed is not None and len(routes) == 1:
            (route,) = routes
            return make_emitter(route.format, level_name(num), name, bound, limit, threshold, route, fixed=fixed)
        method = _fan_out([make_emitter(r.format, level_name(num), name, bound, limit, threshold, r) for r in routes])
        return method if fixed is None else by_name(method, fixed)

    def prepare(self, *names: str) -> Prepared:
        """Methods for a call site that logs the same fields every time (an access log):
        ``prepared.info(msg, *values)``, one value for each of ``names`` in order, writes
        exactly what ``logger.info(msg, **dict(zip(names, values)))`` would, at a lower
        cost per call. The message is not %-formatted and takes no ``exc_info``. The
        methods follow the logger's level and :func:`kakashi.configure`, as the logger's
        own do; a wrong number of values raises ``TypeError`` (also at a disabled level).

        Raises:
            TypeError: a name that is not a str.
            ValueError: the name ``exc_info`` (the traceback argument, never a field).
        """
        for key in names:
            if not isinstance(key, str):
                raise TypeError(f"field names must be str, not {type(key).__name__}")
            if key == "exc_info":
                raise ValueError("exc_info is the traceback argument, not a field name")
        return Prepared(self, names)

    def bind(self, **fields: object) -> Logger:
        """A logger of the same name that adds ``fields`` to every record (call fields of the
        same name win). Values are rendered now, when bound."""
        return Logger(self._core, {**self._bound, **fields}, self._async)

    def __repr__(self) -> str:
        return f"<kakashi.Logger {self._core.name!r} level={level_name(self.level)}>"


class Prepared:
    """A logger's methods for fixed field names (see :meth:`Logger.prepare`)."""

    __slots__ = ("__weakref__", "critical", "debug", "error", "info", "logger", "names", "warning")

    if TYPE_CHECKING:
        # As type checkers see them; at run time, instance attributes set by _build().
        def debug(self, msg: object, /, *values: object) -> None:
            """Log at DEBUG, one value per prepared name."""

        def info(self, msg: object, /, *values: object) -> None:
            """Log at INFO, one value per prepared name."""

        def warning(self, msg: object, /, *values: object) -> None:
            """Log at WARNING, one value per prepared name."""

        def error(self, msg: object, /, *values: object) -> None:
            """Log at ERROR, one value per prepared name."""

        def critical(self, msg: object, /, *values: object) -> None:
            """Log at CRITICAL, one value per prepared name."""

    def __init__(self, logger: Logger, names: tuple[str, ...]) -> None:
        self.logger = logger
        self.names = names
        # Registered first, so a configure() from another thread from now on rebuilds it;
        # built again if one came between reading the configuration and the end of the build.
        with _prepared_lock:
            logger._prepared.add(self)
        config = _config.current()
        self._build(config)
        while _config.current() is not config:
            config = _config.current()
            self._build(config)

    def _build(self, config: _config.Config) -> None:
        logger = self.logger
        level = logger.level_for(config)
        names = self.names
        for attr, num in _METHODS:
            method = _DISABLED if num < level else logger._method(config, num, names)
            setattr(self, attr, _off(names) if method is _DISABLED else method)

    def __repr__(self) -> str:
        return f"<kakashi.Prepared {self.logger.name!r} {self.names}>"


def _off(names: tuple[str, ...]) -> Callable[..., None]:
    """A disabled prepared method: logs nothing, but refuses a wrong number of values, as
    the enabled one would (a mistake shows before the level is turned on in production)."""
    count = len(names)

    def off(msg: object, /, *values: Any) -> None:
        if len(values) != count:
            raise arity_error(names, values)

    return off


_prepared_lock = threading.Lock()  # Logger._prepared: added to and listed from any thread
_all_views: weakref.WeakSet[Logger] = weakref.WeakSet()
_cache: dict[str, Logger] = {}
_cache_lock = threading.Lock()


def _rebuild_all(config: _config.Config) -> None:
    for view in list(_all_views):
        view._build(config)


_config.add_listener(_rebuild_all)


def _fan_out(emits: list[Callable[..., None]]) -> Callable[..., None]:
    """One method for several routes (one emitter each); the single-route case is the
    emitter itself, with no extra call."""
    if len(emits) == 1:
        return emits[0]

    def emit(msg: object, /, *args: Any, exc_info: object = None, **fields: Any) -> None:
        for each in emits:
            each(msg, *args, exc_info=exc_info, **fields)

    return emit


_cores: dict[str, _Core] = {}
_async_cache: dict[str, Logger] = {}


def _lookup(cache: dict[str, Logger], name: str, min_level: int | str | None, use_async: bool) -> Logger:
    logger = cache.get(name)
    if logger is None:
        with _cache_lock:
            logger = cache.get(name)
            if logger is None:
                core = _cores.get(name)
                if core is None:
                    core = _cores[name] = _Core(name, None)
                if min_level is not None:
                    core.level = parse_level(min_level)
                logger = cache[name] = Logger(core, {}, use_async)
                return logger
    if min_level is not None:
        logger.set_level(min_level)
    return logger


def _check_name(name: object) -> str:
    if name is None:
        return sys._getframe(2).f_globals.get("__name__", "root")  # type: ignore[no-any-return]
    if not isinstance(name, str):
        raise TypeError(f"logger name must be a str, not {type(name).__name__}")
    return name


def get_logger(name: str | None = None, min_level: int | str | None = None) -> Logger:
    """The logger called ``name`` (the calling module's ``__name__`` when omitted).

    Loggers are cached by name. ``min_level`` sets that logger's own level (as
    :meth:`Logger.set_level` does); without it the logger follows ``configure(level=...)``.
    In ``configure(mode="async")`` every logger is async.
    """
    return _lookup(_cache, _check_name(name), min_level, False)


def get_async_logger(name: str | None = None, min_level: int | str | None = None) -> Logger:
    """Like :func:`get_logger`, but the logger hands its records to the async worker
    whatever the configured mode (the caller only captures and enqueues). It shares its
    level with ``get_logger(name)``."""
    return _lookup(_async_cache, _check_name(name), min_level, True)


def _after_fork_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # the parent's may have been held by another thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)


def clear_logger_cache() -> None:
    """Forget cached loggers; existing ones keep working and keep following configure()."""
    with _cache_lock:
        _cache.clear()
        _async_cache.clear()
        _cores.clear()
